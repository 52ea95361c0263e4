//! Prometheus metrics: request counts and latencies per route and status (actix-web-prom),
//! rate-limit refusals per limit, and the outbox backlog, in one registry per app that
//! `GET /metrics` renders in the text exposition format.

use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::{Encoder as _, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The prefix of every metric name.
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
    outbox_pending: IntGauge,
    outbox_oldest_pending_age: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Builds a fresh registry with every metric at zero.
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let http = PrometheusMetricsBuilder::new(NAMESPACE)
            .registry(registry.clone())
            .buckets(LATENCY_BUCKETS)
            .mask_unmatched_patterns(UNMATCHED)
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP metrics: {e}"))?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limit_hits_total",
                "Events refused or silenced because a rate limit was reached, per limit.",
            )
            .namespace(NAMESPACE),
            &["limit"],
        )?;
        let outbox_pending = IntGauge::with_opts(
            Opts::new(
                "outbox_pending",
                "Mails queued in the outbox and not delivered yet (read at scrape time).",
            )
            .namespace(NAMESPACE),
        )?;
        let outbox_oldest_pending_age = IntGauge::with_opts(
            Opts::new(
                "outbox_oldest_pending_age_seconds",
                "Age of the oldest undelivered mail, 0 when none (read at scrape time).",
            )
            .namespace(NAMESPACE),
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(outbox_pending.clone()))?;
        registry.register(Box::new(outbox_oldest_pending_age.clone()))?;
        Ok(Self {
            registry,
            http,
            rate_limited,
            outbox_pending,
            outbox_oldest_pending_age,
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

    /// Records the outbox backlog read from the database.
    pub fn set_outbox_backlog(&self, pending: i64, oldest_age_secs: i64) {
        self.outbox_pending.set(pending);
        self.outbox_oldest_pending_age.set(oldest_age_secs.max(0));
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
        assert!(text.contains("account_recovery_rate_limit_hits_total{limit=\"login-ip\"} 2"));
        assert!(text.contains("account_recovery_rate_limit_hits_total{limit=\"second-factor\"} 1"));
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
}
