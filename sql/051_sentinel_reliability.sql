-- Sentinel reliability: the team mail and a failed ticket are recorded on the incident, so a crash between
-- the ticket and the mail is completed by the sweeper, and an incident whose ticket will never exist stops
-- being synced and shows up instead.

-- When the team mail was requested (or skipped for want of recipients) and the incident_logs row written.
-- NULL with notified_at set: the Notificateur stopped in between; `notify` (retry or sweeper) finishes it.
ALTER TABLE incidents ADD COLUMN mailed_at timestamptz;
-- When the ticket call ended without a ticket (failed, refused, rejected, expired, unknown outcome).
ALTER TABLE incidents ADD COLUMN ticket_failed_at timestamptz;

-- Incidents notified before this migration had their mail requested in the same run.
UPDATE incidents SET mailed_at = notified_at WHERE notified_at IS NOT NULL;

CREATE INDEX incidents_unmailed ON incidents (notified_at) WHERE notified_at IS NOT NULL AND mailed_at IS NULL;
CREATE INDEX incidents_ticket_failed ON incidents (ticket_failed_at) WHERE ticket_failed_at IS NOT NULL;
