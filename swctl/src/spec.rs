//! The declarative file `swctl apply` reads (see `deploy/switchyard.example.yaml`).
//!
//! Objects are named by natural keys: organization name, user email, workspace slug (within an
//! organization), key name (within a workspace), preset slug (within an organization). A field
//! left out is not managed: apply neither sets nor checks it. Unknown fields are refused, so a
//! misspelt one fails loudly instead of being ignored.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub organizations: Vec<OrganizationSpec>,
    #[serde(default)]
    pub users: Vec<UserSpec>,
    #[serde(default)]
    pub memberships: Vec<MembershipSpec>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrganizationSpec {
    pub name: String,
    /// 0 means unlimited.
    pub member_cap: Option<i64>,
    pub filtered_model_catalog: Option<bool>,
    /// Privacy: only zero-data-retention endpoints serve the organization.
    pub enforce_zdr: Option<bool>,
    /// Privacy: only endpoints that neither retain nor train on prompts.
    pub deny_data_collection: Option<bool>,
    #[serde(default)]
    pub workspaces: Vec<WorkspaceSpec>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub email: String,
    pub name: String,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoleSpec {
    Admin,
    #[default]
    Member,
}

impl RoleSpec {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleSpec::Admin => "admin",
            RoleSpec::Member => "member",
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MembershipSpec {
    /// Organization name.
    pub org: String,
    /// User email.
    pub user: String,
    #[serde(default)]
    pub role: RoleSpec,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    pub slug: String,
    /// The slug when left out at creation.
    pub name: Option<String>,
    /// An empty string means none.
    pub description: Option<String>,
    /// Only the fields given are managed; others on the server are left alone.
    pub settings: Option<Map<String, Value>>,
    /// Emails of the organization members who belong to the workspace (a key's owner must,
    /// unless an admin). Left out: not managed. Every member belongs to `default` anyway.
    pub members: Option<Vec<String>>,
    #[serde(default)]
    pub keys: Vec<KeySpec>,
    #[serde(default)]
    pub presets: Vec<PresetSpec>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LimitResetSpec {
    Daily,
    Weekly,
    Monthly,
    /// No reset period.
    Never,
}

impl LimitResetSpec {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitResetSpec::Daily => "daily",
            LimitResetSpec::Weekly => "weekly",
            LimitResetSpec::Monthly => "monthly",
            LimitResetSpec::Never => "never",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyKindSpec {
    #[default]
    Inference,
    Management,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub name: String,
    /// Spend limit in USD; `null` means no limit, leaving it out leaves it unmanaged.
    #[serde(default, deserialize_with = "present")]
    pub limit: Option<Option<f64>>,
    pub limit_reset: Option<LimitResetSpec>,
    pub disabled: Option<bool>,
    /// Only at creation: a key's kind never changes.
    #[serde(default)]
    pub kind: KeyKindSpec,
    /// Email of the member the key acts for, at creation; the server picks an admin when left
    /// out.
    pub owner: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PresetSpec {
    pub slug: String,
    /// The slug when left out at creation.
    pub name: Option<String>,
    /// An empty string means none.
    pub description: Option<String>,
    /// The preset's history, oldest first. Versions are immutable: apply appends the ones the
    /// server lacks and designates the last.
    pub versions: Vec<VersionSpec>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// `model` or `models`, and optionally `provider` and `parameters`.
    pub config: Value,
    pub system_prompt: Option<String>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, String> {
        let mut spec: Spec = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        spec.normalize();
        spec.validate()?;
        Ok(spec)
    }

    /// Emails as the server stores them (trimmed, lowercase), so that they match.
    fn normalize(&mut self) {
        let email = |e: &mut String| *e = e.trim().to_ascii_lowercase();
        self.users.iter_mut().for_each(|u| email(&mut u.email));
        self.memberships.iter_mut().for_each(|m| email(&mut m.user));
        for org in &mut self.organizations {
            for ws in &mut org.workspaces {
                ws.members.iter_mut().flatten().for_each(email);
                for key in &mut ws.keys {
                    if let Some(owner) = &mut key.owner {
                        email(owner);
                    }
                }
            }
        }
    }

    /// Checks what the file alone can tell: natural keys are unique where they must be.
    pub fn validate(&self) -> Result<(), String> {
        unique(
            "organization",
            self.organizations.iter().map(|o| o.name.as_str()),
        )?;
        unique("user", self.users.iter().map(|u| u.email.as_str()))?;
        unique(
            "membership",
            self.memberships
                .iter()
                .map(|m| format!("{} in {}", m.user, m.org)),
        )?;
        for org in &self.organizations {
            if org.name.trim().is_empty() {
                return Err("an organization has an empty name".into());
            }
            unique(
                &format!("workspace of {}", org.name),
                org.workspaces.iter().map(|w| w.slug.as_str()),
            )?;
            unique(
                &format!("preset of {}", org.name),
                org.workspaces
                    .iter()
                    .flat_map(|w| w.presets.iter().map(|p| p.slug.as_str())),
            )?;
            for ws in &org.workspaces {
                unique(
                    &format!("key of {}/{}", org.name, ws.slug),
                    ws.keys.iter().map(|k| k.name.as_str()),
                )?;
                for preset in &ws.presets {
                    if preset.versions.is_empty() {
                        return Err(format!(
                            "preset {} of {} declares no version",
                            preset.slug, org.name
                        ));
                    }
                }
            }
        }
        for m in &self.memberships {
            if !self.organizations.iter().any(|o| o.name == m.org) {
                return Err(format!(
                    "membership of {} names organization {:?}, which the file does not declare",
                    m.user, m.org
                ));
            }
        }
        Ok(())
    }
}

fn unique<S: AsRef<str>>(what: &str, names: impl Iterator<Item = S>) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        let name = name.as_ref().to_owned();
        if !seen.insert(name.clone()) {
            return Err(format!("{what} {name:?} is declared twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_absent_limits_differ() {
        let spec = Spec::parse(
            "organizations:\n- name: A\n  workspaces:\n  - slug: default\n    keys:\n    - name: a\n      limit: null\n    - name: b\n    - name: c\n      limit: 2.5\n",
        )
        .unwrap();
        let keys = &spec.organizations[0].workspaces[0].keys;
        assert_eq!(keys[0].limit, Some(None));
        assert_eq!(keys[1].limit, None);
        assert_eq!(keys[2].limit, Some(Some(2.5)));
    }

    #[test]
    fn misspelt_fields_and_duplicates_are_refused() {
        assert!(Spec::parse("organisations: []").is_err());
        assert!(Spec::parse("organizations:\n- name: A\n- name: A\n").is_err());
        assert!(
            Spec::parse("organizations:\n- name: A\nmemberships:\n- {org: B, user: a@x}\n")
                .unwrap_err()
                .contains("does not declare")
        );
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../deploy/switchyard.example.yaml");
        let spec = Spec::parse(text).unwrap();
        assert!(!spec.organizations.is_empty());
    }
}
