-- Routing: an organization's privacy settings (only zero-data-retention endpoints; only
-- endpoints that neither retain nor train on prompts), and what a generation records of its
-- routing: every provider attempt (JSON array), the preset and version it used, its session
-- and the client's end-user id.
ALTER TABLE organizations ADD COLUMN enforce_zdr BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organizations ADD COLUMN deny_data_collection BIGINT NOT NULL DEFAULT 0;

ALTER TABLE generations ADD COLUMN provider_responses TEXT;
ALTER TABLE generations ADD COLUMN preset_id TEXT;
ALTER TABLE generations ADD COLUMN preset_version BIGINT;
ALTER TABLE generations ADD COLUMN session_id TEXT;
ALTER TABLE generations ADD COLUMN external_user TEXT;
