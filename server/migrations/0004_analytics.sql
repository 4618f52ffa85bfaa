-- Analytics: what each bot reply did, when and why a conversation went to a human, its first
-- agent reply and its resolution, and visitors' ratings (CSAT).
ALTER TABLE messages ADD COLUMN outcome TEXT;            -- bot replies: answer | suggest | fallback | rule_reply
UPDATE messages SET outcome = 'answer' WHERE author_kind = 'bot' AND route_trace LIKE '%"decision":"answer"%';
UPDATE messages SET outcome = 'suggest' WHERE author_kind = 'bot' AND route_trace LIKE '%"decision":"suggest"%';
UPDATE messages SET outcome = 'fallback' WHERE author_kind = 'bot' AND route_trace LIKE '%"decision":"fallback"%';
UPDATE messages SET outcome = 'rule_reply' WHERE author_kind = 'bot' AND route_trace LIKE '%"decision":"rule_reply"%';
CREATE INDEX messages_created ON messages (created_at);

ALTER TABLE conversations ADD COLUMN handoff_reason TEXT;         -- requested | rule | intent | repeated_fallback
ALTER TABLE conversations ADD COLUMN handed_off_at BIGINT;
ALTER TABLE conversations ADD COLUMN first_agent_reply_at BIGINT;
ALTER TABLE conversations ADD COLUMN resolved_at BIGINT;
UPDATE conversations SET handoff_reason = 'unknown', handed_off_at = updated_at
    WHERE agent_id IS NOT NULL OR state IN ('queued', 'agent');
UPDATE conversations SET resolved_at = updated_at WHERE state = 'resolved';
CREATE INDEX conversations_created ON conversations (created_at);

CREATE TABLE ratings (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id),
    score           BIGINT NOT NULL,         -- 1..5
    comment         TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX ratings_created ON ratings (created_at);
