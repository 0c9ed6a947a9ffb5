//! Providers, models and their endpoints.

use serde::{Deserialize, Serialize};
use sqlx::{Connection as _, Row};

use super::{Store, StoreError};

#[derive(Clone, Debug)]
pub struct ProviderRow {
    pub id: String,
    pub name: String,
    pub base_url: String,
    /// The wire format its endpoints speak, as `switchyard_policy::snapshot::Api::slug`.
    pub api: String,
    pub api_key_env: String,
    /// The gateway's own account's limits with the provider, per minute; 0 means none.
    pub requests_per_minute: i64,
    pub tokens_per_minute: i64,
}

#[derive(Clone, Debug)]
pub struct ModelRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created: i64,
    pub context_length: i64,
    pub endpoints: Vec<EndpointRow>,
}

#[derive(Clone, Debug)]
pub struct EndpointRow {
    pub provider_id: String,
    pub upstream_model: String,
    pub price_prompt: String,
    pub price_completion: String,
    pub price_request: String,
    pub price_image: String,
    pub price_input_cache_read: String,
    pub price_input_cache_write: String,
    pub price_internal_reasoning: String,
    pub context_length: i64,
    pub max_output_tokens: i64,
    pub priority: i64,
    pub traits: EndpointTraits,
}

/// What routing needs to know about an endpoint beyond its price (stored as JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointTraits {
    /// OpenRouter's endpoint tag (`provider` or `provider/variant`); the provider id if absent.
    pub tag: Option<String>,
    pub quantization: Option<String>,
    /// The request parameters the endpoint honours; the standard set if absent.
    pub supported_parameters: Option<Vec<String>>,
    pub max_prompt_tokens: Option<i64>,
    /// The provider may train on prompts.
    pub trains_on_prompts: bool,
    /// The provider keeps prompts after answering (for abuse monitoring, say).
    pub retains_prompts: bool,
    /// Zero data retention: the provider keeps nothing.
    pub zero_data_retention: bool,
    pub implicit_caching: bool,
}

#[derive(Clone, Debug, Default)]
pub struct CatalogueRows {
    pub providers: Vec<ProviderRow>,
    pub models: Vec<ModelRow>,
}

impl Store {
    /// Replaces the whole catalogue in one transaction.
    pub async fn replace_catalogue(&self, c: &CatalogueRows) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("DELETE FROM model_endpoints")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM models").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM providers")
            .execute(&mut *tx)
            .await?;
        for p in &c.providers {
            sqlx::query(
                "INSERT INTO providers (id, name, base_url, api_key_env, requests_per_minute, \
                 tokens_per_minute, api) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&p.id)
            .bind(&p.name)
            .bind(&p.base_url)
            .bind(&p.api_key_env)
            .bind(p.requests_per_minute)
            .bind(p.tokens_per_minute)
            .bind(&p.api)
            .execute(&mut *tx)
            .await?;
        }
        for m in &c.models {
            sqlx::query(
                "INSERT INTO models (id, name, description, context_length, created) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&m.id)
            .bind(&m.name)
            .bind(&m.description)
            .bind(m.context_length)
            .bind(m.created)
            .execute(&mut *tx)
            .await?;
            for e in &m.endpoints {
                sqlx::query(
                    "INSERT INTO model_endpoints (model_id, provider_id, upstream_model, price_prompt, \
                     price_completion, price_request, price_image, price_input_cache_read, \
                     price_input_cache_write, price_internal_reasoning, context_length, \
                     max_output_tokens, priority, traits) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&m.id)
                .bind(&e.provider_id)
                .bind(&e.upstream_model)
                .bind(&e.price_prompt)
                .bind(&e.price_completion)
                .bind(&e.price_request)
                .bind(&e.price_image)
                .bind(&e.price_input_cache_read)
                .bind(&e.price_input_cache_write)
                .bind(&e.price_internal_reasoning)
                .bind(e.context_length)
                .bind(e.max_output_tokens)
                .bind(e.priority)
                .bind(
                    serde_json::to_string(&e.traits)
                        .map_err(|err| StoreError::Corrupt(format!("endpoint traits: {err}")))?,
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn catalogue(&self) -> Result<CatalogueRows, StoreError> {
        let providers = sqlx::query(
            "SELECT id, name, base_url, api_key_env, requests_per_minute, tokens_per_minute, api \
             FROM providers ORDER BY id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(|r| {
            Ok(ProviderRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                base_url: r.try_get("base_url")?,
                api: r.try_get("api")?,
                api_key_env: r.try_get("api_key_env")?,
                requests_per_minute: r.try_get("requests_per_minute")?,
                tokens_per_minute: r.try_get("tokens_per_minute")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let mut models = sqlx::query(
            "SELECT id, name, description, context_length, created FROM models ORDER BY id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(|r| {
            Ok(ModelRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                context_length: r.try_get("context_length")?,
                created: r.try_get("created")?,
                endpoints: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let endpoints = sqlx::query(
            "SELECT model_id, provider_id, upstream_model, price_prompt, price_completion, \
             price_request, price_image, price_input_cache_read, price_input_cache_write, \
             price_internal_reasoning, context_length, max_output_tokens, priority, traits \
             FROM model_endpoints ORDER BY model_id, priority, provider_id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        for r in &endpoints {
            let model_id: String = r.try_get("model_id")?;
            let endpoint = EndpointRow {
                provider_id: r.try_get("provider_id")?,
                upstream_model: r.try_get("upstream_model")?,
                price_prompt: r.try_get("price_prompt")?,
                price_completion: r.try_get("price_completion")?,
                price_request: r.try_get("price_request")?,
                price_image: r.try_get("price_image")?,
                price_input_cache_read: r.try_get("price_input_cache_read")?,
                price_input_cache_write: r.try_get("price_input_cache_write")?,
                price_internal_reasoning: r.try_get("price_internal_reasoning")?,
                context_length: r.try_get("context_length")?,
                max_output_tokens: r.try_get("max_output_tokens")?,
                priority: r.try_get("priority")?,
                traits: serde_json::from_str(&r.try_get::<String, _>("traits")?)
                    .map_err(|err| StoreError::Corrupt(format!("endpoint traits: {err}")))?,
            };
            match models.iter_mut().find(|m| m.id == model_id) {
                Some(m) => m.endpoints.push(endpoint),
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "endpoint of unknown model {model_id}"
                    )));
                }
            }
        }
        Ok(CatalogueRows { providers, models })
    }
}
