-- A counter bumped by every write to the knowledge tables, in the same transaction, so that a
-- running server notices imports made by another process (the CLI, another node) and reloads.
CREATE TABLE IF NOT EXISTS kb_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO kb_generation (id, value) VALUES (1, 0);
