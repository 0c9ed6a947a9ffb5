//! Management operations, shared by the REST API (management keys, acting with their user's role)
//! and the operator gRPC API (the operator token). Each operation checks what its actor may do,
//! changes the store, writes the audit log, and publishes a snapshot when dataplanes must see the
//! change. The REST and gRPC layers only translate wire formats.
//!
//! Authorization rules, in one place:
//! - an operator may do everything, in every organization;
//! - a member acts only inside their own organization: what belongs to another organization is
//!   reported as not found, so ids cannot be probed;
//! - admin-only operations answer 403 to members;
//! - members see and manage only their own keys, in workspaces they belong to.

pub mod audit;
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

use crate::publisher::Publisher;
use crate::store::{Store, StoreError};
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
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with existing state (a duplicate slug, a non-empty workspace).
    #[error("{0}")]
    Conflict(String),
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
    /// Serialises check-then-write changes (member cap, last admin, credit transfers) within
    /// this control plane. Replicas sharing one PostgreSQL would need row locks instead.
    pub serial: Arc<tokio::sync::Mutex<()>>,
}

impl Manage {
    /// Pushes a snapshot that includes every change committed so far.
    pub async fn publish(&self) -> ManageResult<()> {
        self.publisher.publish().await?;
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

/// USD as an exact decimal string to the micro-dollar, within `0..=1e9`.
pub fn usd_text(field: &str, value: f64) -> ManageResult<String> {
    if !value.is_finite() || !(0.0..=1e9).contains(&value) {
        return Err(ManageError::Invalid(format!(
            "{field} must be a number of USD between 0 and 1000000000"
        )));
    }
    let text = format!("{value:.6}");
    Ok(text.trim_end_matches('0').trim_end_matches('.').to_owned())
}

/// USD to whole micro-dollars, for sums kept exact in SQL.
pub fn usd_micros(field: &str, value: f64) -> ManageResult<i64> {
    if !value.is_finite() || value.abs() > 1e9 {
        return Err(ManageError::Invalid(format!(
            "{field} must be a finite number of USD of at most 1000000000"
        )));
    }
    Ok((value * 1e6).round() as i64)
}

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
        assert_eq!(usd_text("limit", 5.5).unwrap(), "5.5");
        assert!(usd_text("limit", -1.0).is_err());
        assert_eq!(usd_micros("amount", 1.234567).unwrap(), 1_234_567);
        assert!(usd_micros("amount", f64::INFINITY).is_err());
        assert!(valid_slug("team-a").is_ok());
        assert!(valid_slug("Team A").is_err());
        assert!(valid_slug("").is_err());
    }
}
