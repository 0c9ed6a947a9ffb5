-- Provider wire formats: each provider's endpoints speak one API (`openai-chat`,
-- `anthropic-messages`, policy::snapshot::Api's slugs), which the dataplane translates to and
-- from. Generations record the prompt tokens written to a provider's cache, priced apart from
-- reads.
ALTER TABLE providers ADD COLUMN api TEXT NOT NULL DEFAULT 'openai-chat';
ALTER TABLE generations ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
