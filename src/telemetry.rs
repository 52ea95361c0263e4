//! Logging with tracing: human-readable lines in development, JSON in production, `RUST_LOG`
//! honoured (default `info`). Every line inside a request carries its `request_id`.

use tracing_subscriber::EnvFilter;

use crate::config::AppEnv;

/// Keeps the log writer's thread alive; dropping it flushes what is still queued.
#[derive(Debug)]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// How many lines may wait for the log writer. The queue's slots are allocated (and touched)
/// up front: tracing-appender's default of 128,000 lines kept 4 MiB resident for nothing
/// (heaptrack of an idle server). 16,384 lines are a fifth of a second of requests at the
/// fastest endpoint's rate on the benchmark machine; beyond that a worker waits for the writer.
const LOG_QUEUE_LINES: usize = 16_384;

/// Installs the global subscriber once; later calls are no-ops (tests spawn many apps). Lines
/// are formatted on the thread that logs and written to stderr by a thread of their own, so
/// an HTTP worker never waits on the write (the queue blocks rather than dropping a line when
/// stderr cannot keep up). That thread writes what has queued up in one write and flushes
/// whenever the queue is empty, so a line is never held back. Keep the returned guard until
/// the process ends.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(app_env: AppEnv) -> LogGuard {
    // actix-web-prom warns on every request to a route whose pattern holds a regex (Swagger
    // UI's assets) and then labels it with the pattern as it is, which is what we want.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_web_prom=error"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match app_env {
        AppEnv::Production => builder.json().flatten_event(true).try_init(),
        AppEnv::Development => builder.try_init(),
    };
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}
