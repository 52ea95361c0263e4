//! The `passkeys` and `webauthn_ceremonies` tables: an account's WebAuthn credentials, and the
//! server-side state of a ceremony waiting for an authenticator's answer.
//!
//! Rows go in and come out as the domain's [`Passkey`] with `DateTime<Utc>` times (converted to
//! the stored naive UTC here). Single-use things are decided by row counts: a ceremony is taken
//! with a conditional `UPDATE … WHERE used_at IS NULL AND expires_at > now`, and a login's new
//! sign counter is written only if it is still ahead of the stored one, so racing requests (on
//! any instance) get exactly one winner.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::repo::{naive, utc};
use crate::db::schema::{passkeys, webauthn_ceremonies};
use crate::domain::{
    AccountId, CeremonyId, CeremonyKind, NewPasskey, Passkey, PasskeyId, PasskeyName,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = passkeys)]
struct PasskeyRow {
    id: String,
    account_id: String,
    credential_id: String,
    credential: String,
    name: String,
    sign_count: i64,
    backup_eligible: i32,
    backed_up: i32,
    transports: Option<String>,
    created_at: NaiveDateTime,
    last_used_at: Option<NaiveDateTime>,
}

impl PasskeyRow {
    fn into_domain(self) -> Passkey {
        Passkey {
            id: PasskeyId::from_stored(self.id),
            account_id: AccountId::from_stored(self.account_id),
            credential_id: self.credential_id,
            credential: self.credential,
            name: PasskeyName::from_stored(self.name),
            sign_count: u32::try_from(self.sign_count).unwrap_or(u32::MAX),
            backup_eligible: self.backup_eligible != 0,
            backed_up: self.backed_up != 0,
            transports: self.transports,
            created_at: utc(self.created_at),
            last_used_at: self.last_used_at.map(utc),
        }
    }
}

/// The account's passkeys, oldest first.
pub fn list(conn: &mut DbConnection, account: &AccountId) -> QueryResult<Vec<Passkey>> {
    let rows: Vec<PasskeyRow> = passkeys::table
        .filter(passkeys::account_id.eq(account.as_str()))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(PasskeyRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(PasskeyRow::into_domain).collect())
}

/// How many passkeys the account has.
pub fn count(conn: &mut DbConnection, account: &AccountId) -> QueryResult<i64> {
    passkeys::table
        .filter(passkeys::account_id.eq(account.as_str()))
        .count()
        .get_result(conn)
}

/// One passkey of the account (another account's id finds nothing).
pub fn find(
    conn: &mut DbConnection,
    account: &AccountId,
    id: &PasskeyId,
) -> QueryResult<Option<Passkey>> {
    let row: Option<PasskeyRow> = passkeys::table
        .find(id.as_str())
        .filter(passkeys::account_id.eq(account.as_str()))
        .select(PasskeyRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.map(PasskeyRow::into_domain))
}

/// Whether any account has a credential with this id.
pub fn credential_taken(conn: &mut DbConnection, credential_id: &str) -> QueryResult<bool> {
    let n: i64 = passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Stores a new passkey and answers it.
pub fn insert(
    conn: &mut DbConnection,
    new: &NewPasskey,
    now: DateTime<Utc>,
) -> QueryResult<Passkey> {
    let row = PasskeyRow {
        id: PasskeyId::generate().into_string(),
        account_id: new.account_id.as_str().to_owned(),
        credential_id: new.credential_id.clone(),
        credential: new.credential.clone(),
        name: new.name.as_str().to_owned(),
        sign_count: i64::from(new.sign_count),
        backup_eligible: i32::from(new.backup_eligible),
        backed_up: i32::from(new.backed_up),
        transports: new.transports.clone(),
        created_at: naive(now),
        last_used_at: None,
    };
    diesel::insert_into(passkeys::table)
        .values(&row)
        .execute(conn)?;
    Ok(row.into_domain())
}

/// Renames one of the account's passkeys; `false` when it has no such passkey.
pub fn rename(
    conn: &mut DbConnection,
    account: &AccountId,
    id: &PasskeyId,
    name: &PasskeyName,
) -> QueryResult<bool> {
    diesel::update(
        passkeys::table
            .find(id.as_str())
            .filter(passkeys::account_id.eq(account.as_str())),
    )
    .set(passkeys::name.eq(name.as_str()))
    .execute(conn)
    .map(|n| n == 1)
}

/// Removes one of the account's passkeys; `false` when it had no such passkey (any more).
pub fn remove(conn: &mut DbConnection, account: &AccountId, id: &PasskeyId) -> QueryResult<bool> {
    diesel::delete(
        passkeys::table
            .find(id.as_str())
            .filter(passkeys::account_id.eq(account.as_str())),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// Removes every passkey of the account (and its waiting ceremonies); answers how many passkeys.
pub fn remove_all(conn: &mut DbConnection, account: &AccountId) -> QueryResult<usize> {
    diesel::delete(
        webauthn_ceremonies::table.filter(webauthn_ceremonies::account_id.eq(account.as_str())),
    )
    .execute(conn)?;
    diesel::delete(passkeys::table.filter(passkeys::account_id.eq(account.as_str()))).execute(conn)
}

/// What a login with a passkey changes on it.
#[derive(Debug, Clone)]
pub struct PasskeyUse<'a> {
    /// The passkey.
    pub id: &'a PasskeyId,
    /// The authenticator's new signature counter.
    pub sign_count: u32,
    /// Backup eligible, as the authenticator now says.
    pub backup_eligible: bool,
    /// Backed up, as the authenticator now says.
    pub backed_up: bool,
    /// The updated stored credential.
    pub credential: &'a str,
}

/// Records a login with a passkey: the new counter, the backup flags and the time. Written only
/// if the counter is still ahead of the stored one (or both are 0, an authenticator without a
/// counter); `false` otherwise: the counter went backwards, or a racing login got there first.
pub fn record_use(
    conn: &mut DbConnection,
    used: &PasskeyUse<'_>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let new = i64::from(used.sign_count);
    let ahead = passkeys::sign_count.lt(new).or(passkeys::sign_count
        .eq(0)
        .and(new.into_sql::<diesel::sql_types::BigInt>().eq(0)));
    diesel::update(passkeys::table.find(used.id.as_str()).filter(ahead))
        .set((
            passkeys::sign_count.eq(new),
            passkeys::backup_eligible.eq(i32::from(used.backup_eligible)),
            passkeys::backed_up.eq(i32::from(used.backed_up)),
            passkeys::credential.eq(used.credential),
            passkeys::last_used_at.eq(Some(naive(now))),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webauthn_ceremonies)]
struct CeremonyRow {
    id: String,
    account_id: String,
    kind: String,
    mfa_challenge_id: Option<String>,
    state: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
}

/// A ceremony about to be stored.
#[derive(Debug, Clone)]
pub struct NewCeremony<'a> {
    /// Its account.
    pub account: &'a AccountId,
    /// What it is for.
    pub kind: CeremonyKind,
    /// For a login: the mfa challenge it finishes.
    pub mfa_challenge_id: Option<&'a str>,
    /// The ceremony state (webauthn-rs's serialised form).
    pub state: &'a str,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Stores a ceremony and answers its id.
pub fn insert_ceremony(
    conn: &mut DbConnection,
    new: &NewCeremony<'_>,
    now: DateTime<Utc>,
) -> QueryResult<CeremonyId> {
    let id = CeremonyId::generate();
    diesel::insert_into(webauthn_ceremonies::table)
        .values(&CeremonyRow {
            id: id.as_str().to_owned(),
            account_id: new.account.as_str().to_owned(),
            kind: new.kind.as_str().to_owned(),
            mfa_challenge_id: new.mfa_challenge_id.map(str::to_owned),
            state: new.state.to_owned(),
            created_at: naive(now),
            expires_at: naive(new.expires_at),
            used_at: None,
        })
        .execute(conn)?;
    Ok(id)
}

/// Takes (uses up) a live ceremony of this kind and account and answers its state; `None` if
/// it is unknown, another account's, used or expired. The row count decides a race.
pub fn take_ceremony(
    conn: &mut DbConnection,
    id: &CeremonyId,
    account: &AccountId,
    kind: CeremonyKind,
    now: DateTime<Utc>,
) -> QueryResult<Option<String>> {
    let now = naive(now);
    let taken = diesel::update(
        webauthn_ceremonies::table
            .find(id.as_str())
            .filter(webauthn_ceremonies::account_id.eq(account.as_str()))
            .filter(webauthn_ceremonies::kind.eq(kind.as_str()))
            .filter(webauthn_ceremonies::used_at.is_null())
            .filter(webauthn_ceremonies::expires_at.gt(now)),
    )
    .set(webauthn_ceremonies::used_at.eq(Some(now)))
    .execute(conn)?;
    if taken != 1 {
        return Ok(None);
    }
    webauthn_ceremonies::table
        .find(id.as_str())
        .select(webauthn_ceremonies::state)
        .get_result(conn)
        .optional()
}

/// The newest live login ceremony of an mfa challenge, not yet taken.
pub fn live_login_ceremony(
    conn: &mut DbConnection,
    mfa_challenge_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<CeremonyId>> {
    let id: Option<String> = webauthn_ceremonies::table
        .filter(webauthn_ceremonies::mfa_challenge_id.eq(mfa_challenge_id))
        .filter(webauthn_ceremonies::kind.eq(CeremonyKind::Authentication.as_str()))
        .filter(webauthn_ceremonies::used_at.is_null())
        .filter(webauthn_ceremonies::expires_at.gt(naive(now)))
        .order((
            webauthn_ceremonies::created_at.desc(),
            webauthn_ceremonies::id.desc(),
        ))
        .select(webauthn_ceremonies::id)
        .first(conn)
        .optional()?;
    Ok(id.map(CeremonyId::from_stored))
}

/// Ends every waiting login ceremony of an mfa challenge (new options replace them).
pub fn retire_login_ceremonies(
    conn: &mut DbConnection,
    mfa_challenge_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        webauthn_ceremonies::table
            .filter(webauthn_ceremonies::mfa_challenge_id.eq(mfa_challenge_id))
            .filter(webauthn_ceremonies::used_at.is_null()),
    )
    .set(webauthn_ceremonies::used_at.eq(Some(naive(now))))
    .execute(conn)
}

/// Forgets ceremonies that expired before `before` (they can never be taken).
pub fn purge_ceremonies(conn: &mut DbConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(
        webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.lt(naive(before))),
    )
    .execute(conn)
}
