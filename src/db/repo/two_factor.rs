//! The two-factor tables: `totp_credentials`, `recovery_code_sets`, `recovery_codes` and
//! `mfa_challenges`. Single-use things are consumed with conditional UPDATEs.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::repo::{naive, utc};
use crate::db::schema::{mfa_challenges, recovery_code_sets, recovery_codes, totp_credentials};
use crate::db::{DbConnection, fixed, on_backend};
use crate::domain::{AccountId, ChallengeId, CodeSet, MfaChallenge, StoredCode, TotpCredential};

/// A TOTP credential, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = totp_credentials)]
struct TotpRow {
    account_id: String,
    secret_sealed: String,
    created_at: NaiveDateTime,
    confirmed_at: Option<NaiveDateTime>,
    last_used_step: Option<i64>,
}

impl TotpRow {
    fn into_domain(self) -> TotpCredential {
        TotpCredential {
            account_id: AccountId::from_stored(self.account_id),
            secret_sealed: self.secret_sealed,
            created_at: utc(self.created_at),
            confirmed_at: self.confirmed_at.map(utc),
            last_used_step: self.last_used_step,
        }
    }
}

/// A set of recovery codes, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_code_sets)]
struct CodeSetRow {
    id: String,
    account_id: String,
    created_at: NaiveDateTime,
    superseded_at: Option<NaiveDateTime>,
}

impl CodeSetRow {
    fn into_domain(self) -> CodeSet {
        CodeSet {
            id: self.id,
            account_id: AccountId::from_stored(self.account_id),
            created_at: utc(self.created_at),
            superseded_at: self.superseded_at.map(utc),
        }
    }
}

/// One recovery code, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_codes)]
struct CodeRow {
    id: String,
    set_id: String,
    account_id: String,
    lookup: String,
    code_hash: String,
    used_at: Option<NaiveDateTime>,
    used_ip: Option<String>,
    used_user_agent: Option<String>,
}

impl CodeRow {
    fn from_domain(c: &StoredCode) -> Self {
        Self {
            id: c.id.clone(),
            set_id: c.set_id.clone(),
            account_id: c.account_id.as_str().to_owned(),
            lookup: c.lookup.clone(),
            code_hash: c.code_hash.clone(),
            used_at: c.used_at.map(naive),
            used_ip: c.used_ip.clone(),
            used_user_agent: c.used_user_agent.clone(),
        }
    }

    fn into_domain(self) -> StoredCode {
        StoredCode {
            id: self.id,
            set_id: self.set_id,
            account_id: AccountId::from_stored(self.account_id),
            lookup: self.lookup,
            code_hash: self.code_hash,
            used_at: self.used_at.map(utc),
            used_ip: self.used_ip,
            used_user_agent: self.used_user_agent,
        }
    }
}

/// An mfa challenge, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mfa_challenges)]
struct ChallengeRow {
    id: String,
    account_id: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
}

impl ChallengeRow {
    fn into_domain(self) -> MfaChallenge {
        MfaChallenge {
            id: ChallengeId::from_stored(self.id),
            account_id: AccountId::from_stored(self.account_id),
            created_at: utc(self.created_at),
            expires_at: utc(self.expires_at),
            used_at: self.used_at.map(utc),
        }
    }
}

/// The account's TOTP credential, pending or confirmed.
pub fn find_totp(
    conn: &mut DbConnection,
    account_id: &AccountId,
) -> QueryResult<Option<TotpCredential>> {
    on_backend!(conn, |conn| {
        totp_credentials::table
            .find(account_id.as_str())
            .select(TotpRow::as_select())
            .get_result(conn)
            .optional()
            .map(|row| row.map(TotpRow::into_domain))
    })
}

/// Replaces a pending enrollment (never a confirmed one: the caller checks).
pub fn put_pending_totp(conn: &mut DbConnection, totp: &TotpCredential) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::delete(
            totp_credentials::table
                .find(totp.account_id.as_str())
                .filter(totp_credentials::confirmed_at.is_null()),
        )
        .execute(conn)?;
        diesel::insert_into(totp_credentials::table)
            .values(TotpRow {
                account_id: totp.account_id.as_str().to_owned(),
                secret_sealed: totp.secret_sealed.clone(),
                created_at: naive(totp.created_at),
                confirmed_at: totp.confirmed_at.map(naive),
                last_used_step: totp.last_used_step,
            })
            .execute(conn)
            .map(|_| ())
    })
}

/// Confirms a pending enrollment with the step of its first code; false if not pending.
pub fn confirm_totp(
    conn: &mut DbConnection,
    account_id: &AccountId,
    step: i64,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            totp_credentials::table
                .find(account_id.as_str())
                .filter(totp_credentials::confirmed_at.is_null()),
        )
        .set((
            totp_credentials::confirmed_at.eq(naive(now)),
            totp_credentials::last_used_step.eq(step),
        ))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Accepts `step` if it is newer than the last accepted one; the row count decides a race.
pub fn use_totp_step(
    conn: &mut DbConnection,
    account_id: &AccountId,
    step: i64,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            totp_credentials::table
                .find(account_id.as_str())
                .filter(totp_credentials::confirmed_at.is_not_null())
                .filter(
                    totp_credentials::last_used_step
                        .is_null()
                        .or(totp_credentials::last_used_step.lt(step)),
                ),
        )
        .set(totp_credentials::last_used_step.eq(step))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Removes TOTP and every recovery code of the account.
pub fn remove_all(conn: &mut DbConnection, account_id: &AccountId) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        let account_id = account_id.as_str();
        diesel::delete(recovery_codes::table.filter(recovery_codes::account_id.eq(account_id)))
            .execute(conn)?;
        diesel::delete(
            recovery_code_sets::table.filter(recovery_code_sets::account_id.eq(account_id)),
        )
        .execute(conn)?;
        diesel::delete(totp_credentials::table.find(account_id)).execute(conn)?;
        Ok(())
    })
}

/// Marks the account's current set superseded.
pub fn supersede_sets(
    conn: &mut DbConnection,
    account_id: &AccountId,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::update(
            recovery_code_sets::table
                .filter(recovery_code_sets::account_id.eq(account_id.as_str()))
                .filter(recovery_code_sets::superseded_at.is_null()),
        )
        .set(recovery_code_sets::superseded_at.eq(naive(now)))
        .execute(conn)
        .map(|_| ())
    })
}

/// Every lookup id the account has (current and superseded sets), to keep new ones unique.
pub fn lookups(conn: &mut DbConnection, account_id: &AccountId) -> QueryResult<Vec<String>> {
    on_backend!(conn, |conn| {
        recovery_codes::table
            .filter(recovery_codes::account_id.eq(account_id.as_str()))
            .select(recovery_codes::lookup)
            .load(conn)
    })
}

/// Stores a new set with its codes.
pub fn insert_set(conn: &mut DbConnection, set: &CodeSet, codes: &[StoredCode]) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(recovery_code_sets::table)
            .values(CodeSetRow {
                id: set.id.clone(),
                account_id: set.account_id.as_str().to_owned(),
                created_at: naive(set.created_at),
                superseded_at: set.superseded_at.map(naive),
            })
            .execute(conn)?;
        for code in codes {
            diesel::insert_into(recovery_codes::table)
                .values(CodeRow::from_domain(code))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// The code with `lookup` and its set, in any set of the account.
pub fn find_code(
    conn: &mut DbConnection,
    account_id: &AccountId,
    lookup: &str,
) -> QueryResult<Option<(StoredCode, CodeSet)>> {
    on_backend!(conn, |c| recovery_codes::table
        .inner_join(recovery_code_sets::table)
        .filter(recovery_codes::account_id.eq(account_id.as_str()))
        .filter(recovery_codes::lookup.eq(lookup))
        .select((CodeRow::as_select(), CodeSetRow::as_select()))
        .get_result::<(CodeRow, CodeSetRow)>(c))
    .optional()
    .map(|found| found.map(|(code, set)| (code.into_domain(), set.into_domain())))
}

/// Consumes an unused code; the row count decides a race.
pub fn consume_code(
    conn: &mut DbConnection,
    code_id: &str,
    now: DateTime<Utc>,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            recovery_codes::table
                .find(code_id)
                .filter(recovery_codes::used_at.is_null()),
        )
        .set((
            recovery_codes::used_at.eq(naive(now)),
            recovery_codes::used_ip.eq(ip),
            recovery_codes::used_user_agent.eq(user_agent),
        ))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// The account's current set and its codes.
pub fn current_set(
    conn: &mut DbConnection,
    account_id: &AccountId,
) -> QueryResult<Option<(CodeSet, Vec<StoredCode>)>> {
    on_backend!(conn, |conn| {
        let Some(set) = recovery_code_sets::table
            .filter(recovery_code_sets::account_id.eq(account_id.as_str()))
            .filter(recovery_code_sets::superseded_at.is_null())
            .select(CodeSetRow::as_select())
            .get_result(conn)
            .optional()?
        else {
            return Ok(None);
        };
        let codes = recovery_codes::table
            .filter(recovery_codes::set_id.eq(&set.id))
            .order(recovery_codes::used_at.asc())
            .select(CodeRow::as_select())
            .load(conn)?;
        Ok(Some((
            set.into_domain(),
            codes.into_iter().map(CodeRow::into_domain).collect(),
        )))
    })
}

/// How many second factors an account has and how its current recovery codes stand, counted
/// in one statement (the account view reads it on every `GET /account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondFactorCounts {
    /// TOTP is enrolled and confirmed.
    pub totp_confirmed: bool,
    /// Registered passkeys.
    pub passkeys: i64,
    /// Codes in the current set (0 without one).
    pub codes: i64,
    /// Used codes of the current set.
    pub used_codes: i64,
}

/// The select list of [`SecondFactorCounts`] for the account whose id is `$account`: a bound
/// `"$1"` (PostgreSQL's placeholder; to SQLite a named one, the same value wherever it
/// appears) or a column such as `"accounts.id"`. Written out because
/// [`super::accounts::find_with_counts`] puts it beside a table's columns, which diesel's query
/// builder cannot; [`counts`] reads it alone.
macro_rules! second_factor_counts {
    ($account:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM totp_credentials t WHERE t.account_id = ",
            $account,
            " AND t.confirmed_at IS NOT NULL) AS totp_confirmed, \
            (SELECT COUNT(*) FROM passkeys p WHERE p.account_id = ",
            $account,
            ") AS passkey_count, \
            (SELECT COUNT(*) FROM recovery_codes c JOIN recovery_code_sets s ON s.id = c.set_id \
                WHERE s.account_id = ",
            $account,
            " AND s.superseded_at IS NULL) AS code_count, \
            (SELECT COUNT(*) FROM recovery_codes c JOIN recovery_code_sets s ON s.id = c.set_id \
                WHERE s.account_id = ",
            $account,
            " AND s.superseded_at IS NULL AND c.used_at IS NOT NULL) AS used_code_count"
        )
    };
}
pub(super) use second_factor_counts;

/// [`SecondFactorCounts`] as the statement answers them.
#[derive(QueryableByName)]
pub(super) struct CountsRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    totp_confirmed: bool,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    passkey_count: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    code_count: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    used_code_count: i64,
}

impl From<CountsRow> for SecondFactorCounts {
    fn from(row: CountsRow) -> Self {
        Self {
            totp_confirmed: row.totp_confirmed,
            passkeys: row.passkey_count,
            codes: row.code_count,
            used_codes: row.used_code_count,
        }
    }
}

/// Counts [`SecondFactorCounts`] for the account.
pub fn counts(conn: &mut DbConnection, account_id: &AccountId) -> QueryResult<SecondFactorCounts> {
    const SQL: &str = concat!("SELECT ", second_factor_counts!("$1"));
    struct Counts;
    on_backend!(conn, |c| fixed::<Counts, _>(
        diesel::sql_query(SQL).bind::<diesel::sql_types::Text, _>(account_id.as_str())
    )
    .get_result::<CountsRow>(c))
    .map(SecondFactorCounts::from)
}

/// Stores an mfa challenge.
pub fn insert_challenge(conn: &mut DbConnection, challenge: &MfaChallenge) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(mfa_challenges::table)
            .values(ChallengeRow {
                id: challenge.id.as_str().to_owned(),
                account_id: challenge.account_id.as_str().to_owned(),
                created_at: naive(challenge.created_at),
                expires_at: naive(challenge.expires_at),
                used_at: challenge.used_at.map(naive),
            })
            .execute(conn)
            .map(|_| ())
    })
}

/// A challenge that is neither used nor expired.
pub fn find_live_challenge(
    conn: &mut DbConnection,
    id: &ChallengeId,
    now: DateTime<Utc>,
) -> QueryResult<Option<MfaChallenge>> {
    on_backend!(conn, |conn| {
        mfa_challenges::table
            .find(id.as_str())
            .filter(mfa_challenges::used_at.is_null())
            .filter(mfa_challenges::expires_at.gt(naive(now)))
            .select(ChallengeRow::as_select())
            .get_result(conn)
            .optional()
            .map(|row| row.map(ChallengeRow::into_domain))
    })
}

/// Consumes a live challenge; the row count decides a race.
pub fn consume_challenge(
    conn: &mut DbConnection,
    id: &ChallengeId,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        let now = naive(now);
        diesel::update(
            mfa_challenges::table
                .find(id.as_str())
                .filter(mfa_challenges::used_at.is_null())
                .filter(mfa_challenges::expires_at.gt(now)),
        )
        .set(mfa_challenges::used_at.eq(now))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Ends every unfinished mfa challenge of an account (a half-finished login dies when the
/// password changes or the account is recovered); returns how many.
pub fn void_challenges(
    conn: &mut DbConnection,
    account_id: &AccountId,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        diesel::update(
            mfa_challenges::table
                .filter(mfa_challenges::account_id.eq(account_id.as_str()))
                .filter(mfa_challenges::used_at.is_null()),
        )
        .set(mfa_challenges::used_at.eq(naive(now)))
        .execute(conn)
    })
}

/// Removes the account's TOTP only (its recovery codes stay: another factor keeps 2FA on).
pub fn remove_totp(conn: &mut DbConnection, account_id: &AccountId) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::delete(totp_credentials::table.find(account_id.as_str())).execute(conn)?;
        Ok(())
    })
}
