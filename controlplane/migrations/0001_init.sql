-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Integers are BIGINT, booleans are
-- BIGINT 0/1, timestamps are Unix milliseconds, money is a decimal USD string.

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    is_default BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    creator_user_id TEXT NOT NULL REFERENCES users (id),
    disabled BIGINT NOT NULL,
    limit_usd TEXT,
    limit_reset TEXT,
    include_byok_in_limit BIGINT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT
);

CREATE INDEX api_keys_organization ON api_keys (organization_id, created_at);

CREATE TABLE providers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    base_url TEXT NOT NULL,
    api_key_env TEXT NOT NULL
);

CREATE TABLE models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    context_length BIGINT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE model_endpoints (
    model_id TEXT NOT NULL REFERENCES models (id),
    provider_id TEXT NOT NULL REFERENCES providers (id),
    upstream_model TEXT NOT NULL,
    price_prompt TEXT NOT NULL,
    price_completion TEXT NOT NULL,
    price_request TEXT NOT NULL,
    price_image TEXT NOT NULL,
    price_input_cache_read TEXT NOT NULL,
    price_input_cache_write TEXT NOT NULL,
    price_internal_reasoning TEXT NOT NULL,
    context_length BIGINT NOT NULL,
    max_output_tokens BIGINT NOT NULL,
    priority BIGINT NOT NULL,
    PRIMARY KEY (model_id, provider_id)
);

CREATE TABLE generations (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    model TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_usd TEXT,
    streamed BIGINT NOT NULL,
    finish_reason TEXT,
    latency_ms BIGINT NOT NULL,
    ttfb_ms BIGINT NOT NULL,
    status BIGINT NOT NULL,
    cancelled BIGINT NOT NULL,
    is_byok BIGINT NOT NULL,
    app_title TEXT NOT NULL,
    dataplane_id TEXT NOT NULL
);

CREATE INDEX generations_key ON generations (key_hash, created_at);
CREATE INDEX generations_organization ON generations (organization_id, created_at);
