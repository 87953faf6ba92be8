-- Sentinel (seed WIDIP_Proactif_Observium_v7): accepted webhook bodies, incidents and their story,
-- maintenance windows, device-down episodes and the seed's incident_logs.

-- Every accepted Observium webhook body, written before the 2xx ("Réponse Immédiate").
-- `dedup_key` (ALERT_ID + ALERT_STATE + notification time) makes a re-sent body a no-op.
CREATE TABLE alerts (
    id            bigserial PRIMARY KEY,
    tracking_id   text NOT NULL UNIQUE,                  -- ALT-YYYYMMDD-XXXXXXXXXX, answered to Observium
    dedup_key     text NOT NULL UNIQUE,
    alert_id      text NOT NULL,                         -- Observium alert_table_id (stable per checker × entity)
    alert_state   text NOT NULL,
    device_id     text,
    hostname      text,
    body          jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    enqueued_at   timestamptz,                           -- NULL: the broker did not take it (sweeper re-sends)
    status        text NOT NULL DEFAULT 'received'
                  CHECK (status IN ('received', 'processed', 'filtered', 'failed')),
    outcome       text,                                  -- opened | attached | correlated | reopened | flapping |
                                                         -- recovered | filtered:<reason> | orphan_recovery
    incident_id   bigint,
    processed_at  timestamptz
);
CREATE INDEX alerts_pending ON alerts (received_at) WHERE status = 'received';
CREATE INDEX alerts_incident ON alerts (incident_id);
CREATE INDEX alerts_filtered ON alerts (processed_at) WHERE status = 'filtered';

-- One incident = one diagnosis, one ticket, one team mail, however many devices and alerts.
CREATE TABLE incidents (
    id              bigserial PRIMARY KEY,
    tracking_id     text NOT NULL UNIQUE,                -- the tracking id of the alert that opened it
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'recovered')),
    kind            text NOT NULL DEFAULT 'outage' CHECK (kind IN ('outage', 'flapping')),
    site            text,
    client          text,
    operator        text,
    primary_device_id text,
    primary_hostname text,
    primary_ip      text,
    opened_at       timestamptz NOT NULL,
    last_joined_at  timestamptz NOT NULL,                -- correlation window is rolling from here
    last_seen_at    timestamptz NOT NULL,
    recovered_at    timestamptz,
    diagnosis       jsonb,
    diagnosis_source text,                               -- llm | cache | rules
    cache_used      boolean,
    diagnosed_at    timestamptz,
    session_id      uuid,                                -- the Sentinel agent session, when one ran
    notified_at     timestamptz,
    degraded        boolean NOT NULL DEFAULT false,      -- GLPI was down when the ticket was proposed
    ticket_call_id  uuid,
    ticket_id       bigint,
    glpi_entity_id  integer,
    recovery_announced boolean NOT NULL DEFAULT false,
    flapping_announced boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incidents_open ON incidents (last_joined_at) WHERE status = 'open';
CREATE INDEX incidents_client ON incidents (client, opened_at DESC);

-- The devices (device × entity × condition) of an incident.
CREATE TABLE incident_members (
    id            bigserial PRIMARY KEY,
    incident_id   bigint NOT NULL REFERENCES incidents (id),
    member_key    text NOT NULL,                         -- device_id|entity_type:entity_id|condition
    device_id     text,
    hostname      text NOT NULL,
    ip_address    text,
    site          text,
    client        text,
    entity        text,
    condition     text,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    occurrences   integer NOT NULL DEFAULT 1,
    flaps         integer NOT NULL DEFAULT 0,            -- times it went down again after recovering
    recovered_at  timestamptz,
    announced     boolean NOT NULL DEFAULT false,        -- listed in the ticket (body or follow-up)
    UNIQUE (incident_id, member_key)
);
CREATE INDEX incident_members_key ON incident_members (member_key, last_seen DESC);
CREATE INDEX incident_members_device ON incident_members (device_id) WHERE recovered_at IS NULL;

-- The incident's timeline, in French where a technician reads it.
CREATE TABLE incident_events (
    id          bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id),
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,
    message     text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);

-- Gated tool calls made for an incident (ticket, mail, follow-ups, diagnosis reads).
CREATE TABLE incident_calls (
    incident_id bigint NOT NULL REFERENCES incidents (id),
    call_id     uuid NOT NULL,
    purpose     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, call_id)
);

-- Maintenance windows and ignored devices (ends_at NULL = until removed), per device, site or client.
CREATE TABLE maintenance_windows (
    id          bigserial PRIMARY KEY,
    scope       text NOT NULL CHECK (scope IN ('device', 'site', 'client')),
    value       text NOT NULL,                           -- device id or hostname, site or client name
    starts_at   timestamptz NOT NULL DEFAULT now(),
    ends_at     timestamptz,
    reason      text NOT NULL DEFAULT '',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX maintenance_windows_value ON maintenance_windows (scope, lower(value));

-- Device-down episodes seen by the tick: "one L3 alert-mail request per episode" survives a Redis flush.
CREATE TABLE device_down_episodes (
    id             bigserial PRIMARY KEY,
    device_id      text NOT NULL,
    hostname       text NOT NULL,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    alert_call_id  uuid,                                 -- the smtp_send_alert call (L3) for this episode
    alert_requested_at timestamptz,
    alert_sent_at  timestamptz
);
CREATE UNIQUE INDEX device_down_episodes_open ON device_down_episodes (device_id) WHERE ended_at IS NULL;

-- Seed table (WIDIP_Proactif_v7 "Log DB"), one row per notified incident.
CREATE TABLE incident_logs (
    id                   serial PRIMARY KEY,
    tracking_id          varchar(50) UNIQUE NOT NULL,
    device_name          varchar(255),
    ip_address           varchar(45),
    responsibility       varchar(50),
    severity             varchar(20),
    ticket_id            varchar(50),
    workflow_duration_ms integer,
    cache_used           boolean,
    created_at           timestamp DEFAULT now()
);
