-- The configuration version: bumped in the same transaction as every change dataplanes must
-- see, so snapshots are numbered by what committed (never by a clock) and every control plane
-- replica sharing this database numbers them alike. The epoch identifies this store: versions
-- of different stores are not comparable. The single row is inserted at start.
CREATE TABLE config_state (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    epoch TEXT NOT NULL
);
