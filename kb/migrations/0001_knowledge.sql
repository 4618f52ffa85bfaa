-- Knowledge bases, their entries, and every embedded text of an entry (one source of truth:
-- the vectors live in the same database and the same transaction as the entries they belong to).
CREATE TABLE IF NOT EXISTS kb_bases (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    model             TEXT    NOT NULL,
    dim               INTEGER NOT NULL,
    answer_threshold  REAL,
    suggest_threshold REAL,
    margin            REAL,
    created_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE IF NOT EXISTS kb_entries (
    id           INTEGER PRIMARY KEY,
    kb_id        INTEGER NOT NULL REFERENCES kb_bases(id) ON DELETE CASCADE,
    key          TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('faq', 'chunk')),
    question     TEXT    NOT NULL,
    answer       TEXT    NOT NULL,
    alternates   TEXT    NOT NULL DEFAULT '[]',
    tags         TEXT    NOT NULL DEFAULT '[]',
    source       TEXT    NOT NULL,
    source_file  TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (kb_id, key)
);
CREATE INDEX IF NOT EXISTS kb_entries_source ON kb_entries (kb_id, source_file);

CREATE TABLE IF NOT EXISTS kb_vectors (
    id        INTEGER PRIMARY KEY,
    entry_id  INTEGER NOT NULL REFERENCES kb_entries(id) ON DELETE CASCADE,
    text      TEXT    NOT NULL,
    embedding BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS kb_vectors_entry ON kb_vectors (entry_id);
