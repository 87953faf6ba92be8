-- Identity: people (accreditation N0–N4), their session tokens, machine service tokens, the WIBOT
-- access matrix, login attempts (throttling) and an append-only log of identity changes.
-- Tokens are stored only as sha256 hex digests: a database dump never yields a usable token.

CREATE TABLE users (
    id                  bigserial PRIMARY KEY,
    username            text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    display_name        text NOT NULL DEFAULT '',
    email               text,
    -- N0 read-only … N4 administrator (seed 000).
    accreditation_level smallint NOT NULL DEFAULT 0 CHECK (accreditation_level BETWEEN 0 AND 4),
    active              boolean NOT NULL DEFAULT true,
    -- argon2id PHC string; NULL means "cannot log in with a password".
    password_hash       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    disabled_at         timestamptz
);

-- Bearer tokens of logged-in humans (opaque; sha256 hex of the raw token).
CREATE TABLE auth_tokens (
    id           bigserial PRIMARY KEY,
    token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    created_ip   text
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id) WHERE revoked_at IS NULL;
CREATE INDEX auth_tokens_expires ON auth_tokens (expires_at);

-- Tokens of machine clients (frontend, Observium webhook…): scoped, never a user.
CREATE TABLE service_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    scopes       text[] NOT NULL CHECK (cardinality(scopes) > 0),
    created_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
-- One live token per name, so "the observium token" is unambiguous; revoked ones stay for audit.
CREATE UNIQUE INDEX service_tokens_live_name ON service_tokens (name) WHERE revoked_at IS NULL;

-- WIBOT access matrix (seed 001 "Matrice d'Accès CSV"), keyed by username so the CSV can be
-- imported before the accounts exist. `source` says who last wrote the row; `csv_digest` is the
-- digest of the CSV line last imported, so re-importing an unchanged line keeps an admin's API edit.
CREATE TABLE access_matrix (
    username           text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    acces_glpi         boolean NOT NULL DEFAULT false,
    acces_base_docs    boolean NOT NULL DEFAULT false,
    acces_contrats     boolean NOT NULL DEFAULT false,
    acces_confidential boolean NOT NULL DEFAULT false,
    clients_autorises  text[] NOT NULL DEFAULT '{}',
    categories_tickets text[] NOT NULL DEFAULT '{}',
    source             text NOT NULL DEFAULT 'csv' CHECK (source IN ('csv', 'api')),
    csv_digest         text,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         text
);

-- Every login attempt, for throttling by username and by client address.
CREATE TABLE login_attempts (
    id           bigserial PRIMARY KEY,
    username     text NOT NULL,
    ip           text NOT NULL,
    succeeded    boolean NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_username ON login_attempts (username, attempted_at);
CREATE INDEX login_attempts_ip ON login_attempts (ip, attempted_at);

-- Append-only record of identity changes (NIST 800-63B "authenticator events"): who did what to whom.
CREATE TABLE identity_audit (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX identity_audit_target ON identity_audit (target, at);
