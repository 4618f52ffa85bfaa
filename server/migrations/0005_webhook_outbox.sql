-- Webhook deliveries (rule and intent actions): recorded before the bot turn that caused them ends,
-- delivered by a worker on any node with retries and backoff, at least once, each with its id as
-- the idempotency key. A delivery is leased by one node at a time; a lease that runs out (the node
-- died) lets another node take it.
CREATE TABLE webhook_outbox (
    id TEXT PRIMARY KEY,                 -- conversation id : visitor seq : action index
    conversation_id TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,                  -- the JSON posted
    created_at BIGINT NOT NULL,
    pending INTEGER NOT NULL DEFAULT 1,  -- 0 once delivered or given up
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    delivered_at BIGINT,
    last_error TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (pending, next_attempt_at);
