-- Generic job status for every 202 the API returns: the frontend polls GET /jobs/{id}.
-- The id is the Dramatiq message id, so a job and its message are one thing.
CREATE TABLE jobs (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL,
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'retrying', 'done', 'failed')),
    args        jsonb NOT NULL DEFAULT '{}'::jsonb,
    result      jsonb,
    error       text,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz
);
CREATE INDEX jobs_status_created ON jobs (status, created_at);

-- The rows written by the echo job: proof that a worker reached the database.
CREATE TABLE echo_messages (
    id         bigserial PRIMARY KEY,
    job_id     uuid NOT NULL UNIQUE REFERENCES jobs (id),
    message    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
