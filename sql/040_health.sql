-- GLPI health probe history (seed WIDIP_Health_Check_GLPI "Log Health Check"): one row per probe,
-- every 30 s, pruned after 30 days by the probe itself. Redis holds the live status; this is the record.
CREATE TABLE glpi_health_history (
    id                   bigserial PRIMARY KEY,
    checked_at           timestamptz NOT NULL DEFAULT now(),
    status               text NOT NULL CHECK (status IN ('ok', 'degraded', 'down')),
    latency_ms           double precision,                  -- NULL when GLPI did not answer
    consecutive_failures integer NOT NULL DEFAULT 0,
    error                text,                              -- safe one-line message, never a token
    transition           text CHECK (transition IN ('down', 'recovered')),
    alert                text CHECK (alert IN ('down', 'recovery'))  -- the mail this probe sent, if any
);
CREATE INDEX glpi_health_history_checked_at ON glpi_health_history (checked_at);
