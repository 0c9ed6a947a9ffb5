//! `/api/v1/presets`, as OpenRouter's SDK defines the reads, plus Switchyard's extensions for
//! writing them (OpenRouter edits presets on its website):
//!
//! - `POST /api/v1/presets` with `{slug, name, description?, workspace_id?, config,
//!   system_prompt?}` creates a preset and its version 1, designated; 201 with the preset and
//!   its designated version.
//! - `POST /api/v1/presets/{slug}/versions` with `{config, system_prompt?, designate?}` adds the
//!   next immutable version (designated only if `designate` is true); 201 with the version.
//! - `PATCH /api/v1/presets/{slug}` with any of `{name, description, status,
//!   designated_version_id | designated_version}` (the latter a version number); 200 with the
//!   preset and its designated version.
//! - `DELETE /api/v1/presets/{slug}` deletes the preset and its versions; `{"deleted": true}`.
//!
//! `config` holds `model` or `models`, and optionally `provider` and `parameters` (objects);
//! any other key is refused with 400. The SDK sends the reads with a plain API key, so any key
//! of the organization reads; writes need a management key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, Manager};
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState, iso8601, nullable};
use crate::manage::presets::{NewPreset, NewPresetVersion, PresetPatch, PresetView};
use crate::manage::{Actor, Role, page};
use crate::store::{KeyRow, PresetRow, PresetVersionRow};

#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// The actor behind a key of either kind, for reads any key may do. Like a management key, it
/// acts as its user does today.
async fn reader(state: &ApiState, key: &KeyRow) -> Result<Actor, ApiError> {
    let role = state
        .store
        .membership(&key.organization_id, &key.creator_user_id)
        .await?
        .and_then(|m| m.role.parse::<Role>().ok())
        .ok_or_else(|| {
            ApiError::Forbidden("This key's user is no longer a member of its organization".into())
        })?;
    Ok(Actor::Member {
        user_id: key.creator_user_id.clone(),
        organization_id: key.organization_id.clone(),
        role,
        key_hash: key.hash.clone(),
    })
}

pub async fn list(
    State(state): State<ApiState>,
    Caller(key): Caller,
    ApiQuery(q): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let actor = reader(&state, &key).await?;
    let (rows, total) = state.manage.presets(&actor, None, offset, limit).await?;
    let data: Vec<Value> = rows.iter().map(preset_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

pub async fn get(
    State(state): State<ApiState>,
    Caller(key): Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = reader(&state, &key).await?;
    let view = state.manage.preset(&actor, None, &slug).await?;
    Ok(Json(json!({ "data": preset_with_version_json(&view) })))
}

pub async fn versions(
    State(state): State<ApiState>,
    Caller(key): Caller,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let actor = reader(&state, &key).await?;
    let (rows, total) = state
        .manage
        .preset_versions(&actor, None, &slug, offset, limit)
        .await?;
    let data: Vec<Value> = rows.iter().map(version_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

pub async fn version(
    State(state): State<ApiState>,
    Caller(key): Caller,
    Path((slug, number)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let number = match number.parse::<i64>() {
        Ok(n) if n >= 1 => n,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "version must be a positive integer (got {number:?})"
            )));
        }
    };
    let actor = reader(&state, &key).await?;
    let version = state
        .manage
        .preset_version(&actor, None, &slug, number)
        .await?;
    Ok(Json(json!({ "data": version_json(&version) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    slug: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    workspace_id: Option<String>,
    config: Value,
    #[serde(default)]
    system_prompt: Option<String>,
}

/// `POST /presets` (extension).
pub async fn create(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let view = state
        .manage
        .create_preset(
            &actor,
            None,
            NewPreset {
                slug: body.slug,
                name: body.name,
                description: body.description,
                workspace_id: body.workspace_id,
                config: body.config,
                system_prompt: body.system_prompt,
            },
        )
        .await?;
    let body = json!({ "data": preset_with_version_json(&view) });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionBody {
    config: Value,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    designate: bool,
}

/// `POST /presets/{slug}/versions` (extension).
pub async fn add_version(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<VersionBody>,
) -> Result<Response, ApiError> {
    let version = state
        .manage
        .add_preset_version(
            &actor,
            None,
            &slug,
            NewPresetVersion {
                config: body.config,
                system_prompt: body.system_prompt,
                designate: body.designate,
            },
        )
        .await?;
    let body = json!({ "data": version_json(&version) });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    designated_version_id: Option<String>,
    #[serde(default)]
    designated_version: Option<i64>,
}

/// `PATCH /presets/{slug}` (extension).
pub async fn update(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let patch = PresetPatch {
        name: body.name,
        description: body.description,
        status: body.status,
        designated_version_id: body.designated_version_id,
        designated_version: body.designated_version,
    };
    let view = state
        .manage
        .update_preset(&actor, None, &slug, patch)
        .await?;
    Ok(Json(json!({ "data": preset_with_version_json(&view) })))
}

/// `DELETE /presets/{slug}` (extension).
pub async fn delete(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.manage.delete_preset(&actor, None, &slug).await?;
    Ok(Json(json!({ "deleted": true })))
}

/// The SDK's `Preset`.
fn preset_json(p: &PresetRow) -> Value {
    json!({
        "id": p.id,
        "slug": p.slug,
        "name": p.name,
        "description": p.description,
        "status": p.status,
        "status_updated_at": p.status_updated_at.map(iso8601),
        "designated_version_id": p.designated_version_id,
        "creator_user_id": p.creator_user_id,
        "workspace_id": p.workspace_id,
        "created_at": iso8601(p.created_at),
        "updated_at": iso8601(p.updated_at),
    })
}

/// The SDK's `PresetWithDesignatedVersion`.
fn preset_with_version_json(view: &PresetView) -> Value {
    let mut json = preset_json(&view.preset);
    json["designated_version"] = view.designated.as_ref().map_or(Value::Null, version_json);
    json
}

/// The SDK's `PresetDesignatedVersion`. Versions never change, so `updated_at` is their
/// creation time.
fn version_json(v: &PresetVersionRow) -> Value {
    json!({
        "id": v.id,
        "preset_id": v.preset_id,
        "version": v.version,
        "config": v.config,
        "system_prompt": v.system_prompt,
        "creator_id": v.creator_id,
        "created_at": iso8601(v.created_at),
        "updated_at": iso8601(v.created_at),
    })
}

/// A control plane serving the REST API over a real socket, on SQLite in a temp dir: an admin
/// and a member (who belongs only to the "team" workspace), each with a management key, and an
/// inference key of the admin's.
#[cfg(test)]
pub(super) mod fixture {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use sqlx::Connection;

    use crate::api::{ApiState, router};
    use crate::catalogue::{Catalogue, DEV_CATALOGUE};
    use crate::keys::{self, KeyKind};
    use crate::manage::Manage;
    use crate::publisher::Publisher;
    use crate::seed;
    use crate::store::{KeyRow, Store, UserRow, WorkspaceRow};
    use crate::vault::Vault;

    pub struct Server {
        pub base: String,
        pub store: Store,
        pub client: reqwest::Client,
        /// Secrets by caller: `admin`, `member` (management keys), `inference`.
        pub keys: HashMap<&'static str, String>,
        pub team_workspace: String,
        dir: PathBuf,
        /// The admin URL and the throwaway database, on PostgreSQL.
        postgres: Option<(String, String)>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl Server {
        /// Drops a PostgreSQL test database (a failed test leaves it, to be looked at).
        pub async fn finish(self) {
            if let Some((admin_url, database)) = &self.postgres {
                self.store.pool().close().await;
                let mut admin = sqlx::AnyConnection::connect(admin_url).await.unwrap();
                sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
        }

        /// Sends a request as `caller` (`none` for no key); returns the status and JSON body.
        pub async fn call(
            &self,
            caller: &str,
            method: &str,
            path: &str,
            body: Option<serde_json::Value>,
        ) -> (u16, serde_json::Value) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = self.client.request(method, format!("{}{path}", self.base));
            if let Some(secret) = self.keys.get(caller) {
                request = request.bearer_auth(secret);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or_default())
        }
    }

    /// A new key like `template`, of another kind or user.
    async fn add_key(store: &Store, template: &KeyRow, kind: KeyKind, user: &str) -> String {
        let generated = keys::generate();
        store
            .insert_key(&KeyRow {
                hash: generated.hash,
                label: generated.label,
                kind,
                creator_user_id: user.to_owned(),
                name: format!("{user} key"),
                ..template.clone()
            })
            .await
            .unwrap();
        generated.secret
    }

    /// The databases the REST tests run on.
    #[derive(Clone, Copy, Debug)]
    pub enum Db {
        Sqlite,
        /// A throwaway database on `SWITCHYARD_TEST_POSTGRES` (default: the local server, as
        /// `.ci/run` ensures), dropped by `Server::finish`.
        Postgres,
    }

    pub async fn start(name: &str, db: Db) -> Server {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "switchyard-api-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (url, postgres) = match db {
            Db::Sqlite => (Store::sqlite_url(&dir), None),
            Db::Postgres => {
                let admin_url = std::env::var("SWITCHYARD_TEST_POSTGRES")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let database = format!("switchyard_api_{name}_{}_{nanos}", std::process::id());
                sqlx::any::install_default_drivers();
                let mut admin = sqlx::AnyConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required: {e}"));
                sqlx::query(&format!("CREATE DATABASE {database}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let (base, _) = admin_url.rsplit_once('/').unwrap();
                (format!("{base}/{database}"), Some((admin_url, database)))
            }
        };
        let store = Store::open(&url).await.unwrap();
        store
            .replace_catalogue(
                &Catalogue::parse(DEV_CATALOGUE)
                    .unwrap()
                    .rows(&HashMap::new()),
            )
            .await
            .unwrap();
        let seeded = seed::seed_if_empty(&store).await.unwrap().unwrap();
        let admin_key = store
            .key(&keys::hash(&seeded.management_key))
            .await
            .unwrap()
            .unwrap();
        let org = admin_key.organization_id.clone();
        store
            .insert_user(&UserRow {
                id: "user_member".into(),
                email: "mia@example.com".into(),
                name: "Mia Member".into(),
                created_at: 1,
            })
            .await
            .unwrap();
        store
            .insert_membership(&org, "user_member", "member", 1)
            .await
            .unwrap();
        let team = WorkspaceRow {
            name: "Team".into(),
            slug: "team".into(),
            is_default: false,
            ..seed::default_workspace("ws_team", &org, None, 1)
        };
        store.insert_workspace(&team).await.unwrap();
        store
            .add_workspace_member(&team.id, "user_member", 1)
            .await
            .unwrap();
        let member = add_key(&store, &admin_key, KeyKind::Management, "user_member").await;
        let admin_user = admin_key.creator_user_id.clone();
        let inference = add_key(&store, &admin_key, KeyKind::Inference, &admin_user).await;

        let vault = Arc::new(Vault::new(&Vault::generate_master_key(), &[]).unwrap());

        let publisher = Publisher::start(store.clone(), vault.clone())
            .await
            .unwrap();
        let manage = Manage {
            store: store.clone(),
            publisher: publisher.clone(),
            vault,
            serial: Default::default(),
        };
        let app = router(ApiState {
            store: store.clone(),
            publisher,
            manage,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server {
            base,
            store,
            client: reqwest::Client::new(),
            keys: HashMap::from([
                ("admin", seeded.management_key),
                ("member", member),
                ("inference", inference),
            ]),
            team_workspace: team.id,
            dir,
            postgres,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fixture::{self, Db};

    #[tokio::test]
    async fn presets_over_rest_on_sqlite() {
        presets_over_rest(Db::Sqlite).await;
    }

    #[tokio::test]
    async fn presets_over_rest_on_postgres() {
        presets_over_rest(Db::Postgres).await;
    }

    async fn presets_over_rest(db: Db) {
        let s = fixture::start("presets", db).await;
        let config = json!({
            "model": "mock/fast",
            "provider": { "order": ["mock"] },
            "parameters": { "temperature": 0.2 },
        });

        let (status, created) = s
            .call(
                "admin",
                "POST",
                "/api/v1/presets",
                Some(json!({
                    "slug": "support-bot", "name": "Support bot", "config": config,
                    "system_prompt": "Be brief.",
                })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let preset = &created["data"];
        assert_eq!(preset["status"], "active");
        assert_eq!(preset["designated_version"]["version"], 1);
        assert_eq!(preset["designated_version"]["config"], config);
        assert_eq!(preset["designated_version"]["system_prompt"], "Be brief.");
        assert_eq!(
            preset["designated_version_id"],
            preset["designated_version"]["id"]
        );

        // Refusals, in OpenRouter's error shape.
        let (status, body) = s
            .call(
                "admin",
                "POST",
                "/api/v1/presets",
                Some(json!({ "slug": "x", "name": "X", "config": { "model": "a/b", "temp": 1 } })),
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], 400);
        assert!(body["error"]["message"].as_str().unwrap().contains("temp"));
        let duplicate =
            json!({ "slug": "support-bot", "name": "Again", "config": { "model": "a/b" } });
        let (status, _) = s
            .call("admin", "POST", "/api/v1/presets", Some(duplicate))
            .await;
        assert_eq!(status, 400, "slugs are unique in the organization");
        let (status, _) = s.call("none", "GET", "/api/v1/presets", None).await;
        assert_eq!(status, 401);
        let (status, _) = s
            .call(
                "inference",
                "POST",
                "/api/v1/presets",
                Some(json!({ "slug": "y", "name": "Y", "config": { "model": "a/b" } })),
            )
            .await;
        assert_eq!(status, 403, "writes need a management key");

        // A member creates only in a workspace they belong to.
        let mine =
            json!({ "slug": "mine", "name": "Mine", "config": { "models": ["a/b", "c/d"] } });
        let (status, _) = s
            .call("member", "POST", "/api/v1/presets", Some(mine.clone()))
            .await;
        assert_eq!(status, 403, "not a member of the default workspace");
        let mut in_team = mine;
        in_team["workspace_id"] = json!(s.team_workspace);
        let (status, body) = s
            .call("member", "POST", "/api/v1/presets", Some(in_team))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["data"]["workspace_id"], json!(s.team_workspace));

        // Members manage their own presets, not others'.
        let rename = json!({ "name": "Renamed" });
        let (status, _) = s
            .call(
                "member",
                "PATCH",
                "/api/v1/presets/support-bot",
                Some(rename.clone()),
            )
            .await;
        assert_eq!(status, 403);
        let (status, body) = s
            .call("member", "PATCH", "/api/v1/presets/mine", Some(rename))
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["name"], "Renamed");

        // Any key of the organization reads, inference keys included.
        let (status, list) = s
            .call("inference", "GET", "/api/v1/presets?limit=1", None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(list["total_count"], 2);
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert_eq!(
            list["data"][0]["slug"], "mine",
            "most recently updated first"
        );
        let (status, _) = s
            .call("member", "GET", "/api/v1/presets?limit=101", None)
            .await;
        assert_eq!(status, 400);

        // A new version is immutable and designated only when asked.
        let (status, v2) = s
            .call(
                "admin",
                "POST",
                "/api/v1/presets/support-bot/versions",
                Some(json!({ "config": { "model": "mock/slow" } })),
            )
            .await;
        assert_eq!(status, 201, "{v2}");
        assert_eq!(v2["data"]["version"], 2);
        let (_, got) = s
            .call("member", "GET", "/api/v1/presets/support-bot", None)
            .await;
        assert_eq!(got["data"]["designated_version"]["version"], 1);
        let (status, got) = s
            .call(
                "admin",
                "PATCH",
                "/api/v1/presets/support-bot",
                Some(json!({ "designated_version": 2, "status": "disabled" })),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(got["data"]["designated_version"]["id"], v2["data"]["id"]);
        assert_eq!(got["data"]["status"], "disabled");
        assert!(got["data"]["status_updated_at"].is_string());
        let (status, _) = s
            .call(
                "admin",
                "PATCH",
                "/api/v1/presets/support-bot",
                Some(json!({ "status": "deleted" })),
            )
            .await;
        assert_eq!(status, 400);
        let (status, _) = s
            .call(
                "admin",
                "PATCH",
                "/api/v1/presets/support-bot",
                Some(json!({ "designated_version": 9 })),
            )
            .await;
        assert_eq!(status, 400);

        let (status, versions) = s
            .call(
                "inference",
                "GET",
                "/api/v1/presets/support-bot/versions",
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(versions["total_count"], 2);
        assert_eq!(versions["data"][0]["version"], 1, "oldest first");
        let (status, v1) = s
            .call(
                "member",
                "GET",
                "/api/v1/presets/support-bot/versions/1",
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(v1["data"]["config"], config);
        let (status, _) = s
            .call(
                "member",
                "GET",
                "/api/v1/presets/support-bot/versions/9",
                None,
            )
            .await;
        assert_eq!(status, 404);
        let (status, _) = s
            .call(
                "member",
                "GET",
                "/api/v1/presets/support-bot/versions/one",
                None,
            )
            .await;
        assert_eq!(status, 400);

        let (status, _) = s
            .call("member", "DELETE", "/api/v1/presets/support-bot", None)
            .await;
        assert_eq!(status, 403);
        let (status, body) = s
            .call("admin", "DELETE", "/api/v1/presets/support-bot", None)
            .await;
        assert_eq!((status, body), (200, json!({ "deleted": true })));
        let (status, _) = s
            .call("admin", "GET", "/api/v1/presets/support-bot", None)
            .await;
        assert_eq!(status, 404);
        let actions: Vec<String> = s
            .store
            .audit_log(None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        for action in [
            "preset.create",
            "preset.version.create",
            "preset.update",
            "preset.delete",
        ] {
            assert!(actions.iter().any(|a| a == action), "{action} audited");
        }
        s.finish().await;
    }
}
