-- Activity: the app's `HTTP-Referer` on every generation; usage rolled up as it arrives; the
-- organization's registered end users (`user` on requests).
ALTER TABLE generations ADD COLUMN http_referer TEXT;

-- Usage per hour ('h') and per UTC day ('d'), written in the transaction that records the
-- generations, so that activity, exports and reconciliation read these rows instead of every
-- generation. Cost is exact: whole dollars plus picodollars (below 10^12), carried on every
-- addition; unpriced generations add requests and tokens only.
CREATE TABLE usage_rollups (
    organization_id TEXT NOT NULL,
    span TEXT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    -- The request's `user`; '' for none.
    external_user TEXT NOT NULL,
    model TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    is_byok BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    cost_usd BIGINT NOT NULL,
    cost_pico BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttfb_ms BIGINT NOT NULL,
    -- Answered with an error status (400 and above).
    errors BIGINT NOT NULL,
    PRIMARY KEY (organization_id, span, bucket_ms, workspace_id, key_hash, external_user, model,
                 provider_id, is_byok)
);
-- No other index: every read names the organization (a key's, workspace's or member's is looked
-- up), so the primary key serves them, and each upsert at ingest maintains one index only.

-- Set once the generations recorded before this migration are in the rollups (done at start,
-- by the first replica to get here; see `Store::backfill_rollups`).
CREATE TABLE rollup_backfill (
    id BIGINT PRIMARY KEY,
    done_at BIGINT NOT NULL
);

CREATE TABLE external_users (
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    is_active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
