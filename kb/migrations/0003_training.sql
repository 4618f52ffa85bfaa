-- Past conversations imported for training, and the FAQ review queue mined from them.
CREATE TABLE IF NOT EXISTS history_conversations (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    PRIMARY KEY (source, id)
);

CREATE TABLE IF NOT EXISTS history_messages (
    source TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    time TEXT,
    PRIMARY KEY (source, conversation_id, seq)
);

CREATE TABLE IF NOT EXISTS faq_proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lang TEXT NOT NULL,
    question TEXT NOT NULL,
    alternates TEXT NOT NULL,
    answer TEXT NOT NULL,
    support INTEGER NOT NULL,
    status TEXT NOT NULL,
    kb TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS faq_proposals_status ON faq_proposals (status, support DESC);
