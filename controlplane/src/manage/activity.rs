//! Activity: the organization's usage as OpenRouter's `GET /activity` reports it, and exports of
//! it grouped one way or another, all read from the rollups. Members see the whole organization's
//! usage by model, provider, workspace, user and day; only admins may narrow it to one key or one
//! member, or group by them. Nothing of another organization is visible.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use switchyard_policy::Money;

use super::{Actor, Manage, ManageError, ManageResult};
use crate::store::{
    DAY_MS, Dimension, ExternalUserRow, Resolution, Totals, UsageFilter, UsageQuery,
    external_user_problem,
};

/// Days `GET /activity` covers: the last 30 completed UTC days.
pub const ACTIVITY_DAYS: i64 = 30;
/// The longest export, in days.
pub const MAX_EXPORT_DAYS: i64 = 400;

/// `GET /activity`'s filters.
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    pub date: Option<String>,
    pub api_key_hash: Option<String>,
    pub user_id: Option<String>,
    pub workspace_id: Option<String>,
    pub by_workspace: bool,
}

/// One item of `GET /activity`: a day, model and endpoint (and workspace, when split by it).
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityItem {
    pub date: String,
    pub model: String,
    pub provider_id: String,
    pub provider_name: String,
    pub workspace_id: Option<String>,
    /// Spend on the organization's credits, and on its own provider keys (BYOK).
    pub usage: Money,
    pub byok_usage: Money,
    pub totals: Totals,
}

/// What an export is grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportGroup {
    Model,
    ApiKey,
    Creator,
    Workspace,
    User,
    Day,
}

impl std::str::FromStr for ExportGroup {
    type Err = ManageError;
    fn from_str(s: &str) -> Result<Self, ManageError> {
        Ok(match s {
            "model" => ExportGroup::Model,
            "api_key" => ExportGroup::ApiKey,
            "creator" => ExportGroup::Creator,
            "workspace" => ExportGroup::Workspace,
            "user" => ExportGroup::User,
            "day" => ExportGroup::Day,
            other => {
                return Err(ManageError::Invalid(format!(
                    "group_by must be one of model, api_key, creator, workspace, user, day; not {other:?}"
                )));
            }
        })
    }
}

impl ExportGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportGroup::Model => "model",
            ExportGroup::ApiKey => "api_key",
            ExportGroup::Creator => "creator",
            ExportGroup::Workspace => "workspace",
            ExportGroup::User => "user",
            ExportGroup::Day => "day",
        }
    }

    fn dimension(self) -> Dimension {
        match self {
            ExportGroup::Model => Dimension::Model,
            ExportGroup::ApiKey => Dimension::Key,
            ExportGroup::Creator => Dimension::Creator,
            ExportGroup::Workspace => Dimension::Workspace,
            ExportGroup::User => Dimension::User,
            ExportGroup::Day => Dimension::Bucket,
        }
    }

    /// Grouping by key or by member shows who spent what: the admins' to see.
    fn admin_only(self) -> bool {
        matches!(self, ExportGroup::ApiKey | ExportGroup::Creator)
    }
}

/// An export's request: whole UTC days, `start` to `end` inclusive.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub start: Option<String>,
    pub end: Option<String>,
    pub group: ExportGroup,
    pub api_key_hash: Option<String>,
    pub user_id: Option<String>,
    pub workspace_id: Option<String>,
    pub model: Option<String>,
    pub external_user: Option<String>,
}

impl ExportRequest {
    /// The default period (the last 30 completed days), nothing filtered.
    pub fn of(group: ExportGroup) -> ExportRequest {
        ExportRequest {
            start: None,
            end: None,
            group,
            api_key_hash: None,
            user_id: None,
            workspace_id: None,
            model: None,
            external_user: None,
        }
    }
}

/// One export line: the group's value, a readable label where there is one, and its usage.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportLine {
    pub group: String,
    pub label: String,
    pub usage: Money,
    pub byok_usage: Money,
    pub totals: Totals,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    pub organization_id: String,
    pub organization_name: String,
    pub group: ExportGroup,
    /// `start` to `end`, inclusive, as `YYYY-MM-DD`.
    pub start: String,
    pub end: String,
    pub lines: Vec<ExportLine>,
    /// Spend per day over the period (every day, zeros included), for a chart.
    pub daily: Vec<(String, Money)>,
    pub total: ExportLine,
}

/// `YYYY-MM-DD` to the Unix ms of that UTC midnight.
fn parse_day(name: &str, text: &str) -> ManageResult<i64> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| ManageError::Invalid(format!("{name} must be a date as YYYY-MM-DD")))
}

pub fn day_name(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

impl Manage {
    /// Who may narrow usage to what: the organization the actor sees, and (for members) no key
    /// or member filter. A workspace must be the organization's.
    async fn usage_scope(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        api_key_hash: Option<&str>,
        user_id: Option<&str>,
        workspace_id: Option<&str>,
    ) -> ManageResult<crate::store::OrganizationRow> {
        let organization = self.organization(actor, organization_id).await?;
        if (api_key_hash.is_some() || user_id.is_some()) && !actor.is_admin_of(&organization.id) {
            return Err(ManageError::Forbidden(
                "Only organization admins can filter usage by API key or member".into(),
            ));
        }
        if let Some(id) = workspace_id {
            let theirs = self
                .store
                .workspace(id)
                .await?
                .is_some_and(|w| w.organization_id == organization.id);
            if !theirs {
                return Err(ManageError::NotFound(format!("Workspace {id} not found")));
            }
        }
        Ok(organization)
    }

    /// `GET /activity` at `now_ms`: the last 30 completed UTC days (or one of them), per day,
    /// model and endpoint, and per workspace when asked.
    pub async fn activity(
        &self,
        actor: &Actor,
        filter: &ActivityFilter,
        now_ms: i64,
    ) -> ManageResult<Vec<ActivityItem>> {
        let organization = self
            .usage_scope(
                actor,
                None,
                filter.api_key_hash.as_deref(),
                filter.user_id.as_deref(),
                filter.workspace_id.as_deref(),
            )
            .await?;
        let today = Resolution::Day.floor(now_ms);
        let (mut from_ms, mut to_ms) = (today - ACTIVITY_DAYS * DAY_MS, today);
        if let Some(date) = &filter.date {
            let day = parse_day("date", date)?;
            if day < from_ms || day >= to_ms {
                return Err(ManageError::Invalid(
                    "date must be one of the last 30 completed UTC days".into(),
                ));
            }
            (from_ms, to_ms) = (day, day + DAY_MS);
        }
        let mut group_by = vec![Dimension::Bucket, Dimension::Model, Dimension::Provider];
        if filter.by_workspace {
            group_by.push(Dimension::Workspace);
        }
        group_by.push(Dimension::Byok);
        let rows = self
            .store
            .usage(&UsageQuery {
                organization_id: organization.id.clone(),
                resolution: Resolution::Day,
                from_ms,
                to_ms,
                filter: UsageFilter {
                    workspace_id: filter.workspace_id.clone(),
                    key_hash: filter.api_key_hash.clone(),
                    creator_user_id: filter.user_id.clone(),
                    ..UsageFilter::default()
                },
                group_by,
            })
            .await?;
        let names = self.provider_names().await?;
        // BYOK and credit rows of one item come together (the BYOK flag is grouped last).
        let mut items: BTreeMap<(i64, String, String, String), ActivityItem> = BTreeMap::new();
        for row in rows {
            let [bucket, model, provider, rest @ ..] = row.group.as_slice() else {
                continue;
            };
            let (workspace, byok) = match rest {
                [w, b] => (Some(w.clone()), b == "1"),
                [b] => (None, b == "1"),
                _ => continue,
            };
            let bucket: i64 = bucket.parse().unwrap_or_default();
            let key = (
                bucket,
                model.clone(),
                provider.clone(),
                workspace.clone().unwrap_or_default(),
            );
            let item = items.entry(key).or_insert_with(|| ActivityItem {
                date: day_name(bucket),
                model: model.clone(),
                provider_id: provider.clone(),
                provider_name: names.get(provider).cloned().unwrap_or(provider.clone()),
                workspace_id: workspace,
                usage: Money::ZERO,
                byok_usage: Money::ZERO,
                totals: Totals::default(),
            });
            add_paid(
                (&mut item.usage, &mut item.byok_usage, &mut item.totals),
                byok,
                &row.totals,
            );
        }
        Ok(items.into_values().collect())
    }

    async fn provider_names(&self) -> ManageResult<HashMap<String, String>> {
        Ok(self
            .store
            .catalogue()
            .await?
            .providers
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect())
    }

    /// An export of an organization's usage over whole days (a member's own organization, or
    /// the one an operator names), grouped as asked, with a total and spend per day. `now_ms`
    /// gives the default period (the last 30 completed days).
    pub async fn export_usage(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        request: &ExportRequest,
        now_ms: i64,
    ) -> ManageResult<Export> {
        let organization = self
            .usage_scope(
                actor,
                organization_id,
                request.api_key_hash.as_deref(),
                request.user_id.as_deref(),
                request.workspace_id.as_deref(),
            )
            .await?;
        if request.group.admin_only() && !actor.is_admin_of(&organization.id) {
            return Err(ManageError::Forbidden(
                "Only organization admins can group usage by API key or member".into(),
            ));
        }
        let today = Resolution::Day.floor(now_ms);
        let start = match &request.start {
            Some(text) => parse_day("start", text)?,
            None => today - ACTIVITY_DAYS * DAY_MS,
        };
        let end = match &request.end {
            Some(text) => parse_day("end", text)?,
            None => today - DAY_MS,
        };
        if end < start {
            return Err(ManageError::Invalid("end must not be before start".into()));
        }
        if (end - start) / DAY_MS >= MAX_EXPORT_DAYS {
            return Err(ManageError::Invalid(format!(
                "an export covers at most {MAX_EXPORT_DAYS} days"
            )));
        }
        let query = |group_by: Vec<Dimension>| UsageQuery {
            organization_id: organization.id.clone(),
            resolution: Resolution::Day,
            from_ms: start,
            to_ms: end + DAY_MS,
            filter: UsageFilter {
                workspace_id: request.workspace_id.clone(),
                key_hash: request.api_key_hash.clone(),
                creator_user_id: request.user_id.clone(),
                external_user: request.external_user.clone(),
                model: request.model.clone(),
                provider_id: None,
            },
            group_by,
        };
        let labels = self.labels(&organization.id, request.group).await?;
        let mut lines: BTreeMap<String, ExportLine> = BTreeMap::new();
        let rows = self
            .store
            .usage(&query(vec![request.group.dimension(), Dimension::Byok]))
            .await?;
        for row in rows {
            let [group, byok] = row.group.as_slice() else {
                continue;
            };
            let (group, label) = match request.group {
                ExportGroup::Day => {
                    let day = day_name(group.parse().unwrap_or_default());
                    (day.clone(), day)
                }
                _ => (
                    group.clone(),
                    labels.get(group).cloned().unwrap_or_else(|| group.clone()),
                ),
            };
            let line = lines.entry(group.clone()).or_insert_with(|| ExportLine {
                group,
                label,
                usage: Money::ZERO,
                byok_usage: Money::ZERO,
                totals: Totals::default(),
            });
            add_paid(
                (&mut line.usage, &mut line.byok_usage, &mut line.totals),
                byok == "1",
                &row.totals,
            );
        }
        let mut total = ExportLine {
            group: "total".into(),
            label: "Total".into(),
            usage: Money::ZERO,
            byok_usage: Money::ZERO,
            totals: Totals::default(),
        };
        for line in lines.values() {
            total.usage = total.usage.saturating_add(line.usage);
            total.byok_usage = total.byok_usage.saturating_add(line.byok_usage);
            total.totals.add(&line.totals);
        }
        let per_day: HashMap<i64, Money> = self
            .store
            .usage(&query(vec![Dimension::Bucket, Dimension::Byok]))
            .await?
            .into_iter()
            .filter(|r| r.group.get(1).is_some_and(|b| b == "0"))
            .filter_map(|r| Some((r.group.first()?.parse().ok()?, r.totals.cost)))
            .collect();
        let daily = (0..=(end - start) / DAY_MS)
            .map(|d| {
                let day = start + d * DAY_MS;
                (
                    day_name(day),
                    per_day.get(&day).copied().unwrap_or(Money::ZERO),
                )
            })
            .collect();
        Ok(Export {
            organization_id: organization.id.clone(),
            organization_name: organization.name.clone(),
            group: request.group,
            start: day_name(start),
            end: day_name(end),
            lines: lines.into_values().collect(),
            daily,
            total,
        })
    }

    /// Readable names for a grouping's values: key names, workspace names, member emails.
    async fn labels(
        &self,
        organization_id: &str,
        group: ExportGroup,
    ) -> ManageResult<HashMap<String, String>> {
        Ok(match group {
            ExportGroup::ApiKey => self
                .store
                .keys_of_organization(organization_id, None, None, true, 0, i64::MAX)
                .await?
                .into_iter()
                .map(|k| (k.hash, k.name))
                .collect(),
            ExportGroup::Workspace => self
                .store
                .workspaces_of_organization(organization_id, None, 0, i64::MAX)
                .await?
                .0
                .into_iter()
                .map(|w| (w.id, w.name))
                .collect(),
            ExportGroup::Creator => self
                .store
                .members(organization_id, 0, i64::MAX)
                .await?
                .0
                .into_iter()
                .map(|m| (m.user_id, m.email))
                .collect(),
            ExportGroup::Model | ExportGroup::User | ExportGroup::Day => HashMap::new(),
        })
    }

    /// A page of the organization's external users; `limit` at most 100.
    pub async fn external_users(
        &self,
        actor: &Actor,
        user: Option<&str>,
        include_inactive: bool,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<ExternalUserRow>, i64)> {
        let organization = self.organization(actor, None).await?;
        if !(1..=100).contains(&limit) || offset < 0 {
            return Err(ManageError::Invalid(
                "limit must be 1 to 100 and offset not negative".into(),
            ));
        }
        Ok(self
            .store
            .external_users(&organization.id, user, include_inactive, offset, limit)
            .await?)
    }

    pub async fn external_user(&self, actor: &Actor, user: &str) -> ManageResult<ExternalUserRow> {
        let organization = self.organization(actor, None).await?;
        self.store
            .external_user(&organization.id, user)
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("External user {user:?} not found")))
    }

    /// Admins register, change and remove external users.
    pub async fn create_external_user(
        &self,
        actor: &Actor,
        user: &str,
        now_ms: i64,
    ) -> ManageResult<ExternalUserRow> {
        let organization = self.organization(actor, None).await?;
        actor.require_admin(&organization.id, "Organization")?;
        if let Some(problem) = external_user_problem(user) {
            return Err(ManageError::Invalid(problem.into()));
        }
        if !self
            .store
            .insert_external_user(&organization.id, user, now_ms)
            .await?
        {
            return Err(ManageError::Exists(format!(
                "External user {user:?} is already registered"
            )));
        }
        self.external_user(actor, user).await
    }

    pub async fn update_external_user(
        &self,
        actor: &Actor,
        user: &str,
        is_active: bool,
        now_ms: i64,
    ) -> ManageResult<ExternalUserRow> {
        let organization = self.organization(actor, None).await?;
        actor.require_admin(&organization.id, "Organization")?;
        if !self
            .store
            .set_external_user_active(&organization.id, user, is_active, now_ms)
            .await?
        {
            return Err(ManageError::NotFound(format!(
                "External user {user:?} not found"
            )));
        }
        self.external_user(actor, user).await
    }

    pub async fn delete_external_user(&self, actor: &Actor, user: &str) -> ManageResult<()> {
        let organization = self.organization(actor, None).await?;
        actor.require_admin(&organization.id, "Organization")?;
        if !self
            .store
            .delete_external_user(&organization.id, user)
            .await?
        {
            return Err(ManageError::NotFound(format!(
                "External user {user:?} not found"
            )));
        }
        Ok(())
    }
}

/// Adds a group's totals to a sum (credit spend, BYOK spend, totals), its cost to the spend of
/// whoever paid it.
pub(super) fn add_paid(
    (usage, byok_usage, sum): (&mut Money, &mut Money, &mut Totals),
    byok: bool,
    totals: &Totals,
) {
    let paid = if byok { byok_usage } else { usage };
    *paid = paid.saturating_add(totals.cost);
    sum.add(totals);
}
