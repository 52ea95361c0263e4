//! Does a limit check cost the same after 10 and after 100,000 earlier events?
//!
//! Every limit is a GCRA bucket: one row per bucket, whatever it has counted
//! (`src/services/rate_limit.rs`). This times `rate_limit::take`, one autocommitted statement as
//! a request pays it, on a fresh database (SQLite, or PostgreSQL when `TEST_POSTGRES_URL` is
//! set), in three states:
//! - `10 events, small table`: buckets that have each counted 10 takes, alone in the table;
//! - `10 events, 100k buckets`: the same kind of buckets after 100,000 other buckets were
//!   filled (one take each);
//! - `100k events`: one bucket that has counted 100,000 takes (in that full table).
//!
//! The last two are measured interleaved, alternating which goes first, so the machine's drift
//! falls on both. Prints each median, the ratio of `100k events` to `10 events, 100k buckets`
//! (the target, 0.8–1.25), that of `10 events, small table` for information (measured first,
//! alone, so it carries more of the drift), and the table's rows (one per bucket: O(1) storage
//! per bucket, none per event).
//!
//! ```sh
//! cargo bench --bench rate_limit                     # 300 samples of each
//! BENCH_ROUNDS=1000 cargo bench --bench rate_limit
//! ```

#[path = "../tests/api/support/mod.rs"]
#[expect(dead_code, reason = "the benchmark uses only part of the test harness")]
mod support;

use std::time::{Duration, Instant};

use account_recovery::config::Limit;
use account_recovery::db::{DbConnection, write_transaction};
use account_recovery::metrics::Metrics;
use account_recovery::services::rate_limit::{self, Decision};
use chrono::Utc;

const EARLIER: usize = 100_000;
const FEW: usize = 10;
const WARM_UP: usize = 100;
const TARGET: std::ops::RangeInclusive<f64> = 0.8..=1.25;

/// A limit no bench bucket reaches: every take is counted.
fn limit() -> Limit {
    Limit {
        max: u32::MAX,
        window: Duration::from_secs(365 * 24 * 3600),
    }
}

fn main() -> std::process::ExitCode {
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(300);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The app only creates and migrates the database; the timing uses a connection of its own.
    let app = runtime.block_on(support::spawn_app());
    let backend = if app.db.is_postgres() {
        "postgresql"
    } else {
        "sqlite"
    };
    match run(&app.db.url(), rounds) {
        Ok(Report {
            small,
            full_few,
            full_many,
            rows,
        }) => {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let ratio_small = ms(small) / ms(full_few);
            let ratio_many = ms(full_many) / ms(full_few);
            println!("rate_limit::take on {backend}, {rounds} samples each (medians)");
            println!(
                "  {FEW} events, small table     {:.3} ms  ratio {ratio_small:.2}",
                ms(small)
            );
            println!("  {FEW} events, {EARLIER} buckets  {:.3} ms", ms(full_few));
            println!(
                "  {EARLIER} events            {:.3} ms  ratio {ratio_many:.2}",
                ms(full_many)
            );
            println!("  table rows {rows} (one per bucket)");
            let met = TARGET.contains(&ratio_many);
            println!(
                "  target (100k events / 10 events) {:.2}–{:.2}: {}",
                TARGET.start(),
                TARGET.end(),
                if met { "met" } else { "missed" }
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rate_limit bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Report {
    small: Duration,
    full_few: Duration,
    full_many: Duration,
    rows: i64,
}

fn take(conn: &mut DbConnection, metrics: &Metrics, bucket: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let decision = rate_limit::take(conn, metrics, bucket, limit(), Utc::now())?;
    let elapsed = start.elapsed();
    anyhow::ensure!(decision == Decision::Allowed, "{bucket} was refused");
    Ok(elapsed)
}

/// Counts `n` takes in each of `buckets`, in one transaction (seeding, not timed).
fn seed(
    conn: &mut DbConnection,
    metrics: &Metrics,
    buckets: &[String],
    n: usize,
) -> anyhow::Result<()> {
    write_transaction(conn, |c| -> anyhow::Result<()> {
        for bucket in buckets {
            for _ in 0..n {
                rate_limit::take(c, metrics, bucket, limit(), Utc::now())?;
            }
        }
        Ok(())
    })
}

/// PostgreSQL: the same seeding, run inside the server. One round trip per take costs about a
/// millisecond on a loaded machine (200,000 would take minutes), so a `DO` block runs the very
/// upsert of `repo::rate_limits::take` 100,000 times on `many` and once on each of 100,000
/// other buckets, committing every 1,000 (one transaction updating a row 100,000 times would
/// measure PostgreSQL's version chains, not the limit).
fn seed_pg(c: &mut DbConnection, many: &str) -> anyhow::Result<()> {
    use diesel::RunQueryDsl;
    let upsert = |bucket: &str| {
        format!(
            "INSERT INTO rate_limit_buckets AS r (bucket, tat) VALUES ({bucket}, now_us + iv) \
             ON CONFLICT (bucket) DO UPDATE SET tat = GREATEST(r.tat, now_us) + iv \
             WHERE GREATEST(r.tat, now_us) + iv - now_us <= win;"
        )
    };
    let (interval, window) = {
        let l = limit();
        let w = i64::try_from(l.window.as_micros())?;
        ((w / i64::from(l.max)).max(1), w)
    };
    let sql = format!(
        "DO $$ DECLARE now_us bigint := (extract(epoch from clock_timestamp()) * 1e6)::bigint; \
         iv bigint := {interval}; win bigint := {window}; \
         BEGIN FOR i IN 1..{EARLIER} LOOP {} {} \
         IF i % 1000 = 0 THEN COMMIT; END IF; END LOOP; END $$",
        upsert(&format!("'{many}'")),
        upsert("'bench-other:' || i"),
    );
    diesel::sql_query(sql).execute(c)?;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn run(url: &str, rounds: usize) -> anyhow::Result<Report> {
    use diesel::Connection;
    let mut conn = DbConnection::establish(url)?;
    let metrics = Metrics::new()?;
    let c = &mut conn;

    // 10 events, small table: a fresh few-events bucket per sample, so none counts more.
    let few_small: Vec<String> = (0..rounds + WARM_UP)
        .map(|i| format!("bench-few-a:{i}"))
        .collect();
    seed(c, &metrics, &few_small, FEW)?;
    let mut small = Vec::with_capacity(rounds);
    for (i, bucket) in few_small.iter().enumerate() {
        let d = take(c, &metrics, bucket)?;
        if i >= WARM_UP {
            small.push(d);
        }
    }

    // 100,000 other buckets, and one bucket with 100,000 events.
    let t0 = Instant::now();
    let many = "bench-many".to_owned();
    if matches!(c, DbConnection::Pg(_)) {
        seed_pg(c, &many)?;
    } else {
        let others: Vec<String> = (0..EARLIER).map(|i| format!("bench-other:{i}")).collect();
        seed(c, &metrics, &others, 1)?;
        seed(c, &metrics, std::slice::from_ref(&many), EARLIER)?;
    }
    let few_full: Vec<String> = (0..rounds + WARM_UP)
        .map(|i| format!("bench-few-b:{i}"))
        .collect();
    seed(c, &metrics, &few_full, FEW)?;
    eprintln!(
        "seeded {} takes in {:.1} s",
        2 * EARLIER,
        t0.elapsed().as_secs_f64()
    );

    let mut full_few = Vec::with_capacity(rounds);
    let mut full_many = Vec::with_capacity(rounds);
    for (i, bucket) in few_full.iter().enumerate() {
        let (a, b) = if i % 2 == 0 {
            let a = take(c, &metrics, bucket)?;
            (a, take(c, &metrics, &many)?)
        } else {
            let b = take(c, &metrics, &many)?;
            (take(c, &metrics, bucket)?, b)
        };
        if i >= WARM_UP {
            full_few.push(a);
            full_many.push(b);
        }
    }

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    let rows = diesel::sql_query("SELECT COUNT(*) AS n FROM rate_limit_buckets")
        .load::<Count>(c)?
        .first()
        .map_or(0, |r| r.n);

    Ok(Report {
        small: median(small),
        full_few: median(full_few),
        full_many: median(full_many),
        rows,
    })
}
