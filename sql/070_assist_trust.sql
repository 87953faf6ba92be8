-- Assist you can trust (issue 11): per ticket, what intake decided and why, and whose account it is.
ALTER TABLE assist_tickets
    ADD COLUMN decision        text NOT NULL DEFAULT 'auto',  -- auto | handover | skipped
    ADD COLUMN reason          text NOT NULL DEFAULT '',
    ADD COLUMN subject         text,                          -- the verified requester's sAMAccountName
    ADD COLUMN requester_login text,
    ADD COLUMN model_category  text,                          -- the LLM's classification, when one ran
    ADD COLUMN model_confidence real;

CREATE INDEX assist_tickets_created_idx ON assist_tickets (created_at DESC);
