//! Prometheus metrics, in one registry per app, rendered in the text exposition format on the
//! metrics listener (`METRICS_BIND_ADDR`) only, never on the API listener: the numbers move with
//! what accounts do (a rate limit that only known usernames reach, a mail queued only for a
//! known login), so public readers could learn which accounts exist.
//!
//! - requests per route pattern, method and status, and their latency (actix-web-prom);
//! - rate-limit refusals per limit kind;
//! - mails sent and failed per kind, counted by the dispatcher;
//! - gauges read at scrape time: the outbox backlog, the database pool and the argon2 queue;
//! - the build (`account_recovery_build_info{version}`) and, on Linux, the process (CPU,
//!   memory, open files, threads, start time) under the standard `process_` names.
//!
//! No label carries a secret, an address, a username or a path parameter: labels are fixed
//! names from the code (route patterns, limit kinds, mail kinds).

use actix_web_prom::{ActixMetricsConfiguration, PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::{Encoder as _, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The prefix of every metric name (except the standard `process_` ones).
pub const NAMESPACE: &str = "account_recovery";

/// The label given to requests that matched no route, so that scanners probing random paths
/// cannot grow the number of series.
const UNMATCHED: &str = "unmatched";

/// Latency buckets in seconds: from cheap reads (~1 ms) to logins paying argon2 (~30 ms) and
/// the database timeout (5 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The app's metrics; cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http: PrometheusMetrics,
    rate_limited: IntCounterVec,
    mail_sent: IntCounterVec,
    mail_failed: IntCounterVec,
    outbox_pending: IntGauge,
    outbox_oldest_pending_age: IntGauge,
    pool_open: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
    argon2: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The database pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolReading {
    /// Open connections, idle or in use.
    pub connections: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most the pool opens (`DATABASE_POOL_SIZE`).
    pub max: u32,
}

/// The argon2 hasher at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherReading {
    /// Hashes waiting for a free hasher thread.
    pub waiting: usize,
    /// Hashes being computed.
    pub in_flight: usize,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

impl Metrics {
    /// Builds a fresh registry with every metric at zero.
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let http = PrometheusMetricsBuilder::new(NAMESPACE)
            .registry(registry.clone())
            .buckets(LATENCY_BUCKETS)
            .mask_unmatched_patterns(UNMATCHED)
            .metrics_configuration(
                ActixMetricsConfiguration::default()
                    .http_requests_duration_seconds_name("http_request_duration_seconds"),
            )
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP metrics: {e}"))?;
        let rate_limited = IntCounterVec::new(
            opts(
                "rate_limit_refusals_total",
                "Events refused or silenced because a rate limit was reached, per limit kind.",
            ),
            &["limit"],
        )?;
        let mail_sent = IntCounterVec::new(
            opts(
                "mail_sent_total",
                "Mails the SMTP server accepted, per mail kind.",
            ),
            &["kind"],
        )?;
        let mail_failed = IntCounterVec::new(
            opts(
                "mail_failed_total",
                "Delivery attempts that failed (each is retried later), per mail kind.",
            ),
            &["kind"],
        )?;
        let outbox_pending = IntGauge::with_opts(opts(
            "outbox_pending",
            "Mails queued in the outbox and not delivered yet (read at scrape time).",
        ))?;
        let outbox_oldest_pending_age = IntGauge::with_opts(opts(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered mail, 0 when none (read at scrape time).",
        ))?;
        let pool_open = IntGauge::with_opts(opts(
            "db_pool_connections",
            "Open database connections of this process, idle or in use (read at scrape time).",
        ))?;
        let pool_idle = IntGauge::with_opts(opts(
            "db_pool_idle_connections",
            "Open database connections waiting in the pool (read at scrape time).",
        ))?;
        let pool_max = IntGauge::with_opts(opts(
            "db_pool_max_connections",
            "The most database connections this process opens (DATABASE_POOL_SIZE).",
        ))?;
        let argon2 = IntGaugeVec::new(
            opts(
                "argon2_hashes",
                "Argon2 hashes and verifications by state: waiting for a hasher thread, or \
                 in_flight (read at scrape time).",
            ),
            &["state"],
        )?;
        let build_info = IntGaugeVec::new(
            opts(
                "build_info",
                "Always 1; the label says which version of the service runs.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for metric in [&rate_limited, &mail_sent, &mail_failed] {
            registry.register(Box::new(metric.clone()))?;
        }
        for gauge in [
            &outbox_pending,
            &outbox_oldest_pending_age,
            &pool_open,
            &pool_idle,
            &pool_max,
        ] {
            registry.register(Box::new(gauge.clone()))?;
        }
        for gauges in [&argon2, &build_info] {
            registry.register(Box::new(gauges.clone()))?;
        }
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            http,
            rate_limited,
            mail_sent,
            mail_failed,
            outbox_pending,
            outbox_oldest_pending_age,
            pool_open,
            pool_idle,
            pool_max,
            argon2,
        })
    }

    /// The middleware that counts and times every request by route pattern, method and status.
    pub fn http_middleware(&self) -> PrometheusMetrics {
        self.http.clone()
    }

    /// Counts one refusal by the limit whose bucket is `bucket` (`kind:key`); only the kind,
    /// a fixed name from the code, becomes a label.
    pub fn rate_limited(&self, bucket: &str) {
        let kind = bucket.split(':').next().unwrap_or(bucket);
        self.rate_limited.with_label_values(&[kind]).inc();
    }

    /// Counts one mail of `kind` (a template name from the code) accepted by the SMTP server.
    pub fn mail_sent(&self, kind: &str) {
        self.mail_sent.with_label_values(&[kind]).inc();
    }

    /// Counts one failed delivery attempt of a mail of `kind`.
    pub fn mail_failed(&self, kind: &str) {
        self.mail_failed.with_label_values(&[kind]).inc();
    }

    /// Records the outbox backlog read from the database.
    pub fn set_outbox_backlog(&self, pending: i64, oldest_age_secs: i64) {
        self.outbox_pending.set(pending);
        self.outbox_oldest_pending_age.set(oldest_age_secs.max(0));
    }

    /// Records the database pool's state.
    pub fn set_pool(&self, pool: PoolReading) {
        self.pool_open.set(i64::from(pool.connections));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
    }

    /// Records the argon2 hasher's queue.
    pub fn set_hasher(&self, hasher: HasherReading) {
        for (state, value) in [("waiting", hasher.waiting), ("in_flight", hasher.in_flight)] {
            self.argon2
                .with_label_values(&[state])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// Renders every metric in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> anyhow::Result<String> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8(buffer)?)
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_label_is_the_bucket_kind_only() {
        let metrics = Metrics::new().expect("metrics");
        metrics.rate_limited("login-ip:203.0.113.9");
        metrics.rate_limited("login-ip:198.51.100.1");
        metrics.rate_limited("second-factor");
        let text = metrics.render().expect("render");
        assert!(text.contains("account_recovery_rate_limit_refusals_total{limit=\"login-ip\"} 2"));
        assert!(
            text.contains("account_recovery_rate_limit_refusals_total{limit=\"second-factor\"} 1")
        );
        assert!(!text.contains("203.0.113.9"));
    }

    #[test]
    fn backlog_age_is_never_negative() {
        let metrics = Metrics::new().expect("metrics");
        metrics.set_outbox_backlog(3, -5);
        let text = metrics.render().expect("render");
        assert!(text.contains("account_recovery_outbox_pending 3"));
        assert!(text.contains("account_recovery_outbox_oldest_pending_age_seconds 0"));
    }

    #[test]
    fn build_info_names_the_version() {
        let text = Metrics::new().expect("metrics").render().expect("render");
        let line = format!(
            "account_recovery_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&line), "{text}");
    }
}
