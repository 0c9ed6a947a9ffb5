-- What each configuration version changed, written in the transaction that bumped it, so that a
-- publisher can send dataplanes only the keys a change touched. `key_hashes` lists them
-- (space-separated); NULL means anything else changed and the whole snapshot is sent. A version
-- with no row here (older, pruned, or bumped without a record) is treated as NULL.
CREATE TABLE config_changes (
    version BIGINT PRIMARY KEY,
    key_hashes TEXT
);
