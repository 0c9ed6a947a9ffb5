-- Tenancy: personal accounts, organization settings, workspace details and members, budgets,
-- the credit ledger, presets, BYOK credentials and the audit log. Same portability rules as
-- 0001; money that is summed in SQL is BIGINT micro-dollars, so sums stay exact.

-- An owner of keys and credits is an organization row: kind 'organization', or 'personal' for a
-- user's personal account (owner_user_id set, never more than that one member).
ALTER TABLE organizations ADD COLUMN kind TEXT NOT NULL DEFAULT 'organization';
ALTER TABLE organizations ADD COLUMN owner_user_id TEXT;
ALTER TABLE organizations ADD COLUMN member_cap BIGINT NOT NULL DEFAULT 10;
ALTER TABLE organizations ADD COLUMN filtered_model_catalog BIGINT NOT NULL DEFAULT 0;

ALTER TABLE workspaces ADD COLUMN description TEXT;
ALTER TABLE workspaces ADD COLUMN created_by TEXT;
ALTER TABLE workspaces ADD COLUMN updated_at BIGINT;
-- Observability and routing defaults, as the SDK's workspace object names them (JSON object).
ALTER TABLE workspaces ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';

CREATE UNIQUE INDEX workspaces_slug ON workspaces (organization_id, slug);

CREATE TABLE workspace_members (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX workspace_members_user ON workspace_members (workspace_id, user_id);

CREATE TABLE workspace_budgets (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    reset_interval TEXT NOT NULL,
    limit_usd TEXT NOT NULL,
    include_byok BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX workspace_budgets_interval ON workspace_budgets (workspace_id, reset_interval);

-- Rotation: the key this one replaced, whose expiry is the grace period's end.
ALTER TABLE api_keys ADD COLUMN rotated_from TEXT;

CREATE TABLE credit_ledger (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES organizations (id),
    amount_micros BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    counterpart_id TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX credit_ledger_owner ON credit_ledger (owner_id, created_at);

CREATE TABLE presets (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL,
    status_updated_at BIGINT,
    designated_version_id TEXT,
    creator_user_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX presets_slug ON presets (organization_id, slug);

CREATE TABLE preset_versions (
    id TEXT PRIMARY KEY,
    preset_id TEXT NOT NULL REFERENCES presets (id),
    version BIGINT NOT NULL,
    config TEXT NOT NULL,
    system_prompt TEXT,
    creator_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX preset_versions_number ON preset_versions (preset_id, version);

-- BYOK credentials, envelope-encrypted: `ciphertext` under a per-record data key, which is stored
-- only wrapped by the master key named in `master_key_id`.
CREATE TABLE byok_credentials (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    provider TEXT NOT NULL,
    name TEXT,
    label TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    settings TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    sort_order BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT
);

CREATE INDEX byok_credentials_workspace ON byok_credentials (workspace_id, provider);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    organization_id TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before_state TEXT,
    after_state TEXT
);

CREATE INDEX audit_log_organization ON audit_log (organization_id, at);

-- Existing data: every organization member joins its Default workspace, and every user gets a
-- personal account.
INSERT INTO workspace_members (id, workspace_id, user_id, created_at)
SELECT w.id || ':' || m.user_id, w.id, m.user_id, m.created_at
FROM memberships m JOIN workspaces w ON w.organization_id = m.organization_id AND w.is_default = 1;

INSERT INTO organizations (id, name, created_at, kind, owner_user_id, member_cap)
SELECT 'personal-' || id, name, created_at, 'personal', id, 1 FROM users;
