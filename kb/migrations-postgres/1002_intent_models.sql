-- Intent model versions shared by a cluster: each version's files (as `kefu intent train` wrote
-- them into `<data_dir>/intents/vN/`) and the activation state. Every node mirrors them into its
-- own registry directory, which is what it loads.
CREATE TABLE IF NOT EXISTS intent_versions (
    version    TEXT   PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS intent_files (
    version TEXT  NOT NULL REFERENCES intent_versions(version) ON DELETE CASCADE,
    name    TEXT  NOT NULL,
    content BYTEA NOT NULL,
    PRIMARY KEY (version, name)
);

-- The active version and the activation history (`ActiveState` as JSON); one row.
CREATE TABLE IF NOT EXISTS intent_state (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    state TEXT   NOT NULL
);
