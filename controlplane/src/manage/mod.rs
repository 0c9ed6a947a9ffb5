//! Management operations, shared by the REST API (management keys, acting with their user's role)
//! and the operator gRPC API (the operator token). Each operation checks what its actor may do,
//! changes the store, writes the audit log, and publishes a snapshot when dataplanes must see the
//! change. The REST and gRPC layers only translate wire formats.
//!
//! A write is one unit: [`Manage::begin`] gives a `Manage` whose store handle is bound to one
//! transaction; the change, its audit record and (when dataplanes must see it) the configuration
//! version bump all commit together in [`Manage::commit`], which then waits for a snapshot that
//! includes the change. A failure anywhere before the commit rolls everything back; a crash after
//! it is published by the publisher's follower, on this replica or another.
//!
//! Authorization rules, in one place:
//! - an operator may do everything, in every organization;
//! - a member acts only inside their own organization: what belongs to another organization is
//!   reported as not found, so ids cannot be probed;
//! - admin-only operations answer 403 to members;
//! - members see and manage only their own keys, in workspaces they belong to.

pub mod access;
pub mod activity;
pub mod analytics;
pub mod audit;
pub mod budgets;
pub mod byok;
pub mod credits;
pub mod guardrails;
pub mod keys;
pub mod organizations;
pub mod presets;
pub mod workspaces;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use switchyard_policy::{MAX_USD, Money};

use crate::publisher::Publisher;
use crate::store::{Changed, Store, StoreError};
use crate::vault::Vault;

/// A member's role in an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking.
#[derive(Clone, Debug)]
pub enum Actor {
    /// The holder of the operator token, over the gRPC admin API.
    Operator,
    /// A management key, acting with its user's role in the key's organization.
    Member {
        user_id: String,
        organization_id: String,
        role: Role,
        key_hash: String,
    },
}

impl Actor {
    /// How the audit log names this actor (never a secret).
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Operator => "operator".into(),
            Actor::Member {
                user_id, key_hash, ..
            } => format!("user:{user_id} key:{}", &key_hash[..key_hash.len().min(12)]),
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Actor::Operator)
    }

    /// The actor's user, if it is one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Actor::Operator => None,
            Actor::Member { user_id, .. } => Some(user_id),
        }
    }

    /// The organization a member acts in; `None` for the operator.
    pub fn organization_id(&self) -> Option<&str> {
        match self {
            Actor::Operator => None,
            Actor::Member {
                organization_id, ..
            } => Some(organization_id),
        }
    }

    pub fn is_admin_of(&self, organization_id: &str) -> bool {
        match self {
            Actor::Operator => true,
            Actor::Member {
                organization_id: own,
                role,
                ..
            } => own == organization_id && *role == Role::Admin,
        }
    }

    /// May the actor see anything of this organization? Others are "not found".
    pub fn sees(&self, organization_id: &str) -> bool {
        match self {
            Actor::Operator => true,
            Actor::Member {
                organization_id: own,
                ..
            } => own == organization_id,
        }
    }

    /// Fails with 404 outside the actor's organization, 403 for a non-admin inside it.
    pub fn require_admin(&self, organization_id: &str, what: &str) -> Result<(), ManageError> {
        if !self.sees(organization_id) {
            return Err(ManageError::NotFound(format!("{what} not found")));
        }
        if !self.is_admin_of(organization_id) {
            return Err(ManageError::Forbidden(
                "Only organization admins can do this".into(),
            ));
        }
        Ok(())
    }

    /// The organization an operation applies to: the member's own, or the one an operator
    /// names.
    pub fn target_organization(&self, requested: Option<&str>) -> Result<String, ManageError> {
        match (self, requested) {
            (
                Actor::Member {
                    organization_id, ..
                },
                None,
            ) => Ok(organization_id.clone()),
            (
                Actor::Member {
                    organization_id, ..
                },
                Some(r),
            ) if r == organization_id => Ok(organization_id.clone()),
            (Actor::Member { .. }, Some(r)) => {
                Err(ManageError::NotFound(format!("Organization {r} not found")))
            }
            (Actor::Operator, Some(r)) if !r.is_empty() => Ok(r.to_owned()),
            (Actor::Operator, _) => Err(ManageError::Invalid(
                "organization_id is required for operator requests".into(),
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// No usable credential (401).
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with existing state (a duplicate slug, a non-empty workspace).
    #[error("{0}")]
    Conflict(String),
    /// What a create names exists already (409, as OpenRouter answers it).
    #[error("{0}")]
    Exists(String),
    /// Credits would go negative, or a similar refusal on money.
    #[error("{0}")]
    InsufficientCredits(String),
    #[error("internal error")]
    Store(#[from] StoreError),
    #[error("internal error")]
    Vault(#[from] crate::vault::VaultError),
}

pub type ManageResult<T> = Result<T, ManageError>;

/// The management service: the store, the snapshot publisher and the BYOK vault.
#[derive(Clone)]
pub struct Manage {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub vault: Arc<Vault>,
    /// Began inside another operation's transaction: that operation commits.
    nested: bool,
}

/// Whether dataplanes must see a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Publish {
    /// The change is in the snapshot: bump the configuration version and wait until a published
    /// snapshot includes it.
    Snapshot,
    /// Like `Snapshot`, for a change to these keys alone (created, changed or deleted):
    /// dataplanes receive only them, as a key delta.
    Keys(Vec<String>),
    /// The change is the control plane's alone.
    No,
}

impl Manage {
    pub fn new(store: Store, publisher: Arc<Publisher>, vault: Arc<Vault>) -> Manage {
        Manage {
            store,
            publisher,
            vault,
            nested: false,
        }
    }

    /// A `Manage` whose every store call runs in one new transaction, until `commit`. Check
    /// within it, write within it, audit within it. Dropped without `commit`, nothing happened.
    pub async fn begin(&self) -> ManageResult<Manage> {
        Ok(Manage {
            store: self.store.begin().await?,
            publisher: self.publisher.clone(),
            vault: self.vault.clone(),
            nested: self.store.in_transaction(),
        })
    }

    /// Commits this transaction, bumping the configuration version in it when dataplanes must
    /// see the change, and then returns once a published snapshot includes it. Inside another
    /// operation's transaction, only bumps: the outer commit publishes.
    pub async fn commit(self, publish: Publish) -> ManageResult<()> {
        let change = match publish {
            Publish::No => Changed::Nothing,
            Publish::Snapshot => Changed::Anything,
            Publish::Keys(hashes) => Changed::Keys(hashes.into_iter().collect()),
        };
        if change != Changed::Nothing {
            self.store.note_change(change);
            if self.store.bumped_version().is_none() {
                self.store.bump_config_version().await?;
            }
        }
        if self.nested {
            return Ok(());
        }
        self.store.record_changes().await?;
        self.store.commit().await?;
        if let Some(version) = self.store.bumped_version() {
            self.publisher.publish_through(version).await?;
        }
        Ok(())
    }

    /// Takes the organization's lock for the rest of this transaction: check-then-write rules on
    /// it (member cap, last admin, credit balances) hold across every control plane replica
    /// sharing the database.
    pub async fn lock_organization(&self, organization_id: &str) -> ManageResult<()> {
        if !self.store.lock_organization(organization_id).await? {
            return Err(ManageError::NotFound(format!(
                "Organization {organization_id} not found"
            )));
        }
        Ok(())
    }
}

/// OpenRouter's page size: 50 unless asked, at most 100.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 100;

/// Validates a page request: `offset >= 0`, `limit` in `1..=100` (default 50).
pub fn page(offset: Option<i64>, limit: Option<i64>) -> ManageResult<(i64, i64)> {
    let offset = offset.unwrap_or(0);
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if offset < 0 {
        return Err(ManageError::Invalid("offset must not be negative".into()));
    }
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ManageError::Invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok((offset, limit))
}

/// A new id with a readable type prefix, time-ordered (UUIDv7).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Trims and bounds a human-readable name.
pub fn valid_name(field: &str, name: &str, max: usize) -> ManageResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ManageError::Invalid(format!("{field} is required")));
    }
    if name.chars().count() > max {
        return Err(ManageError::Invalid(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(name.to_owned())
}

/// A URL-safe slug: lowercase letters, digits and dashes, 1–64 characters.
pub fn valid_slug(slug: &str) -> ManageResult<String> {
    let ok = !slug.is_empty()
        && slug.len() <= 64
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if !ok {
        return Err(ManageError::Invalid(format!(
            "slug {slug:?} must be 1-64 lowercase letters, digits or dashes"
        )));
    }
    Ok(slug.to_owned())
}

/// An amount of USD from a client, by the rule both planes apply (`Money`): finite, not
/// negative, at most `MAX_USD`, kept to the micro-dollar. Whatever passes here, every dataplane
/// accepts.
pub fn money(field: &str, value: f64) -> ManageResult<Money> {
    Money::from_usd_f64(value).map_err(|_| {
        ManageError::Invalid(format!(
            "{field} must be a number of USD between 0 and {MAX_USD}"
        ))
    })
}

/// A stored amount (exact decimal USD); a value that no longer parses is a corrupt row.
pub fn stored_money(what: &str, text: &str) -> ManageResult<Money> {
    Money::parse_usd(text)
        .map_err(|e| ManageError::Store(StoreError::Corrupt(format!("{what}: {e}"))))
}

/// Micro-dollars of the credit ledger (a sum may be negative: more moved out than in) as USD,
/// for JSON fields OpenRouter reports as numbers.
pub fn micros_usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: Role) -> Actor {
        Actor::Member {
            user_id: "u1".into(),
            organization_id: "o1".into(),
            role,
            key_hash: "h".repeat(64),
        }
    }

    #[test]
    fn admins_act_only_in_their_own_organization() {
        assert!(member(Role::Admin).require_admin("o1", "x").is_ok());
        assert!(matches!(
            member(Role::Member).require_admin("o1", "x"),
            Err(ManageError::Forbidden(_))
        ));
        assert!(matches!(
            member(Role::Admin).require_admin("o2", "x"),
            Err(ManageError::NotFound(_))
        ));
        assert!(Actor::Operator.require_admin("o2", "x").is_ok());
    }

    #[test]
    fn members_cannot_name_another_organization() {
        assert_eq!(member(Role::Admin).target_organization(None).unwrap(), "o1");
        assert!(member(Role::Admin).target_organization(Some("o2")).is_err());
        assert!(Actor::Operator.target_organization(None).is_err());
        assert_eq!(
            Actor::Operator.target_organization(Some("o2")).unwrap(),
            "o2"
        );
    }

    #[test]
    fn money_and_slugs_are_validated() {
        assert_eq!(money("limit", 5.5).unwrap().to_string(), "5.5");
        assert_eq!(
            money("limit", 20_000_000.0).unwrap().to_string(),
            "20000000"
        );
        assert!(money("limit", -1.0).is_err());
        assert!(money("limit", 1e9 + 1.0).is_err());
        assert_eq!(money("amount", 1.234567).unwrap().micros_floor(), 1_234_567);
        assert!(money("amount", f64::INFINITY).is_err());
        assert!(valid_slug("team-a").is_ok());
        assert!(valid_slug("Team A").is_err());
        assert!(valid_slug("").is_err());
    }
}
