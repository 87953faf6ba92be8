-- The estate Sentinel reasons about (issue 13): clients (the customer, with its GLPI entity), their
-- sites (the establishment, not the room), the operator lines of each site, and every monitored device
-- with its site, sub-location and role. Loaded by `widip inventory import` and PUT /inventory/...

CREATE TABLE clients (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL,
    glpi_entity_id integer,
    widip          boolean NOT NULL DEFAULT false,          -- WIDIP's own infrastructure
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX clients_name ON clients (lower(name));

CREATE TABLE sites (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,                                -- the establishment, e.g. "EHPAD X - Ville"
    client_id  bigint NOT NULL REFERENCES clients (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sites_name ON sites (lower(name));

CREATE TABLE operator_lines (
    service_ref text PRIMARY KEY,                            -- the operator's line reference
    site_id     bigint NOT NULL REFERENCES sites (id),
    operator    text NOT NULL,
    technology  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_lines_site ON operator_lines (site_id);

CREATE TABLE inventory_devices (
    id           bigserial PRIMARY KEY,
    hostname     text NOT NULL,
    device_id    text,                                        -- Observium device id, when known
    site_id      bigint NOT NULL REFERENCES sites (id),
    sub_location text,                                        -- the room: "local technique RDC"
    role         text NOT NULL DEFAULT 'other',               -- access | firewall | switch | wifi | ups | sensor | core | server | other
    service_ref  text REFERENCES operator_lines (service_ref), -- the line behind an access device
    source       text NOT NULL DEFAULT 'import',
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX inventory_devices_hostname ON inventory_devices (lower(hostname));
CREATE UNIQUE INDEX inventory_devices_device_id ON inventory_devices (device_id) WHERE device_id IS NOT NULL;
CREATE INDEX inventory_devices_site ON inventory_devices (site_id);

-- Incidents remember their correlation scope, the sites they span and the evidence of their diagnosis.
ALTER TABLE incidents ADD COLUMN scope text;                 -- site | client | operator
ALTER TABLE incidents ADD COLUMN evidence jsonb;             -- [{"source", "fact"}] gathered for the diagnosis
ALTER TABLE incident_members ADD COLUMN operator text;
ALTER TABLE incident_members ADD COLUMN role text;
ALTER TABLE incident_members ADD COLUMN service_ref text;       -- the operator line behind an access device
