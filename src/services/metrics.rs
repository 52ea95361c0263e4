//! The numbers the metrics listener shows: the counters kept in memory, plus gauges read at
//! scrape time: the outbox backlog from the database (shared by every instance on that
//! database), this process's database pool and its argon2 queue.

use crate::context::Ctx;
use crate::db::repo;
use crate::services::Failure;

/// Reads the gauges, then renders every metric in the Prometheus text format. A database that
/// does not answer leaves the backlog at its last reading; the rest still renders.
pub async fn render(ctx: &Ctx) -> Result<String, Failure> {
    let backlog = ctx
        .db
        .run(|conn| Ok::<_, Failure>(repo::outbox::backlog(conn)?))
        .await;
    match backlog {
        Ok((pending, oldest)) => {
            let age = oldest
                .map(|queued| (ctx.clock.now() - queued).num_seconds())
                .unwrap_or(0);
            ctx.metrics.set_outbox_backlog(pending, age);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the outbox backlog could not be read"),
    }
    // After the backlog query, so the pool shows the connection it used, back and idle.
    ctx.metrics.set_pool(ctx.db.pool_state());
    ctx.metrics.set_hasher(ctx.passwords.queue());
    ctx.metrics.render().map_err(Failure::Internal)
}
