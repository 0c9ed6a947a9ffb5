-- Provider quotas: the gateway's own account's limits with each provider, per minute (0: none),
-- from the catalogue; dataplanes route around an account before its provider answers 429.
-- (A BYOK credential's quota lives in its settings JSON.)
ALTER TABLE providers ADD COLUMN requests_per_minute BIGINT NOT NULL DEFAULT 0;
ALTER TABLE providers ADD COLUMN tokens_per_minute BIGINT NOT NULL DEFAULT 0;
