//! The numbers `GET /metrics` shows: the counters kept in memory, plus the outbox backlog read
//! from the database at scrape time (shared by every instance on that database).

use crate::context::Ctx;
use crate::db::repo;
use crate::services::Failure;

/// Reads the outbox backlog, then renders every metric in the Prometheus text format. A
/// database that does not answer leaves the backlog at its last reading; the rest still renders.
pub async fn render(ctx: &Ctx) -> Result<String, Failure> {
    let backlog = ctx
        .db
        .run(|conn| Ok::<_, Failure>(repo::outbox::backlog(conn)?))
        .await;
    match backlog {
        Ok((pending, oldest)) => {
            let age = oldest
                .map(|queued| (ctx.clock.now() - repo::utc(queued)).num_seconds())
                .unwrap_or(0);
            ctx.metrics.set_outbox_backlog(pending, age);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the outbox backlog could not be read"),
    }
    ctx.metrics.render().map_err(Failure::Internal)
}
