-- Assist (seed Workflow 2, Assist Ticket v3): each GLPI ticket handled once, a persisted watermark,
-- and the seed's per-cycle log.
CREATE TABLE assist_tickets (
    ticket_id       integer PRIMARY KEY,
    session_id      uuid,
    category        text NOT NULL,
    requester_email text,
    title           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assist_state (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    watermark   timestamptz NOT NULL,             -- tickets opened before this were already seen
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Seed table (WIDIP_Assist_ticket_v3 "Log PostgreSQL"), one row per cycle.
CREATE TABLE widip_agent_logs (
    id                SERIAL PRIMARY KEY,
    execution_id      VARCHAR(100),
    started_at        TIMESTAMP,
    completed_at      TIMESTAMP,
    status            VARCHAR(20),
    tickets_found     INTEGER,
    tickets_processed JSONB,
    actions_detected  TEXT,
    duration_seconds  INTEGER,
    errors            JSONB
);
