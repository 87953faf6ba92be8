-- Agent sessions (DESIGN §5): persona + transcript + status; events are what the frontend polls (§7).
CREATE TABLE agent_sessions (
    id            uuid PRIMARY KEY,
    persona       text NOT NULL CHECK (persona IN ('sentinel', 'notificateur', 'assist', 'wibot')),
    owner_user_id bigint,                                  -- the human who started it (WIBOT), if any
    caller        jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'waiting_approval', 'completed', 'failed', 'rejected')),
    iteration     integer NOT NULL DEFAULT 0,
    pending_request_id bigint,
    transcript    jsonb NOT NULL DEFAULT '[]'::jsonb,
    context       jsonb NOT NULL DEFAULT '{}'::jsonb,      -- e.g. verified requester, incident id
    provider      text,
    result        jsonb,
    error         text,
    deadline      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_sessions_status ON agent_sessions (status, deadline);

CREATE TABLE agent_events (
    session_id uuid NOT NULL REFERENCES agent_sessions (id),
    seq        integer NOT NULL,
    type       text NOT NULL CHECK (type IN ('start', 'thinking', 'tool_call', 'tool_result', 'tool_blocked',
                                             'waiting_approval', 'resumed', 'rejected', 'response', 'error', 'done')),
    data       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq)
);
