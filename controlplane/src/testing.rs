//! Test support shared by every control-plane test (feature `testing`): throwaway databases
//! (SQLite in its own directory, PostgreSQL created and dropped), one seeded fixture with an
//! admin, a member and an admin of another organization, and the REST API on a real socket.
//!
//! Compiled only for tests, where a failed assumption should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

use crate::api::{self, ApiState};
use crate::catalogue::{Catalogue, DEV_CATALOGUE};
use crate::keys::{self, KeyKind};
use crate::manage::{Actor, Manage, Role};
use crate::publisher::Publisher;
use crate::seed;
use crate::store::{NewKey, OrganizationRow, Store, UserRow};
use crate::vault::Vault;

/// A name no other test of this process (or a concurrent one) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database that exists for one test.
pub struct Database {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Database {
    /// A SQLite database in a directory of its own, removed afterwards.
    pub fn sqlite() -> Database {
        let dir = std::env::temp_dir().join(unique("switchyard-test"));
        std::fs::create_dir_all(&dir).unwrap();
        Database {
            url: Store::sqlite_url(&dir),
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A new PostgreSQL database on the server at `SWITCHYARD_TEST_POSTGRES` (default: the local
    /// one, as `.ci/run` ensures), dropped by `drop`.
    pub async fn postgres() -> Database {
        sqlx::any::install_default_drivers();
        let admin_url = std::env::var("SWITCHYARD_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut admin = sqlx::AnyConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required: {e}"));
        let name = unique("switchyard_test");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        Database {
            url: format!("{base}/{name}"),
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.clone(),
                name,
            },
        }
    }

    /// Removes the database (PostgreSQL needs an async call, so this is not `Drop`).
    pub async fn drop(self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(mut admin) = sqlx::AnyConnection::connect(admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            }
        }
    }
}

/// A seeded control plane over one database: the seeded organization with its admin (the seed's
/// user), a member in its Default workspace, and another organization with its own admin.
pub struct Fixture {
    pub manage: Manage,
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub organization_id: String,
    pub default_workspace_id: String,
    pub admin: Actor,
    pub admin_user: String,
    /// The seed's management key (the admin's).
    pub management_secret: String,
    /// The seed's inference key (the admin's).
    pub inference_secret: String,
    pub member: Actor,
    pub member_user: String,
    pub other_organization_id: String,
    pub outsider: Actor,
    pub outsider_user: String,
}

pub async fn fixture(url: &str) -> Fixture {
    let store = Store::open(url).await.unwrap();
    store
        .replace_catalogue(
            &Catalogue::parse(DEV_CATALOGUE)
                .unwrap()
                .rows(&HashMap::new()),
        )
        .await
        .unwrap();
    let seeded = seed::seed_if_empty(&store).await.unwrap().unwrap();
    let management = store
        .key(&keys::hash(&seeded.management_key))
        .await
        .unwrap()
        .unwrap();
    let organization_id = management.organization_id.clone();
    let admin_user = management.creator_user_id.clone();
    let default = store
        .default_workspace(&organization_id)
        .await
        .unwrap()
        .unwrap();

    let member_user = add_user(&store, "member@example.com").await;
    store
        .insert_membership(&organization_id, &member_user, "member", 1)
        .await
        .unwrap();
    store
        .add_workspace_member(&default.id, &member_user, 1)
        .await
        .unwrap();

    let other_organization_id = "org_other".to_owned();
    store
        .insert_organization(&OrganizationRow {
            id: other_organization_id.clone(),
            name: "Other".into(),
            kind: "organization".into(),
            owner_user_id: None,
            member_cap: 10,
            filtered_model_catalog: false,
            enforce_zdr: false,
            deny_data_collection: false,
            created_at: 1,
        })
        .await
        .unwrap();
    let outsider_user = add_user(&store, "outsider@example.com").await;
    store
        .insert_membership(&other_organization_id, &outsider_user, "admin", 1)
        .await
        .unwrap();
    store
        .insert_workspace(&seed::default_workspace(
            "ws_other_default",
            &other_organization_id,
            Some(&outsider_user),
            1,
        ))
        .await
        .unwrap();
    // What the fixture wrote directly is configuration too: number it.
    store.bump_config_version().await.unwrap();

    let vault = Arc::new(Vault::new(&Vault::generate_master_key(), &[]).unwrap());
    let publisher = Publisher::start(store.clone(), vault.clone())
        .await
        .unwrap();
    let manage = Manage::new(store.clone(), publisher.clone(), vault);
    Fixture {
        manage,
        store,
        publisher,
        admin: Actor::Member {
            user_id: admin_user.clone(),
            organization_id: organization_id.clone(),
            role: Role::Admin,
            key_hash: management.hash.clone(),
        },
        member: Actor::Member {
            user_id: member_user.clone(),
            organization_id: organization_id.clone(),
            role: Role::Member,
            key_hash: "m".repeat(64),
        },
        outsider: Actor::Member {
            user_id: outsider_user.clone(),
            organization_id: other_organization_id.clone(),
            role: Role::Admin,
            key_hash: "o".repeat(64),
        },
        default_workspace_id: default.id,
        organization_id,
        admin_user,
        member_user,
        other_organization_id,
        outsider_user,
        management_secret: seeded.management_key,
        inference_secret: seeded.inference_key,
    }
}

/// A user with a personal account; their id is `user_<local part>`.
/// Another control plane on the database at `url`, as a second replica behind a load balancer:
/// its own pool, vault and publisher (following the store), no memory shared.
pub async fn second_replica(url: &str) -> Manage {
    let store = Store::open(url).await.unwrap();
    let vault = Arc::new(Vault::new(&Vault::generate_master_key(), &[]).unwrap());
    let publisher = Publisher::start(store.clone(), vault.clone())
        .await
        .unwrap();
    tokio::spawn(publisher.clone().follow());
    Manage::new(store, publisher, vault)
}

/// Waits (up to 20 s) until `publisher` has published configuration version `version`.
pub async fn published_through(publisher: &Publisher, version: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while publisher.current_version() < version {
        assert!(
            std::time::Instant::now() < deadline,
            "version {version} was never published (at {})",
            publisher.current_version()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub async fn add_user(store: &Store, email: &str) -> String {
    let id = format!("user_{}", email.split('@').next().unwrap());
    store
        .insert_user(&UserRow {
            id: id.clone(),
            email: email.into(),
            name: email.into(),
            created_at: 1,
        })
        .await
        .unwrap();
    store
        .insert_organization(&seed::personal_account(&id, email, 1))
        .await
        .unwrap();
    id
}

/// A key written straight to the store (no authorization checks): `(hash, secret)`.
pub async fn add_key(
    store: &Store,
    organization_id: &str,
    workspace_id: &str,
    user: &str,
    kind: KeyKind,
) -> (String, String) {
    let generated = keys::generate();
    store
        .insert_key(&NewKey {
            hash: generated.hash.clone(),
            kind,
            name: "k".into(),
            label: generated.label,
            organization_id: organization_id.to_owned(),
            workspace_id: workspace_id.to_owned(),
            creator_user_id: user.to_owned(),
            disabled: false,
            limit_usd: None,
            limit_reset: None,
            include_byok_in_limit: false,
            expires_at: None,
            created_at: 1,
            updated_at: None,
            rotated_from: None,
            limit_lineage: None,
        })
        .await
        .unwrap();
    (generated.hash, generated.secret)
}

/// Serves the REST API over a real socket; returns its base URL (`http://127.0.0.1:<port>`).
pub async fn serve(manage: &Manage) -> String {
    let app = api::router(ApiState {
        manage: manage.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The databases REST tests run on.
#[derive(Clone, Copy, Debug)]
pub enum Db {
    Sqlite,
    /// A throwaway database on `SWITCHYARD_TEST_POSTGRES` (default: the local server).
    Postgres,
}

impl Db {
    pub async fn create(self) -> Database {
        match self {
            Db::Sqlite => Database::sqlite(),
            Db::Postgres => Database::postgres().await,
        }
    }
}

/// The REST API over a real socket on the fixture, with a second workspace, `team`, that the
/// member belongs to (and is the only one they belong to), and keys for each kind of caller.
pub struct RestServer {
    pub base: String,
    pub fixture: Fixture,
    pub client: reqwest::Client,
    /// Secrets by caller: `admin`, `member` (management keys), `inference` (the admin's).
    pub keys: HashMap<&'static str, String>,
    pub team_workspace: String,
    database: Database,
}

impl RestServer {
    pub async fn start(db: Db) -> RestServer {
        let database = db.create().await;
        let f = fixture(&database.url).await;
        let team = crate::store::WorkspaceRow {
            name: "Team".into(),
            slug: "team".into(),
            is_default: false,
            ..seed::default_workspace("ws_team", &f.organization_id, None, 1)
        };
        f.store.insert_workspace(&team).await.unwrap();
        f.store
            .add_workspace_member(&team.id, &f.member_user, 1)
            .await
            .unwrap();
        f.store
            .remove_workspace_members(
                &f.default_workspace_id,
                std::slice::from_ref(&f.member_user),
            )
            .await
            .unwrap();
        let (_, member) = add_key(
            &f.store,
            &f.organization_id,
            &f.default_workspace_id,
            &f.member_user,
            KeyKind::Management,
        )
        .await;
        f.store.bump_config_version().await.unwrap();
        let base = serve(&f.manage).await;
        RestServer {
            base,
            client: reqwest::Client::new(),
            keys: HashMap::from([
                ("admin", f.management_secret.clone()),
                ("member", member),
                ("inference", f.inference_secret.clone()),
            ]),
            team_workspace: team.id,
            fixture: f,
            database,
        }
    }

    pub fn store(&self) -> &Store {
        &self.fixture.store
    }

    /// Drops the database (a failed test leaves it, to be looked at).
    pub async fn finish(self) {
        self.fixture.store.pool().close().await;
        self.database.drop().await;
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
