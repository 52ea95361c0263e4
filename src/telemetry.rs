//! Logging with tracing: human-readable lines in development, JSON in production, `RUST_LOG`
//! honoured (default `info`). Every line inside a request carries its `request_id`.

use tracing_subscriber::EnvFilter;

use crate::config::AppEnv;

/// Installs the global subscriber once; later calls are no-ops (tests spawn many apps).
pub fn init(app_env: AppEnv) {
    // actix-web-prom warns on every request to a route whose pattern holds a regex (Swagger
    // UI's assets) and then labels it with the pattern as it is, which is what we want.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_web_prom=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match app_env {
        AppEnv::Production => builder.json().flatten_event(true).try_init(),
        AppEnv::Development => builder.try_init(),
    };
}
