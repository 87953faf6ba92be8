-- SAFEGUARD (DESIGN §6): live levels, tool calls, approval requests, deferred human-only actions,
-- the append-only audit log, and the outbox that hands work to the broker after commit.

CREATE TABLE safeguard_config (
    tool_name  text NOT NULL,
    persona    text NOT NULL DEFAULT '',          -- '' = default for every caller
    level      text NOT NULL CHECK (level IN ('L0', 'L1', 'L2', 'L3', 'L4')),
    reason     text NOT NULL DEFAULT 'seeded from policy/safeguard.toml',
    updated_by text NOT NULL DEFAULT 'policy',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tool_name, persona)
);

-- One row per proposed tool call; the id is the idempotency key of the external effect.
CREATE TABLE tool_calls (
    id           uuid PRIMARY KEY,
    session_id   uuid,
    tool_name    text NOT NULL,
    arguments    jsonb NOT NULL,
    args_hash    text NOT NULL,
    caller       jsonb NOT NULL,
    requester_user_id bigint,                       -- the human who caused it (None for system work)
    level        text NOT NULL,
    decision     text NOT NULL CHECK (decision IN ('run', 'notify', 'approval', 'deferred', 'refused')),
    confidence   real,
    status       text NOT NULL CHECK (status IN ('ready', 'waiting_approval', 'running', 'done', 'failed',
                                                 'rejected', 'expired', 'refused', 'deferred', 'cancelled',
                                                 'unknown_outcome')),
    request_id   bigint,
    result       jsonb,
    error        text,
    attempts     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX tool_calls_session ON tool_calls (session_id, created_at);
CREATE INDEX tool_calls_status ON tool_calls (status);

CREATE TABLE safeguard_requests (
    id            bigserial PRIMARY KEY,
    call_id       uuid NOT NULL UNIQUE REFERENCES tool_calls (id),
    session_id    uuid,
    tool_name     text NOT NULL,
    level         text NOT NULL,
    args_hash     text NOT NULL,
    args_redacted jsonb NOT NULL,
    requested_by  text NOT NULL,                    -- caller label, e.g. ai:wibot for user 7
    requester_user_id bigint,
    reason        text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by_user_id bigint,
    decided_by    text,
    decision_comment text,
    decided_at    timestamptz,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX safeguard_requests_status ON safeguard_requests (status, created_at);

CREATE TABLE safeguard_deferred_actions (
    id            bigserial PRIMARY KEY,
    call_id       uuid NOT NULL UNIQUE REFERENCES tool_calls (id),
    tool_name     text NOT NULL,
    args_redacted jsonb NOT NULL,
    requested_by  text NOT NULL,
    requester_user_id bigint,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'scheduled', 'running', 'executed', 'failed', 'cancelled', 'refused')),
    run_at        timestamptz,
    scheduled_by  text,
    scheduled_by_user_id bigint,
    decided_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE safeguard_audit (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor         text NOT NULL,                    -- who: caller label or human username
    actor_user_id bigint,
    action        text NOT NULL,                    -- proposed, approved, executed, refused, …
    tool_name     text,
    call_id       uuid,
    request_id    bigint,
    level         text,
    args_hash     text,
    args_redacted jsonb,
    outcome       text,
    reason        text                              -- why, in plain words
);
CREATE INDEX safeguard_audit_tool ON safeguard_audit (tool_name, at);
CREATE INDEX safeguard_audit_at ON safeguard_audit (at);

-- Append-only: the audit trail is evidence; nothing in the application may rewrite it.
CREATE FUNCTION safeguard_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'safeguard_audit is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER safeguard_audit_no_update BEFORE UPDATE OR DELETE ON safeguard_audit
    FOR EACH ROW EXECUTE FUNCTION safeguard_audit_is_append_only();
CREATE TRIGGER safeguard_audit_no_truncate BEFORE TRUNCATE ON safeguard_audit
    FOR EACH STATEMENT EXECUTE FUNCTION safeguard_audit_is_append_only();

-- Work to hand to the broker once the transaction that decided it has committed (and, when
-- `dependency` is set, once that system is available again). A relay sends each row once.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    actor_name  text NOT NULL,
    kwargs      jsonb NOT NULL,
    dependency  text,                               -- e.g. 'glpi': wait until it is up
    dedup_key   text UNIQUE,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_pending ON outbox (status, id) WHERE status = 'pending';
