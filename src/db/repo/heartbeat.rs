//! The `heartbeats` table: one row that readiness rewrites to prove that writes commit.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::repo::naive;
use crate::db::schema::heartbeats;

/// Rewrites the heartbeat row (and puts it back should it be missing). Run it in a write
/// transaction; its commit is the proof.
pub fn beat(conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<()> {
    let now = naive(now);
    let updated = diesel::update(heartbeats::table.filter(heartbeats::id.eq(1)))
        .set(heartbeats::beat_at.eq(now))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(heartbeats::table)
            .values((heartbeats::id.eq(1), heartbeats::beat_at.eq(now)))
            .execute(conn)?;
    }
    Ok(())
}
