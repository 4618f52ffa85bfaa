-- The past conversations a mined FAQ proposal came from (JSON list of "source/conversation id",
-- at most a few), shown to the reviewer as examples.
ALTER TABLE faq_proposals ADD COLUMN conversations TEXT NOT NULL DEFAULT '[]';
