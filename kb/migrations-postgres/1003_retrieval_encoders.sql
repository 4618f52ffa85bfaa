-- Fine-tuned retrieval encoders shared by a cluster: each encoder's files, as `kefu kb encoder
-- train` saved them in `<data_dir>/encoders/<id>/`. A node that needs one it lacks (a knowledge
-- base switched to it elsewhere) copies it into its own encoders directory before loading it.
CREATE TABLE IF NOT EXISTS retrieval_encoders (
    id         TEXT   PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS retrieval_encoder_files (
    id      TEXT  NOT NULL REFERENCES retrieval_encoders(id) ON DELETE CASCADE,
    name    TEXT  NOT NULL,
    content BYTEA NOT NULL,
    PRIMARY KEY (id, name)
);
