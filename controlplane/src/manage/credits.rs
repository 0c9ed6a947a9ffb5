//! Credit balances and the ledger every grant goes into.

use serde_json::json;

use super::{Actor, Manage, ManageError, ManageResult, micros_usd, new_id, usd_micros};
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
    /// Any member may read their organization's balance.
    pub async fn credits(&self, actor: &Actor, owner_id: Option<&str>) -> ManageResult<Credits> {
        let owner = self.organization(actor, owner_id).await?;
        Ok(Credits {
            total_credits: micros_usd(self.store.credits_micros(&owner.id).await?),
            total_usage: self.store.usage_usd(&owner.id).await?,
        })
    }

    /// Admins and operators add credits; every grant is a ledger entry with who and why.
    pub async fn grant_credits(
        &self,
        actor: &Actor,
        owner_id: Option<&str>,
        amount_usd: f64,
        reason: &str,
    ) -> ManageResult<LedgerRow> {
        let owner = self.organization(actor, owner_id).await?;
        actor.require_admin(&owner.id, "Organization")?;
        let micros = usd_micros("amount", amount_usd)?;
        if micros <= 0 || amount_usd > MAX_GRANT_USD {
            return Err(ManageError::Invalid(format!(
                "amount must be more than 0 and at most {MAX_GRANT_USD} USD"
            )));
        }
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
        self.store
            .insert_ledger(std::slice::from_ref(&entry))
            .await?;
        self.audit(
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
        self.publish().await?;
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
        if !actor.is_operator() {
            return Err(ManageError::Forbidden(
                "Only operators move credits between accounts".into(),
            ));
        }
        let personal = self
            .store
            .personal_account(user_id)
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("User {user_id} not found")))?;
        let org = self.organization(actor, Some(organization_id)).await?;
        if org.is_personal() || self.store.membership(&org.id, user_id).await?.is_none() {
            return Err(ManageError::Invalid(format!(
                "User {user_id} is not a member of organization {organization_id}"
            )));
        }
        let micros = usd_micros("amount", amount_usd)?;
        if micros <= 0 {
            return Err(ManageError::Invalid("amount must be more than 0".into()));
        }
        // The balance check and both entries happen under one lock, so concurrent transfers
        // cannot both spend the same credits.
        let _serial = self.serial.lock().await;
        let balance = self.credits(actor, Some(&personal.id)).await?;
        let available = balance.total_credits - balance.total_usage;
        if micros_usd(micros) > available + 1e-9 {
            return Err(ManageError::InsufficientCredits(format!(
                "The personal account holds {available:.6} USD, less than {amount_usd} USD"
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
        self.store.insert_ledger(&[out, into]).await?;
        self.audit(
            actor,
            Some(&org.id),
            "credits.transfer",
            &org.id,
            None,
            Some(&json!({ "from": personal.id, "to": org.id, "amount_usd": amount_usd })),
        )
        .await?;
        self.publish().await?;
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
