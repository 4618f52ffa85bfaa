-- The operator's settings files shared by a cluster (the rules file, the console's LLM settings):
-- the newest text saved through the admin API on any node, with a version every save increments.
-- Each node applies a version newer than its own to its file and what is in force.
CREATE TABLE shared_settings (
    name TEXT PRIMARY KEY,  -- 'rules' | 'llm'
    content TEXT,           -- NULL: removed (no LLM backend)
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
