-- Conversation storage. One schema for SQLite and PostgreSQL: only TEXT and BIGINT columns,
-- times in milliseconds since the Unix epoch.

CREATE TABLE sites (
    site_key         TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    allowed_origins  TEXT NOT NULL,          -- JSON array of origins
    identity_secret  TEXT,
    enforce_identity BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL
);

CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    capacity      BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,             -- sha256 of the token; the token itself is never stored
    kind       TEXT NOT NULL,                -- visitor | agent | admin
    subject    TEXT NOT NULL,                -- visitor id, agent id or key name
    site_key   TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE visitors (
    id           TEXT PRIMARY KEY,
    site_key     TEXT NOT NULL,
    external_id  TEXT,                       -- verified user id (identity verification)
    display_name TEXT,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX visitors_external ON visitors (site_key, external_id);

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,
    site_key      TEXT NOT NULL,
    visitor_id    TEXT NOT NULL REFERENCES visitors (id),
    state         TEXT NOT NULL,             -- bot | queued | agent | resolved
    agent_id      TEXT,
    last_seq      BIGINT NOT NULL DEFAULT 0,
    bot_fallbacks BIGINT NOT NULL DEFAULT 0,
    offline       BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX conversations_state ON conversations (state, updated_at);
CREATE INDEX conversations_visitor ON conversations (visitor_id, updated_at);

CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    seq             BIGINT NOT NULL,
    author_kind     TEXT NOT NULL,           -- visitor | bot | agent | system
    author_id       TEXT,
    author_name     TEXT,
    body            TEXT NOT NULL,
    client_msg_id   TEXT,
    sources         TEXT,                    -- JSON
    quick_replies   TEXT,                    -- JSON
    route_trace     TEXT,                    -- JSON
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_client_msg ON messages (conversation_id, client_msg_id);
