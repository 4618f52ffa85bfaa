-- Data retention and erasure: a site's retention (days after a conversation's last activity
-- before it is deleted; 0 keeps everything), and the audit log of erasures, retention runs and
-- retention changes (what was done, by whom, how much — never the erased content).
ALTER TABLE sites ADD COLUMN retention_days BIGINT NOT NULL DEFAULT 0;

CREATE TABLE audit_log (
    id       TEXT PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,                  -- "cli", "admin:<key name or operator>", "retention"
    action   TEXT NOT NULL,                  -- visitor.erased | retention.deleted | retention.set
    site_key TEXT,
    subject  TEXT,                           -- the erased visitor's id
    detail   TEXT NOT NULL                   -- JSON counts
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Erasure and retention find a conversation's deliveries.
CREATE INDEX webhook_outbox_conversation ON webhook_outbox (conversation_id);
