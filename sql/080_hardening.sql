-- Hardening (issue 12).
-- Assist: a GLPI restored from backup reuses ticket ids, so a ticket is its id and its opening date.
ALTER TABLE assist_tickets ADD COLUMN ticket_date text NOT NULL DEFAULT '';
ALTER TABLE assist_tickets DROP CONSTRAINT assist_tickets_pkey;
ALTER TABLE assist_tickets ADD PRIMARY KEY (ticket_id, ticket_date);

-- Login throttling per (username, client address); an N4 unlock clears failures without erasing them.
ALTER TABLE login_attempts ADD COLUMN cleared_at timestamptz;
CREATE INDEX login_attempts_pair ON login_attempts (username, ip, attempted_at);
