//! Credit balances and the ledger every grant goes into.

use serde_json::json;

use switchyard_policy::{Ledger, Money};

use super::{Actor, Manage, ManageError, ManageResult, Publish, micros_usd, money, new_id};
use crate::store::LedgerRow;

/// `GET /credits`: what was granted and what was spent, in USD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Credits {
    pub total_credits: f64,
    pub total_usage: f64,
}

/// Grants are bounded so a typo cannot mint a fortune.
const MAX_GRANT_USD: f64 = 1_000_000.0;

impl Manage {
    /// The organization's balance. Billing is the admins': members see 403 (their keys'
    /// limits and usage are on `GET /key`).
    pub async fn credits(&self, actor: &Actor, owner_id: Option<&str>) -> ManageResult<Credits> {
        let owner = self.organization(actor, owner_id).await?;
        actor.require_admin(&owner.id, "Organization")?;
        let (granted, spent) = self.balance(&owner.id).await?;
        Ok(Credits {
            total_credits: micros_usd(granted),
            total_usage: spent.as_usd_f64(),
        })
    }

    /// Credits granted (ledger micro-dollars; negative when more moved out than in) and spent
    /// (exact; BYOK spend is the customer's own bill and never counts).
    async fn balance(&self, owner_id: &str) -> ManageResult<(i64, Money)> {
        let granted = self.store.credits_micros(owner_id).await?;
        let spent = self
            .store
            .ledger_spend(&Ledger::Organization(owner_id.to_owned()), 0, false)
            .await?;
        Ok((granted, spent))
    }

    /// Admins and operators add credits; every grant is a ledger entry with who and why.
    pub async fn grant_credits(
        &self,
        actor: &Actor,
        owner_id: Option<&str>,
        amount_usd: f64,
        reason: &str,
    ) -> ManageResult<LedgerRow> {
        let this = self.begin().await?;
        let owner = this.organization(actor, owner_id).await?;
        actor.require_admin(&owner.id, "Organization")?;
        let amount = money("amount", amount_usd)?;
        if amount == Money::ZERO || amount_usd > MAX_GRANT_USD {
            return Err(ManageError::Invalid(format!(
                "amount must be more than 0 and at most {MAX_GRANT_USD} USD"
            )));
        }
        // The organization's credits must stay a valid amount for every dataplane: checked
        // under its lock, so concurrent grants cannot pass it together.
        this.lock_organization(&owner.id).await?;
        let granted = this.store.credits_micros(&owner.id).await?;
        let total = Money::from_micros(u64::try_from(granted).unwrap_or(0)).saturating_add(amount);
        if total > Money::MAX {
            return Err(ManageError::Invalid(format!(
                "The organization's credits would exceed the maximum of {} USD",
                Money::MAX
            )));
        }
        let micros = amount.micros_floor();
        let entry = LedgerRow {
            id: new_id("credit"),
            owner_id: owner.id.clone(),
            amount_micros: micros,
            kind: "grant".into(),
            reason: valid_reason(reason)?,
            actor: actor.audit_name(),
            counterpart_id: None,
            created_at: crate::now_ms(),
        };
        this.store
            .insert_ledger(std::slice::from_ref(&entry))
            .await?;
        this.audit(
            actor,
            Some(&owner.id),
            "credits.grant",
            &entry.id,
            None,
            Some(
                &json!({ "owner_id": owner.id, "amount_usd": amount_usd, "reason": entry.reason }),
            ),
        )
        .await?;
        // Credits granted cap an organization's spend on the dataplanes.
        this.commit(Publish::Snapshot).await?;
        Ok(entry)
    }

    /// Operator only: moves credits from a user's personal account to an organization they
    /// belong to. Both ledger entries commit together.
    pub async fn transfer_personal_credits(
        &self,
        actor: &Actor,
        user_id: &str,
        organization_id: &str,
        amount_usd: f64,
        reason: &str,
    ) -> ManageResult<()> {
        let this = self.begin().await?;
        if !actor.is_operator() {
            return Err(ManageError::Forbidden(
                "Only operators move credits between accounts".into(),
            ));
        }
        let personal = this
            .store
            .personal_account(user_id)
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("User {user_id} not found")))?;
        let org = this.organization(actor, Some(organization_id)).await?;
        if org.is_personal() || this.store.membership(&org.id, user_id).await?.is_none() {
            return Err(ManageError::Invalid(format!(
                "User {user_id} is not a member of organization {organization_id}"
            )));
        }
        let amount = money("amount", amount_usd)?;
        if amount == Money::ZERO {
            return Err(ManageError::Invalid("amount must be more than 0".into()));
        }
        let micros = amount.micros_floor();
        // The balance check and both entries happen under both accounts' locks (taken in one
        // order, so two transfers cannot deadlock), so concurrent transfers cannot both spend
        // the same credits, on this control plane or another.
        let mut accounts = [personal.id.as_str(), org.id.as_str()];
        accounts.sort_unstable();
        for account in accounts {
            this.lock_organization(account).await?;
        }
        let (granted, spent) = this.balance(&personal.id).await?;
        let held = Money::from_micros(u64::try_from(granted).unwrap_or(0));
        let available = held.saturating_sub(spent);
        if amount > available {
            return Err(ManageError::InsufficientCredits(format!(
                "The personal account holds {available} USD, less than {amount} USD"
            )));
        }
        let to_org = Money::from_micros(
            u64::try_from(this.store.credits_micros(&org.id).await?).unwrap_or(0),
        );
        if to_org.saturating_add(amount) > Money::MAX {
            return Err(ManageError::Invalid(format!(
                "The organization's credits would exceed the maximum of {} USD",
                Money::MAX
            )));
        }
        let reason = valid_reason(reason)?;
        let now = crate::now_ms();
        let out = LedgerRow {
            id: new_id("credit"),
            owner_id: personal.id.clone(),
            amount_micros: -micros,
            kind: "transfer_out".into(),
            reason: reason.clone(),
            actor: actor.audit_name(),
            counterpart_id: Some(org.id.clone()),
            created_at: now,
        };
        let into = LedgerRow {
            id: new_id("credit"),
            owner_id: org.id.clone(),
            amount_micros: micros,
            kind: "transfer_in".into(),
            reason,
            actor: actor.audit_name(),
            counterpart_id: Some(personal.id.clone()),
            created_at: now,
        };
        this.store.insert_ledger(&[out, into]).await?;
        this.audit(
            actor,
            Some(&org.id),
            "credits.transfer",
            &org.id,
            None,
            Some(&json!({ "from": personal.id, "to": org.id, "amount_usd": amount_usd })),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(())
    }

    /// Admins and operators read the ledger.
    pub async fn ledger(
        &self,
        actor: &Actor,
        owner_id: Option<&str>,
        limit: i64,
    ) -> ManageResult<Vec<LedgerRow>> {
        let owner = self.organization(actor, owner_id).await?;
        actor.require_admin(&owner.id, "Organization")?;
        Ok(self.store.ledger(&owner.id, limit.clamp(1, 1000)).await?)
    }
}

fn valid_reason(reason: &str) -> ManageResult<String> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ManageError::Invalid(
            "reason is required (at most 500 characters)".into(),
        ));
    }
    Ok(reason.to_owned())
}
