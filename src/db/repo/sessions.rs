//! The `sessions` and `refresh_tokens` tables. Rows come out as the domain's [`Session`] and
//! [`RefreshToken`]; times are converted between stored naive UTC and `DateTime<Utc>` here.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::repo::{naive, utc};
use crate::db::schema::{accounts, refresh_tokens, sessions};
use crate::db::{DbConnection, on_backend};
use crate::domain::{
    AccountId, DeviceId, LiveSession, RefreshToken, Role, SecondFactor, Session, SessionId,
};

/// A stored session, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
struct SessionRow {
    id: String,
    account_id: String,
    created_at: NaiveDateTime,
    last_used_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    revoked_reason: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    second_factor: String,
    device_id: Option<String>,
}

impl SessionRow {
    fn from_domain(s: &Session) -> Self {
        Self {
            id: s.id.as_str().to_owned(),
            account_id: s.account_id.as_str().to_owned(),
            created_at: naive(s.created_at),
            last_used_at: naive(s.last_used_at),
            expires_at: naive(s.expires_at),
            revoked_at: s.revoked_at.map(naive),
            revoked_reason: s.revoked_reason.clone(),
            ip: s.ip.clone(),
            user_agent: s.user_agent.clone(),
            second_factor: s.second_factor.as_str().to_owned(),
            device_id: s.device_id.as_ref().map(|d| d.as_str().to_owned()),
        }
    }

    fn into_domain(self) -> Session {
        Session {
            id: SessionId::from_stored(self.id),
            account_id: AccountId::from_stored(self.account_id),
            created_at: utc(self.created_at),
            last_used_at: utc(self.last_used_at),
            expires_at: utc(self.expires_at),
            revoked_at: self.revoked_at.map(utc),
            revoked_reason: self.revoked_reason,
            ip: self.ip,
            user_agent: self.user_agent,
            second_factor: SecondFactor::from_stored(&self.second_factor),
            device_id: self.device_id.map(DeviceId::from_stored),
        }
    }
}

/// A stored refresh token, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
struct RefreshTokenRow {
    token_hash: String,
    session_id: String,
    created_at: NaiveDateTime,
    rotated_at: Option<NaiveDateTime>,
    grace_uses: i32,
}

impl RefreshTokenRow {
    fn from_domain(t: &RefreshToken) -> Self {
        Self {
            token_hash: t.token_hash.clone(),
            session_id: t.session_id.as_str().to_owned(),
            created_at: naive(t.created_at),
            rotated_at: t.rotated_at.map(naive),
            grace_uses: t.grace_uses,
        }
    }

    fn into_domain(self) -> RefreshToken {
        RefreshToken {
            token_hash: self.token_hash,
            session_id: SessionId::from_stored(self.session_id),
            created_at: utc(self.created_at),
            rotated_at: self.rotated_at.map(utc),
            grace_uses: self.grace_uses,
        }
    }
}

/// Opens a session with its first refresh token.
pub fn insert(
    conn: &mut DbConnection,
    session: &Session,
    refresh: &RefreshToken,
) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(sessions::table)
            .values(SessionRow::from_domain(session))
            .execute(conn)?;
        diesel::insert_into(refresh_tokens::table)
            .values(RefreshTokenRow::from_domain(refresh))
            .execute(conn)?;
        Ok(())
    })
}

/// A session that is neither revoked nor expired.
pub fn find_live(
    conn: &mut DbConnection,
    id: &SessionId,
    now: DateTime<Utc>,
) -> QueryResult<Option<Session>> {
    on_backend!(conn, |conn| {
        sessions::table
            .find(id.as_str())
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(naive(now)))
            .select(SessionRow::as_select())
            .get_result(conn)
            .optional()
            .map(|row| row.map(SessionRow::into_domain))
    })
}

/// A session that is neither revoked nor expired, with its account's role: what every
/// authenticated request needs, in one statement.
/// ([`super::accounts::find_by_session_with_counts`] reads the same with the whole account,
/// for `GET /account`.)
pub fn find_live_with_role(
    conn: &mut DbConnection,
    id: &SessionId,
    now: DateTime<Utc>,
) -> QueryResult<Option<LiveSession>> {
    on_backend!(conn, |c| sessions::table
        .inner_join(accounts::table)
        .filter(sessions::id.eq(id.as_str()))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(naive(now)))
        .select((
            sessions::id,
            sessions::account_id,
            accounts::role,
            sessions::last_used_at,
            sessions::device_id,
        ))
        .get_result::<(String, String, String, NaiveDateTime, Option<String>)>(
            c
        ))
    .optional()
    .map(|row| {
        row.map(|(id, account_id, role, last_used_at, device_id)| {
            live_session(id, account_id, &role, last_used_at, device_id)
        })
    })
}

/// A [`LiveSession`] from its stored columns.
pub(super) fn live_session(
    id: String,
    account_id: String,
    role: &str,
    last_used_at: NaiveDateTime,
    device_id: Option<String>,
) -> LiveSession {
    LiveSession {
        id: SessionId::from_stored(id),
        account_id: AccountId::from_stored(account_id),
        role: Role::from_stored(role),
        last_used_at: utc(last_used_at),
        device_id: device_id.map(DeviceId::from_stored),
    }
}

/// The account's live sessions, newest first.
pub fn list_live(
    conn: &mut DbConnection,
    account_id: &AccountId,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Session>> {
    on_backend!(conn, |conn| {
        sessions::table
            .filter(sessions::account_id.eq(account_id.as_str()))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(naive(now)))
            .order((sessions::created_at.desc(), sessions::id.desc()))
            .select(SessionRow::as_select())
            .load(conn)
            .map(|rows| rows.into_iter().map(SessionRow::into_domain).collect())
    })
}

/// Records use, at most once a minute, so reads stay reads.
pub fn touch(
    conn: &mut DbConnection,
    id: &SessionId,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::update(
            sessions::table
                .find(id.as_str())
                .filter(sessions::last_used_at.lt(naive(stale_before))),
        )
        .set(sessions::last_used_at.eq(naive(now)))
        .execute(conn)
        .map(|_| ())
    })
}

/// Revokes one live session of an account; returns whether it was live.
pub fn revoke(
    conn: &mut DbConnection,
    account_id: &AccountId,
    id: &SessionId,
    now: DateTime<Utc>,
    reason: &str,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            sessions::table
                .filter(sessions::id.eq(id.as_str()))
                .filter(sessions::account_id.eq(account_id.as_str()))
                .filter(sessions::revoked_at.is_null()),
        )
        .set((
            sessions::revoked_at.eq(naive(now)),
            sessions::revoked_reason.eq(reason),
        ))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Revokes every live session of an account except `keep`; returns how many.
pub fn revoke_all(
    conn: &mut DbConnection,
    account_id: &AccountId,
    keep: Option<&SessionId>,
    now: DateTime<Utc>,
    reason: &str,
) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        let target = sessions::table
            .filter(sessions::account_id.eq(account_id.as_str()))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::id.ne(keep.map_or("", SessionId::as_str)));
        diesel::update(target)
            .set((
                sessions::revoked_at.eq(naive(now)),
                sessions::revoked_reason.eq(reason),
            ))
            .execute(conn)
    })
}

/// A refresh token by hash.
pub fn find_refresh(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<RefreshToken>> {
    on_backend!(conn, |conn| {
        refresh_tokens::table
            .find(hash)
            .select(RefreshTokenRow::as_select())
            .get_result(conn)
            .optional()
            .map(|row| row.map(RefreshTokenRow::into_domain))
    })
}

/// Marks a refresh token rotated if it was not yet; the row count decides a race.
pub fn rotate_refresh(
    conn: &mut DbConnection,
    hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            refresh_tokens::table
                .find(hash)
                .filter(refresh_tokens::rotated_at.is_null()),
        )
        .set(refresh_tokens::rotated_at.eq(naive(now)))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Counts one more answer of a rotated refresh token inside the reuse grace: only if it was
/// rotated after `rotated_after` and has answered fewer than `max` times. The row count decides
/// a burst (the UPDATE re-checks its condition on the row another request just changed).
pub fn take_grace_use(
    conn: &mut DbConnection,
    hash: &str,
    rotated_after: DateTime<Utc>,
    max: i32,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            refresh_tokens::table
                .find(hash)
                .filter(refresh_tokens::rotated_at.gt(naive(rotated_after)))
                .filter(refresh_tokens::grace_uses.lt(max)),
        )
        .set(refresh_tokens::grace_uses.eq(refresh_tokens::grace_uses + 1))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Stores a new refresh token.
pub fn insert_refresh(conn: &mut DbConnection, token: &RefreshToken) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(refresh_tokens::table)
            .values(RefreshTokenRow::from_domain(token))
            .execute(conn)
            .map(|_| ())
    })
}
