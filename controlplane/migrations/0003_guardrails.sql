-- Guardrails and their assignments to keys and members. Same portability rules as 0001: BIGINT
-- integers and 0/1 booleans (NULL where the SDK's field is nullable), Unix milliseconds, money as
-- a decimal USD string, lists as JSON arrays in TEXT (NULL for none).

CREATE TABLE guardrails (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    description TEXT,
    -- The workspace's default guardrail (id `gr_default_<workspace id>`): governs all its keys.
    is_default BIGINT NOT NULL,
    limit_usd TEXT,
    -- daily, weekly or monthly; set exactly when limit_usd is.
    reset_interval TEXT,
    include_byok BIGINT NOT NULL,
    allowed_models TEXT,
    ignored_models TEXT,
    allowed_providers TEXT,
    ignored_providers TEXT,
    enforce_zdr_anthropic BIGINT,
    enforce_zdr_openai BIGINT,
    enforce_zdr_google BIGINT,
    enforce_zdr_xai BIGINT,
    enforce_zdr_other BIGINT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT
);

CREATE INDEX guardrails_workspace ON guardrails (workspace_id, created_at);
CREATE INDEX guardrails_organization ON guardrails (organization_id, created_at);

-- A key holds at most one guardrail, as on OpenRouter: assigning another replaces it.
CREATE TABLE guardrail_key_assignments (
    key_hash TEXT PRIMARY KEY REFERENCES api_keys (hash),
    id TEXT NOT NULL UNIQUE,
    guardrail_id TEXT NOT NULL REFERENCES guardrails (id),
    assigned_by TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX guardrail_key_assignments_guardrail ON guardrail_key_assignments (guardrail_id, created_at);

-- A member may hold several guardrails.
CREATE TABLE guardrail_member_assignments (
    id TEXT PRIMARY KEY,
    guardrail_id TEXT NOT NULL REFERENCES guardrails (id),
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    assigned_by TEXT,
    created_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX guardrail_member_assignments_member ON guardrail_member_assignments (guardrail_id, user_id);
CREATE INDEX guardrail_member_assignments_organization ON guardrail_member_assignments (organization_id, created_at);

-- Existing workspaces get their default guardrail, unrestricted; new ones get it when created.
INSERT INTO guardrails (id, organization_id, workspace_id, name, is_default, include_byok, created_at)
SELECT 'gr_default_' || id, organization_id, id, 'Default', 1, 0, created_at FROM workspaces;
