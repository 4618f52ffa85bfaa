-- Answer mode `llm`: an LLM writes the reply from the retrieved passages, with the extractive
-- answer as its fallback. Stored as a flag beside `answer_mode` (which keeps 'extractive', the
-- local mode used when the LLM cannot answer), because SQLite cannot widen the column's CHECK
-- constraint in place.
ALTER TABLE kb_bases ADD COLUMN llm_answers INTEGER NOT NULL DEFAULT 0 CHECK (llm_answers IN (0, 1));
