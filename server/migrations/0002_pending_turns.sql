-- The bot turn a visitor message started, recorded in the transaction that commits the message
-- (its seq; 0 = none), so a turn cut short by a crash is finished on restart or by another node.
ALTER TABLE conversations ADD COLUMN pending_turn BIGINT NOT NULL DEFAULT 0;
CREATE INDEX conversations_pending ON conversations (pending_turn, updated_at);
