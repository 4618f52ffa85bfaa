-- Event webhooks: a site's endpoints, each subscribed to some event types and signing every
-- delivery with its secret (and, for a day after a rotation, with the previous one too). Events are
-- recorded in the webhook outbox in the transaction that caused them, one delivery per subscribed
-- endpoint, and delivered by the outbox's workers; the outbox rows are the endpoint's delivery log.
CREATE TABLE webhook_endpoints (
    id                   TEXT PRIMARY KEY,
    site_key             TEXT NOT NULL,
    url                  TEXT NOT NULL,
    events               TEXT NOT NULL,          -- ',type,type,' or '*' (every event)
    secret               TEXT NOT NULL,
    previous_secret      TEXT,
    previous_until       BIGINT NOT NULL DEFAULT 0,
    enabled              BIGINT NOT NULL DEFAULT 1,
    failures_in_a_row    BIGINT NOT NULL DEFAULT 0,
    disabled_reason      TEXT,
    created_at           BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_site ON webhook_endpoints (site_key);

ALTER TABLE webhook_outbox ADD COLUMN endpoint_id TEXT;
ALTER TABLE webhook_outbox ADD COLUMN event_id TEXT;
CREATE INDEX webhook_outbox_endpoint ON webhook_outbox (endpoint_id, created_at);
