//! Readiness: whether the database answers now.

use crate::context::Ctx;
use crate::db::DbError;

/// Answers `Ok` when the database serves a query, within the configured timeout.
pub async fn check_ready(ctx: &Ctx) -> Result<(), DbError> {
    let db = ctx.db.clone();
    match tokio::task::spawn_blocking(move || db.ping_blocking()).await {
        Ok(result) => result,
        Err(_) => Err(DbError::Unavailable(
            "readiness check did not finish".into(),
        )),
    }
}
