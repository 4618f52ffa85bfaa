-- Channels besides the web widget: visitors reached through the API channel or a WeChat Official
-- Account, keyed by the channel's own user id. A conversation carries its visitor's channel and
-- channel user id, so the store can queue replies back out through that channel in the
-- transaction that commits them (webhook_outbox rows with `channel` set).
ALTER TABLE visitors ADD COLUMN channel TEXT NOT NULL DEFAULT 'web';
DROP INDEX visitors_external;
CREATE UNIQUE INDEX visitors_external ON visitors (site_key, channel, external_id);

ALTER TABLE conversations ADD COLUMN channel TEXT NOT NULL DEFAULT 'web';
ALTER TABLE conversations ADD COLUMN channel_user TEXT;

-- A site's settings per channel (JSON): the API channel's token hash, the WeChat account's token,
-- app id and app secret.
CREATE TABLE site_channels (
    site_key   TEXT NOT NULL,
    channel    TEXT NOT NULL,
    settings   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (site_key, channel)
);

ALTER TABLE webhook_outbox ADD COLUMN channel TEXT;
