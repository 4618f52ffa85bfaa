-- Per-knowledge-base answer settings: document-passage thresholds (their scores differ from FAQ
-- question scores) and the answer mode (`faq`: entries only; `extractive`: also document sentences).
ALTER TABLE kb_bases ADD COLUMN doc_answer_threshold REAL;
ALTER TABLE kb_bases ADD COLUMN doc_suggest_threshold REAL;
ALTER TABLE kb_bases ADD COLUMN answer_mode TEXT NOT NULL DEFAULT 'extractive'
    CHECK (answer_mode IN ('faq', 'extractive'));
