//! Black-box tests through HTTP: one binary, one module per resource. Every test runs on SQLite,
//! or on PostgreSQL when `TEST_POSTGRES_URL` is set.

#[allow(
    dead_code,
    unused_imports,
    reason = "parts of the harness serve tests of later changes"
)]
mod support;

mod cli;
mod errors;
mod health;
mod openapi;
