//! Black-box tests through HTTP: one binary, one module per resource. Every test runs on SQLite,
//! or on PostgreSQL when `TEST_POSTGRES_URL` is set.

mod support;

mod account_events;
mod accounts;
mod bursts;
mod cli;
mod cookie_sessions;
mod devices;
mod email_changes;
mod errors;
mod faults;
mod full_disk;
mod health;
mod http_headers;
mod input_hygiene;
mod login_limits;
mod mail;
mod mail_claims;
mod metrics;
mod openapi;
mod passkeys;
mod password_policy;
mod password_resets;
mod recovery_attachments;
mod recovery_caps;
mod recovery_progress;
mod recovery_requests;
mod reset_crash;
mod schema;
mod secrets;
mod session_hygiene;
mod sessions;
mod slow_clients;
mod token_claims;
mod two_factor;
mod two_instances;
mod www_authenticate;
