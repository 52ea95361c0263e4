//! Readiness: whether the database answers now and takes writes.

use crate::context::Ctx;
use crate::db::DbError;

/// Answers `Ok` when a write commits, within the configured timeout: a database that answers
/// reads but cannot commit (full disk, read-only) is not ready, since every change fails.
pub async fn check_ready(ctx: &Ctx) -> Result<(), DbError> {
    let db = ctx.db.clone();
    let now = ctx.clock.now();
    match tokio::task::spawn_blocking(move || db.probe_write_blocking(now)).await {
        Ok(result) => result,
        Err(_) => Err(DbError::Unavailable(
            "readiness check did not finish".into(),
        )),
    }
}
