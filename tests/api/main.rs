//! Black-box tests through HTTP: one binary, one module per resource. Every test runs on SQLite,
//! or on PostgreSQL when `TEST_POSTGRES_URL` is set.

mod support;

mod accounts;
mod cli;
mod errors;
mod faults;
mod full_disk;
mod health;
mod http_headers;
mod login_limits;
mod mail;
mod mail_claims;
mod metrics;
mod openapi;
mod password_resets;
mod recovery_requests;
mod reset_crash;
mod secrets;
mod sessions;
mod slow_clients;
mod two_factor;
mod two_instances;
