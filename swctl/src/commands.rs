//! The imperative commands: `get`, `create`, `delete`, `rotate`, `transfer`, `assign`,
//! `unassign`. Each is one or two RPCs and prints what the server answered.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use switchyard_proto::admin::v1 as pb;

use crate::client::Admin;
use crate::output::{self, Format, Record};
use crate::{state, views};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Resource {
    #[value(alias = "org", alias = "organizations")]
    Orgs,
    #[value(alias = "user")]
    Users,
    #[value(alias = "member")]
    Members,
    #[value(alias = "workspace", alias = "ws")]
    Workspaces,
    #[value(alias = "key")]
    Keys,
    Credits,
    Ledger,
    #[value(alias = "preset")]
    Presets,
    Byok,
    Audit,
    #[value(alias = "guardrail")]
    Guardrails,
    /// The dataplanes the control plane has heard from, with the records they set aside.
    #[value(alias = "dataplane")]
    Dataplanes,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub what: Resource,
    /// Organization id or name (members, workspaces, keys, credits, ledger, presets, byok,
    /// guardrails; optional for audit).
    #[arg(long)]
    pub org: Option<String>,
    /// Workspace id or slug, to narrow members, keys, presets, BYOK credentials or guardrails.
    #[arg(long)]
    pub workspace: Option<String>,
    /// For credits and ledger: a user's personal account (id or email) instead of --org.
    #[arg(long)]
    pub user: Option<String>,
    /// Most entries to show (ledger, audit).
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// Also list disabled keys.
    #[arg(long)]
    pub include_disabled: bool,
    /// Presets: also show every version (JSON and YAML output).
    #[arg(long)]
    pub versions: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Admin,
    Member,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    Inference,
    Management,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ResetArg {
    Daily,
    Weekly,
    Monthly,
}

#[derive(Debug, Subcommand)]
pub enum Create {
    /// A new organization, with its default workspace.
    #[command(alias = "organization")]
    Org {
        name: String,
        /// Most members; 0 means unlimited. The server's default when left out.
        #[arg(long)]
        member_cap: Option<i64>,
    },
    /// A new user, with their personal account.
    User {
        email: String,
        #[arg(long)]
        name: String,
    },
    /// Adds a user to an organization.
    Member {
        /// User id or email.
        user: String,
        #[arg(long)]
        org: String,
        #[arg(long, value_enum, default_value = "member")]
        role: RoleArg,
    },
    /// Adds an organization member to a workspace.
    WorkspaceMember {
        /// User id or email.
        user: String,
        #[arg(long)]
        org: String,
        /// Workspace id or slug.
        #[arg(long)]
        workspace: String,
    },
    Workspace {
        slug: String,
        #[arg(long)]
        org: String,
        /// The slug when left out.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// A JSON object.
        #[arg(long)]
        settings: Option<String>,
    },
    /// A new API key; its secret is printed once.
    Key {
        name: String,
        #[arg(long)]
        org: String,
        /// Workspace id or slug; the default workspace when left out.
        #[arg(long)]
        workspace: Option<String>,
        /// The member the key acts for (id or email); an admin of the organization when left
        /// out.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, value_enum, default_value = "inference")]
        kind: KindArg,
        /// Spend limit in USD.
        #[arg(long)]
        limit: Option<f64>,
        #[arg(long, value_enum)]
        limit_reset: Option<ResetArg>,
        #[arg(long)]
        include_byok_in_limit: bool,
        #[arg(long)]
        disabled: bool,
    },
    /// Grants credits to an organization or a personal account.
    Grant {
        /// Organization id or name.
        #[arg(long, required_unless_present = "user", conflicts_with = "user")]
        org: Option<String>,
        /// A user (id or email), for their personal account.
        #[arg(long)]
        user: Option<String>,
        /// USD.
        #[arg(long)]
        amount: f64,
        #[arg(long)]
        reason: String,
    },
    /// A preset with its first version.
    Preset {
        slug: String,
        #[arg(long)]
        org: String,
        /// The version's config, a JSON object (`{"model": "..."}`), or @FILE.
        #[arg(long)]
        config: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        system_prompt: Option<String>,
        #[arg(long)]
        workspace: Option<String>,
    },
    /// A BYOK provider credential. The secret is read from a file or an environment variable,
    /// never from the command line, where other users could see it.
    Byok {
        #[arg(long)]
        org: String,
        /// Provider slug, e.g. `openai`.
        #[arg(long)]
        provider: String,
        /// File holding the provider's API key; `-` for standard input.
        #[arg(
            long,
            required_unless_present = "secret_env",
            conflicts_with = "secret_env"
        )]
        secret_file: Option<PathBuf>,
        /// Environment variable holding the provider's API key.
        #[arg(long)]
        secret_env: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        workspace: Option<String>,
        /// Provider-specific options, a JSON object.
        #[arg(long)]
        settings: Option<String>,
        #[arg(long)]
        disabled: bool,
    },
    /// A guardrail: model and provider restrictions and a budget. It enforces nothing until it
    /// is assigned to keys or members (`swctl assign guardrail`).
    Guardrail {
        name: String,
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// Workspace id or slug; the default workspace when left out.
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Budget in USD per --reset period.
        #[arg(long, requires = "reset")]
        limit_usd: Option<f64>,
        /// How often the budget resets.
        #[arg(long, value_enum, requires = "limit_usd")]
        reset: Option<ResetArg>,
        /// Count BYOK usage against the budget.
        #[arg(long)]
        include_byok_in_budgets: bool,
        /// A model that may be used (repeat for more); all models when none is given.
        #[arg(long = "allow-model", value_name = "MODEL")]
        allow_models: Vec<String>,
        /// A model that may not be used (repeatable).
        #[arg(long = "ignore-model", value_name = "MODEL")]
        ignore_models: Vec<String>,
        /// A provider that may serve requests (repeatable); all providers when none is given.
        #[arg(long = "allow-provider", value_name = "PROVIDER")]
        allow_providers: Vec<String>,
        /// A provider that may not serve requests (repeatable).
        #[arg(long = "ignore-provider", value_name = "PROVIDER")]
        ignore_providers: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Delete {
    /// Removes a user from an organization.
    Member {
        /// User id or email.
        user: String,
        #[arg(long)]
        org: String,
    },
    /// Removes a user from a workspace.
    WorkspaceMember {
        /// User id or email.
        user: String,
        #[arg(long)]
        org: String,
        /// Workspace id or slug.
        #[arg(long)]
        workspace: String,
    },
    Workspace {
        /// Workspace id or slug.
        workspace: String,
        #[arg(long)]
        org: String,
        /// Also delete its keys, presets and credentials.
        #[arg(long)]
        force: bool,
    },
    Key {
        hash: String,
    },
    Preset {
        slug: String,
        #[arg(long)]
        org: String,
    },
    Byok {
        id: String,
        #[arg(long)]
        org: String,
    },
    /// A guardrail and its assignments (never a workspace's default guardrail).
    Guardrail {
        id: String,
    },
}

/// What `assign` and `unassign` take: a guardrail, and the keys and members it applies to.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("targets").required(true).multiple(true).args(["keys", "users"])))]
pub struct GuardrailTargets {
    /// The guardrail's id.
    pub id: String,
    /// A key's hash (repeat, or give several).
    #[arg(long = "key", value_name = "HASH", num_args = 1..)]
    pub keys: Vec<String>,
    /// A member of the guardrail's organization, by id or email (repeat, or give several).
    #[arg(long = "user", value_name = "USER", num_args = 1..)]
    pub users: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Assign {
    /// Applies a guardrail to keys (replacing the one each held) and members.
    Guardrail(GuardrailTargets),
}

#[derive(Debug, Subcommand)]
pub enum Unassign {
    /// Stops applying a guardrail to keys and members.
    Guardrail(GuardrailTargets),
}

#[derive(Debug, Subcommand)]
pub enum Rotate {
    /// Issues a new secret for a key; the old one works until the grace period ends.
    Key {
        hash: String,
        /// How long the old secret keeps working: `30s`, `15m`, `1h`, `2d` (0 ends it now).
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        grace: u64,
    },
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// User id or email; credits leave their personal account.
    #[arg(long)]
    pub from_user: String,
    /// Organization id or name; the user must be a member.
    #[arg(long)]
    pub to_org: String,
    /// USD.
    #[arg(long)]
    pub amount: f64,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Organization id or name.
    #[arg(long)]
    pub org: String,
    /// First UTC day (YYYY-MM-DD); default: 30 days before today.
    #[arg(long)]
    pub start: Option<String>,
    /// Last UTC day, inclusive; default: yesterday.
    #[arg(long)]
    pub end: Option<String>,
    /// One of model, api_key, creator, workspace, user, day.
    #[arg(long, default_value = "model")]
    pub group_by: String,
    /// csv or pdf.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Only this workspace (id).
    #[arg(long)]
    pub workspace: Option<String>,
    /// Only this key (its hash).
    #[arg(long)]
    pub key: Option<String>,
    /// Only keys this member created (user id).
    #[arg(long)]
    pub member: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// Only requests with this `user`.
    #[arg(long)]
    pub user: Option<String>,
    /// Where to write it; `-` for standard output. Default: the report's own name, here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Seconds from `90`, `90s`, `15m`, `1h` or `2d`.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 15m, 1h or 2d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// An organization id from an id or a name (organizations only, not personal accounts).
pub async fn org_id(client: &mut Admin, reference: &str) -> anyhow::Result<String> {
    let orgs = client
        .list_organizations(pb::ListOrganizationsRequest {})
        .await?
        .into_inner()
        .organizations;
    if let Some(o) = orgs.iter().find(|o| o.id == reference) {
        return Ok(o.id.clone());
    }
    let named: Vec<&pb::Organization> = orgs
        .iter()
        .filter(|o| state::is_organization(o) && o.name == reference)
        .collect();
    match named.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => bail!("no organization has the id or name {reference:?}"),
        _ => bail!("several organizations are named {reference:?}: use an id"),
    }
}

/// A user id from an id or an email.
pub async fn user_id(client: &mut Admin, reference: &str) -> anyhow::Result<String> {
    if !reference.contains('@') {
        return Ok(reference.to_owned());
    }
    let email = reference.trim().to_ascii_lowercase();
    let users = client
        .list_users(pb::ListUsersRequest {})
        .await?
        .into_inner()
        .users;
    users
        .into_iter()
        .find(|u| u.email == email)
        .map(|u| u.id)
        .ok_or_else(|| anyhow!("no user has the email {email}"))
}

/// The credit owner named by `--org` or `--user` (their personal account).
async fn owner_id(
    client: &mut Admin,
    org: Option<&str>,
    user: Option<&str>,
) -> anyhow::Result<String> {
    match (org, user) {
        (Some(org), _) => org_id(client, org).await,
        (None, Some(user)) => {
            let user = user_id(client, user).await?;
            let orgs = client
                .list_organizations(pb::ListOrganizationsRequest {})
                .await?
                .into_inner()
                .organizations;
            orgs.into_iter()
                .find(|o| !state::is_organization(o) && o.owner_user_id == user)
                .map(|o| o.id)
                .ok_or_else(|| anyhow!("user {user} has no personal account"))
        }
        (None, None) => bail!("name the owner with --org or --user"),
    }
}

fn need<'a>(value: &'a Option<String>, flag: &str, what: &str) -> anyhow::Result<&'a str> {
    value
        .as_deref()
        .ok_or_else(|| anyhow!("`get {what}` needs {flag}"))
}

pub async fn get(client: &mut Admin, format: Format, a: GetArgs) -> anyhow::Result<()> {
    let records: Vec<Record> = match a.what {
        Resource::Orgs => client
            .list_organizations(pb::ListOrganizationsRequest {})
            .await?
            .into_inner()
            .organizations
            .iter()
            .map(views::organization)
            .collect(),
        Resource::Users => client
            .list_users(pb::ListUsersRequest {})
            .await?
            .into_inner()
            .users
            .iter()
            .map(views::user)
            .collect(),
        Resource::Members if a.workspace.is_some() => {
            let org = org_id(client, need(&a.org, "--org", "members")?).await?;
            let workspace = a.workspace.clone().unwrap_or_default();
            let members = client
                .list_workspace_members(pb::ListWorkspaceMembersRequest {
                    organization_id: org,
                    workspace,
                })
                .await?
                .into_inner()
                .members;
            members.iter().map(views::workspace_member).collect()
        }
        Resource::Members => {
            let org = org_id(client, need(&a.org, "--org", "members")?).await?;
            let mut out = Vec::new();
            loop {
                let page = client
                    .list_members(pb::ListMembersRequest {
                        organization_id: org.clone(),
                        offset: out.len() as i64,
                        limit: 500,
                    })
                    .await?
                    .into_inner();
                let fetched = page.members.len();
                out.extend(page.members.iter().map(views::member));
                if fetched == 0 || out.len() as i64 >= page.total {
                    break out;
                }
            }
        }
        Resource::Workspaces => {
            let org = org_id(client, need(&a.org, "--org", "workspaces")?).await?;
            client
                .list_workspaces(pb::ListWorkspacesRequest {
                    organization_id: org,
                })
                .await?
                .into_inner()
                .workspaces
                .iter()
                .map(views::workspace)
                .collect()
        }
        Resource::Keys => {
            let org = org_id(client, need(&a.org, "--org", "keys")?).await?;
            client
                .list_keys(pb::ListKeysRequest {
                    organization_id: org,
                    workspace: a.workspace.clone().unwrap_or_default(),
                    include_disabled: a.include_disabled,
                    offset: 0,
                    limit: a.limit.max(1),
                })
                .await?
                .into_inner()
                .keys
                .iter()
                .map(views::key)
                .collect()
        }
        Resource::Credits => {
            let owner = owner_id(client, a.org.as_deref(), a.user.as_deref()).await?;
            let credits = client
                .get_credits(pb::GetCreditsRequest { owner_id: owner })
                .await?
                .into_inner();
            vec![views::credits(&credits)]
        }
        Resource::Ledger => {
            let owner = owner_id(client, a.org.as_deref(), a.user.as_deref()).await?;
            client
                .list_ledger(pb::ListLedgerRequest {
                    owner_id: owner,
                    limit: a.limit,
                })
                .await?
                .into_inner()
                .entries
                .iter()
                .map(views::ledger_entry)
                .collect()
        }
        Resource::Presets => {
            let org = org_id(client, need(&a.org, "--org", "presets")?).await?;
            client
                .list_presets(pb::ListPresetsRequest {
                    organization_id: org,
                    workspace: a.workspace.clone().unwrap_or_default(),
                    include_versions: a.versions,
                })
                .await?
                .into_inner()
                .presets
                .iter()
                .map(views::preset)
                .collect()
        }
        Resource::Byok => {
            let org = org_id(client, need(&a.org, "--org", "byok")?).await?;
            client
                .list_byok_credentials(pb::ListByokCredentialsRequest {
                    organization_id: org,
                    workspace: a.workspace.clone().unwrap_or_default(),
                    provider: String::new(),
                })
                .await?
                .into_inner()
                .credentials
                .iter()
                .map(views::byok)
                .collect()
        }
        Resource::Audit => {
            let org = match &a.org {
                Some(o) => org_id(client, o).await?,
                None => String::new(),
            };
            client
                .list_audit_log(pb::ListAuditLogRequest {
                    organization_id: org,
                    limit: a.limit,
                })
                .await?
                .into_inner()
                .entries
                .iter()
                .map(views::audit)
                .collect()
        }
        Resource::Dataplanes => client
            .list_dataplanes(pb::ListDataplanesRequest {})
            .await?
            .into_inner()
            .dataplanes
            .iter()
            .map(views::dataplane)
            .collect(),
        Resource::Guardrails => {
            let org = org_id(client, need(&a.org, "--org", "guardrails")?).await?;
            client
                .list_guardrails(pb::ListGuardrailsRequest {
                    organization_id: org,
                    workspace: a.workspace.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .guardrails
                .iter()
                .map(views::guardrail)
                .collect()
        }
    };
    print!("{}", output::list(format, &records)?);
    Ok(())
}

fn role(r: RoleArg) -> pb::Role {
    match r {
        RoleArg::Admin => pb::Role::Admin,
        RoleArg::Member => pb::Role::Member,
    }
}

/// A JSON argument, inline or `@FILE`.
fn json_arg(text: &str) -> anyhow::Result<String> {
    let text = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => text.to_owned(),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).context("the argument is not valid JSON")?;
    Ok(value.to_string())
}

fn read_secret(file: Option<&PathBuf>, env: Option<&str>) -> anyhow::Result<String> {
    let secret = match (file, env) {
        (Some(path), _) if path.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
        }
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        (None, Some(var)) => {
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?
        }
        (None, None) => bail!("give --secret-file or --secret-env"),
    };
    let secret = secret.trim().to_owned();
    if secret.is_empty() {
        bail!("the secret is empty");
    }
    Ok(secret)
}

/// Prints a created key and its secret, which is never shown again.
fn print_secret(format: Format, key: &pb::KeyWithSecret) -> anyhow::Result<()> {
    let record = key
        .key
        .as_ref()
        .map(views::key)
        .unwrap_or_default()
        .with("secret", key.secret.as_str());
    match format {
        Format::Table => {
            let without = key.key.as_ref().map(views::key).unwrap_or_default();
            print!("{}", output::one(format, &without)?);
            println!("secret (shown once, store it now): {}", key.secret);
        }
        _ => print!("{}", output::one(format, &record)?),
    }
    Ok(())
}

pub async fn create(client: &mut Admin, format: Format, what: Create) -> anyhow::Result<()> {
    let record = match what {
        Create::Org { name, member_cap } => {
            let org = client
                .create_organization(pb::CreateOrganizationRequest { name, member_cap })
                .await?
                .into_inner();
            views::organization(&org)
        }
        Create::User { email, name } => {
            let user = client
                .create_user(pb::CreateUserRequest { email, name })
                .await?
                .into_inner();
            views::user(&user)
        }
        Create::Member { user, org, role: r } => {
            let request = pb::AddMemberRequest {
                organization_id: org_id(client, &org).await?,
                user_id: user_id(client, &user).await?,
                role: role(r).into(),
            };
            views::member(&client.add_member(request).await?.into_inner())
        }
        Create::WorkspaceMember {
            user,
            org,
            workspace,
        } => {
            let request = pb::AddWorkspaceMemberRequest {
                organization_id: org_id(client, &org).await?,
                workspace: workspace.clone(),
                user_id: user_id(client, &user).await?,
            };
            let added = client
                .add_workspace_member(request)
                .await?
                .into_inner()
                .added;
            println!(
                "{user} {} workspace {workspace}",
                if added {
                    "added to"
                } else {
                    "already belonged to"
                }
            );
            return Ok(());
        }
        Create::Workspace {
            slug,
            org,
            name,
            description,
            settings,
        } => {
            let request = pb::CreateWorkspaceRequest {
                organization_id: org_id(client, &org).await?,
                name: name.unwrap_or_else(|| slug.clone()),
                slug,
                description,
                settings_json: settings
                    .as_deref()
                    .map(json_arg)
                    .transpose()?
                    .unwrap_or_default(),
            };
            views::workspace(&client.create_workspace(request).await?.into_inner())
        }
        Create::Key {
            name,
            org,
            workspace,
            user,
            kind,
            limit,
            limit_reset,
            include_byok_in_limit,
            disabled,
        } => {
            let user_id = match &user {
                Some(u) => user_id(client, u).await?,
                None => String::new(),
            };
            let request = pb::CreateKeyRequest {
                organization_id: org_id(client, &org).await?,
                workspace: workspace.unwrap_or_default(),
                name,
                kind: match kind {
                    KindArg::Inference => pb::KeyKind::Inference,
                    KindArg::Management => pb::KeyKind::Management,
                }
                .into(),
                user_id,
                limit_usd: limit,
                limit_reset: match limit_reset {
                    None => pb::LimitReset::Unspecified,
                    Some(ResetArg::Daily) => pb::LimitReset::Daily,
                    Some(ResetArg::Weekly) => pb::LimitReset::Weekly,
                    Some(ResetArg::Monthly) => pb::LimitReset::Monthly,
                }
                .into(),
                include_byok_in_limit,
                expires_at_ms: 0,
                disabled,
            };
            let created = client.create_key(request).await?.into_inner();
            return print_secret(format, &created);
        }
        Create::Grant {
            org,
            user,
            amount,
            reason,
        } => {
            let request = pb::GrantCreditsRequest {
                owner_id: owner_id(client, org.as_deref(), user.as_deref()).await?,
                amount_usd: amount,
                reason,
            };
            views::ledger_entry(&client.grant_credits(request).await?.into_inner())
        }
        Create::Preset {
            slug,
            org,
            config,
            name,
            description,
            system_prompt,
            workspace,
        } => {
            let request = pb::CreatePresetRequest {
                organization_id: org_id(client, &org).await?,
                workspace: workspace.unwrap_or_default(),
                name: name.unwrap_or_else(|| slug.clone()),
                slug,
                description,
                config_json: json_arg(&config)?,
                system_prompt,
            };
            views::preset(&client.create_preset(request).await?.into_inner())
        }
        Create::Byok {
            org,
            provider,
            secret_file,
            secret_env,
            name,
            workspace,
            settings,
            disabled,
        } => {
            let request = pb::CreateByokCredentialRequest {
                organization_id: org_id(client, &org).await?,
                workspace: workspace.unwrap_or_default(),
                provider,
                name: name.unwrap_or_default(),
                secret: read_secret(secret_file.as_ref(), secret_env.as_deref())?,
                settings_json: settings
                    .as_deref()
                    .map(json_arg)
                    .transpose()?
                    .unwrap_or_default(),
                disabled,
            };
            views::byok(&client.create_byok_credential(request).await?.into_inner())
        }
        Create::Guardrail {
            name,
            org,
            workspace,
            description,
            limit_usd,
            reset,
            include_byok_in_budgets,
            allow_models,
            ignore_models,
            allow_providers,
            ignore_providers,
        } => {
            let request = pb::CreateGuardrailRequest {
                organization_id: org_id(client, &org).await?,
                workspace: workspace.unwrap_or_default(),
                name,
                description,
                limit_usd,
                reset_interval: reset.map(reset_name).unwrap_or_default().to_owned(),
                include_byok_in_budgets,
                allowed_models: allow_models,
                ignored_models: ignore_models,
                allowed_providers: allow_providers,
                ignored_providers: ignore_providers,
                ..Default::default()
            };
            views::guardrail(&client.create_guardrail(request).await?.into_inner())
        }
    };
    print!("{}", output::one(format, &record)?);
    Ok(())
}

pub async fn delete(client: &mut Admin, what: Delete) -> anyhow::Result<()> {
    let done = match what {
        Delete::Member { user, org } => {
            let request = pb::RemoveMemberRequest {
                organization_id: org_id(client, &org).await?,
                user_id: user_id(client, &user).await?,
            };
            client.remove_member(request).await?;
            format!("removed member {user} from {org}")
        }
        Delete::WorkspaceMember {
            user,
            org,
            workspace,
        } => {
            let request = pb::RemoveWorkspaceMemberRequest {
                organization_id: org_id(client, &org).await?,
                workspace: workspace.clone(),
                user_id: user_id(client, &user).await?,
            };
            client.remove_workspace_member(request).await?;
            format!("removed {user} from workspace {workspace}")
        }
        Delete::Workspace {
            workspace,
            org,
            force,
        } => {
            let request = pb::DeleteWorkspaceRequest {
                organization_id: org_id(client, &org).await?,
                workspace: workspace.clone(),
                force,
            };
            let d = client.delete_workspace(request).await?.into_inner();
            format!(
                "deleted workspace {workspace} (with {} keys, {} presets, {} BYOK credentials)",
                d.deleted_key_hashes.len(),
                d.deleted_presets,
                d.deleted_byok_credentials
            )
        }
        Delete::Key { hash } => {
            client
                .delete_key(pb::DeleteKeyRequest { hash: hash.clone() })
                .await?;
            format!("deleted key {hash}")
        }
        Delete::Preset { slug, org } => {
            let request = pb::DeletePresetRequest {
                organization_id: org_id(client, &org).await?,
                slug: slug.clone(),
            };
            client.delete_preset(request).await?;
            format!("deleted preset {slug}")
        }
        Delete::Byok { id, org } => {
            let request = pb::DeleteByokCredentialRequest {
                organization_id: org_id(client, &org).await?,
                id: id.clone(),
            };
            client.delete_byok_credential(request).await?;
            format!("deleted BYOK credential {id}")
        }
        Delete::Guardrail { id } => {
            client
                .delete_guardrail(pb::DeleteGuardrailRequest { id: id.clone() })
                .await?;
            format!("deleted guardrail {id}")
        }
    };
    println!("{done}");
    Ok(())
}

pub async fn rotate(client: &mut Admin, format: Format, what: Rotate) -> anyhow::Result<()> {
    match what {
        Rotate::Key { hash, grace } => {
            let rotated = client
                .rotate_key(pb::RotateKeyRequest {
                    hash,
                    grace_seconds: grace,
                })
                .await?
                .into_inner();
            print_secret(format, &rotated)
        }
    }
}

/// A guardrail's budget period as the API names it.
fn reset_name(reset: ResetArg) -> &'static str {
    match reset {
        ResetArg::Daily => "daily",
        ResetArg::Weekly => "weekly",
        ResetArg::Monthly => "monthly",
    }
}

/// User ids from ids or emails.
async fn user_ids(client: &mut Admin, references: &[String]) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(references.len());
    for reference in references {
        ids.push(user_id(client, reference).await?);
    }
    Ok(ids)
}

pub async fn assign(client: &mut Admin, what: Assign) -> anyhow::Result<()> {
    let Assign::Guardrail(t) = what;
    let users = user_ids(client, &t.users).await?;
    if !t.keys.is_empty() {
        let n = client
            .assign_guardrail_keys(pb::AssignGuardrailKeysRequest {
                id: t.id.clone(),
                key_hashes: t.keys.clone(),
            })
            .await?
            .into_inner()
            .assigned_count;
        println!(
            "assigned guardrail {} to {n} of {} keys",
            t.id,
            t.keys.len()
        );
    }
    if !users.is_empty() {
        let n = client
            .assign_guardrail_members(pb::AssignGuardrailMembersRequest {
                id: t.id.clone(),
                user_ids: users.clone(),
            })
            .await?
            .into_inner()
            .assigned_count;
        println!(
            "assigned guardrail {} to {n} of {} members",
            t.id,
            users.len()
        );
    }
    Ok(())
}

pub async fn unassign(client: &mut Admin, what: Unassign) -> anyhow::Result<()> {
    let Unassign::Guardrail(t) = what;
    let users = user_ids(client, &t.users).await?;
    if !t.keys.is_empty() {
        let n = client
            .unassign_guardrail_keys(pb::UnassignGuardrailKeysRequest {
                id: t.id.clone(),
                key_hashes: t.keys.clone(),
            })
            .await?
            .into_inner()
            .unassigned_count;
        println!(
            "unassigned guardrail {} from {n} of {} keys",
            t.id,
            t.keys.len()
        );
    }
    if !users.is_empty() {
        let n = client
            .unassign_guardrail_members(pb::UnassignGuardrailMembersRequest {
                id: t.id.clone(),
                user_ids: users.clone(),
            })
            .await?
            .into_inner()
            .unassigned_count;
        println!(
            "unassigned guardrail {} from {n} of {} members",
            t.id,
            users.len()
        );
    }
    Ok(())
}

pub async fn transfer(client: &mut Admin, a: TransferArgs) -> anyhow::Result<()> {
    let request = pb::TransferCreditsRequest {
        user_id: user_id(client, &a.from_user).await?,
        organization_id: org_id(client, &a.to_org).await?,
        amount_usd: a.amount,
        reason: a.reason,
    };
    client.transfer_credits(request).await?;
    println!(
        "transferred {} USD from {} to {}",
        a.amount, a.from_user, a.to_org
    );
    Ok(())
}

pub async fn export(client: &mut Admin, a: ExportArgs) -> anyhow::Result<()> {
    let request = pb::ExportUsageRequest {
        organization_id: org_id(client, &a.org).await?,
        start: a.start.unwrap_or_default(),
        end: a.end.unwrap_or_default(),
        group_by: a.group_by,
        format: a.format,
        workspace_id: a.workspace.unwrap_or_default(),
        api_key_hash: a.key.unwrap_or_default(),
        user_id: a.member.unwrap_or_default(),
        model: a.model.unwrap_or_default(),
        user: a.user.unwrap_or_default(),
    };
    let report = client.export_usage(request).await?.into_inner();
    match a.out {
        Some(path) if path.as_os_str() == "-" => {
            use std::io::Write;
            std::io::stdout().write_all(&report.body)?;
        }
        out => {
            let path = out.unwrap_or_else(|| PathBuf::from(&report.filename));
            std::fs::write(&path, &report.body)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), report.body.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1h").is_err());
    }
}
