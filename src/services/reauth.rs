//! Re-authentication of a signed-in caller: the password asked again before a sensitive change
//! (password, TOTP, recovery codes) and the first code that confirms a TOTP enrollment.
//!
//! A stolen access token must not become a way to guess the password at argon2 speed, so every
//! such check takes one unit of the account's re-authentication budget (`RATE_LIMIT_REAUTH`)
//! *before* it is evaluated; a right answer gives the unit back, a wrong one is audited
//! (`reauth.failed`), and past the budget every check is a 429, right or wrong.

use crate::context::Ctx;
use crate::domain::{AccountId, EventType};
use crate::services::audit::{Actor, Event};
use crate::services::rate_limit::{self, Decision};
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure};

/// What was checked, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The account's password.
    Password,
    /// A TOTP code confirming an enrollment.
    TotpConfirmation,
}

impl Check {
    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::TotpConfirmation => "totp_confirmation",
        }
    }
}

/// The budget is spent: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds to wait.
    pub retry_after_secs: u64,
}

fn bucket(account_id: &AccountId) -> String {
    format!("reauth:{account_id}")
}

/// Takes one unit of the account's budget before a check is evaluated.
pub async fn begin(ctx: &Ctx, account_id: &AccountId) -> Result<Result<(), Limited>, Failure> {
    let (bucket, limit) = (bucket(account_id), ctx.config.rate_limits.reauth);
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<_, Failure> {
        let metrics = w.ctx.metrics.clone();
        Ok(
            match rate_limit::take(w.conn, &metrics, &bucket, limit, w.now)? {
                Decision::Allowed => Ok(()),
                Decision::Limited { retry_after_secs } => Err(Limited { retry_after_secs }),
            },
        )
    })
    .await
}

/// Ends a check begun with [`begin`]: a right answer gives the unit back, a wrong one stays
/// counted and is audited.
pub async fn end(
    ctx: &Ctx,
    account_id: &AccountId,
    check: Check,
    passed: bool,
    client: &ClientInfo,
) -> Result<(), Failure> {
    let (bucket, limit) = (bucket(account_id), ctx.config.rate_limits.reauth);
    let (id, client) = (account_id.to_owned(), client.clone());
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), Failure> {
        if passed {
            rate_limit::refund(w.conn, &bucket, limit)?;
            return Ok(());
        }
        w.audit(
            Event::new(EventType::ReauthFailed, Actor::Account(&id), &client)
                .account(Some(&id))
                .details(serde_json::json!({ "check": check.as_str() })),
        )
    })
    .await
}

/// Checks the caller's password as a re-authentication: `Ok(Ok(true))` when right,
/// `Ok(Ok(false))` when wrong, `Ok(Err(..))` past the budget (nothing verified).
pub async fn password(
    ctx: &Ctx,
    account_id: &AccountId,
    password_hash: &str,
    password: String,
    client: &ClientInfo,
) -> Result<Result<bool, Limited>, Failure> {
    if let Err(limited) = begin(ctx, account_id).await? {
        return Ok(Err(limited));
    }
    let right = ctx
        .passwords
        .verify(password, Some(password_hash.to_owned()))
        .await?;
    end(ctx, account_id, Check::Password, right, client).await?;
    Ok(Ok(right))
}
