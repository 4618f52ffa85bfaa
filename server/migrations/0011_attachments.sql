-- Attachments: files visitors and agents send. The bytes live in the attachment directory under
-- the id; the row says whose they are and which message carried them (seq NULL until sent).
CREATE TABLE attachments (
    id              TEXT PRIMARY KEY,
    site_key        TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    uploader_kind   TEXT NOT NULL,           -- visitor | agent
    uploader_id     TEXT NOT NULL,
    name            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL,
    width           BIGINT,
    height          BIGINT,
    thumbnail       BIGINT NOT NULL DEFAULT 0,
    seq             BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX attachments_conversation ON attachments (conversation_id, seq);
CREATE INDEX attachments_unsent ON attachments (created_at) WHERE seq IS NULL;

-- What a message carried (JSON, without links: links are signed at each read).
ALTER TABLE messages ADD COLUMN attachments TEXT;

-- A site's limits: largest file in bytes (NULL: the default) and the kinds allowed
-- (comma-separated image,pdf,office,text; NULL: all; '': attachments off).
ALTER TABLE sites ADD COLUMN attachment_max_bytes BIGINT;
ALTER TABLE sites ADD COLUMN attachment_kinds TEXT;

-- Secrets every node shares (the key that signs attachment links), made by the first node.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
