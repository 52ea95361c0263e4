//! Repository functions: plain sync functions over `&mut DbConnection`, one module per table
//! group. They take and return plain rows; services decide transactions and rules.
//!
//! A lookup by a unique key (or an aggregate) ends in `get_result`, not `first`: `first` adds
//! `LIMIT ?`, which a unique key does not need. SQLite (3.45 and later) also treated a bound
//! LIMIT as a value the query plan may depend on, and planned such a statement again every
//! time it was bound (`bench/load` measured a fifth of the server's CPU on a request-status
//! read); the bundled SQLite is now built with the query planner stability guarantee, which
//! ends that for the pages of lists too (`.cargo/config.toml`). Both answer the first row the
//! query yields.

pub mod account_locks;
pub mod accounts;
pub mod audit;
pub mod devices;
pub mod email_address_changes;
pub mod email_tokens;
pub mod heartbeat;
pub mod outbox;
pub mod passkeys;
pub mod password_reset_jobs;
pub mod rate_limits;
pub mod recovery_requests;
pub mod sessions;
pub mod two_factor;

use chrono::{DateTime, NaiveDateTime, Utc};

/// How times are stored: naive UTC (both backends), microsecond precision.
pub fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

/// Reads a stored time back as UTC.
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// A page request: `page` from 1, `per_page` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: i64,
    /// Rows per page.
    pub per_page: i64,
}

impl Page {
    /// Rows to skip (saturating: a page far beyond the end is simply empty).
    pub fn offset(self) -> i64 {
        (self.page - 1).max(0).saturating_mul(self.per_page)
    }
}
