-- A rotated key's limit counts on from its predecessor's: every key of one rotation line shares
-- the original key's hash as its limit lineage (NULL: the key's own hash).
ALTER TABLE api_keys ADD COLUMN limit_lineage TEXT;
