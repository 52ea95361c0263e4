//! Builds and runs the HTTP server: state, middleware, routes, documentation and background
//! work. `main` and the tests start the service only through [`Application`].

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header::ContentType;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use actix_web_lab::middleware::CatchPanic;
use tokio::sync::watch;
use tracing_actix_web::TracingLogger;
use utoipa_actix_web::AppExt as _;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, RouteTable, openapi, problem};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::context::Ctx;
use crate::db;
use crate::mail::dispatcher::{Dispatcher, GiveUp};
use crate::mail::transport::Transport;

/// A built server, bound to its port, not yet running.
pub struct Application {
    server: Server,
    port: u16,
    /// The metrics listener's server and port, unless `METRICS_BIND_ADDR=off`.
    metrics: Option<(Server, u16)>,
    ctx: Ctx,
    dispatcher: Dispatcher,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("metrics_port", &self.metrics_port())
            .finish()
    }
}

/// Whether the server installs its own SIGINT/SIGTERM handlers (the binary) or not (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signals {
    /// Graceful shutdown on SIGTERM and SIGINT.
    Handle,
    /// Leave signals alone: the embedding process decides.
    Ignore,
}

impl Application {
    /// Connects to the database, applies migrations, binds `BIND_ADDR` (and
    /// `METRICS_BIND_ADDR`) and prepares the servers.
    pub async fn build(
        config: Config,
        clock: SharedClock,
        signals: Signals,
    ) -> anyhow::Result<Self> {
        Self::build_with(config, clock, signals, None).await
    }

    /// Like [`Application::build`], with extra routes mounted beside the API (the tests mount
    /// probes there, such as a handler that panics).
    pub async fn build_with(
        config: Config,
        clock: SharedClock,
        signals: Signals,
        extra_routes: Option<ExtraRoutes>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind_addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind_addr))?;
        let port = listener.local_addr()?.port();
        let metrics_listener = match config.metrics_bind_addr {
            Some(addr) => Some(TcpListener::bind(addr).map_err(|e| {
                anyhow::anyhow!("cannot listen on {addr} (METRICS_BIND_ADDR): {e}")
            })?),
            None => None,
        };
        let transport = Transport::from_config(&config)?;
        let ctx = Ctx::new(config, clock)?;
        let timeout = ctx.config.database_timeout;
        let migrating = ctx.db.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
            db::wait_until_reachable(&migrating, timeout)
                .map_err(|e| anyhow::anyhow!("cannot reach the database: {e}"))?;
            migrating.migrate()
        })
        .await??;

        let server = run(listener, ctx.clone(), signals, extra_routes)?;
        let metrics = match metrics_listener {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                Some((run_metrics(listener, ctx.clone())?, port))
            }
            None => None,
        };
        let dispatcher = Dispatcher {
            db: ctx.db.clone(),
            clock: ctx.clock.clone(),
            transport,
            from: ctx.config.mail_from.clone(),
            mailer: ctx.mailer.clone(),
            metrics: ctx.metrics.clone(),
            give_up: GiveUp {
                max_attempts: ctx.config.outbox_max_attempts,
                max_age: ctx.config.outbox_max_age,
            },
        };
        Ok(Self {
            server,
            port,
            metrics,
            ctx,
            dispatcher,
        })
    }

    /// The port the server listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port the metrics listener listens on (useful with port 0); `None` when
    /// `METRICS_BIND_ADDR=off`.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// The shared state, for background work and tests.
    pub fn context(&self) -> &Ctx {
        &self.ctx
    }

    /// A handle to stop the server (the metrics listener and the background work follow).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves, and delivers mail, until the server is stopped (by SIGTERM or SIGINT, or through
    /// its handle). Requests in flight finish first; then the mail dispatcher stops after the
    /// message in hand.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let dispatcher = tokio::spawn(self.dispatcher.run(stop_rx.clone()));
        let resets = tokio::spawn(crate::services::password_reset::run_worker(
            self.ctx.clone(),
            stop_rx.clone(),
        ));
        let maintenance = tokio::spawn(run_maintenance(self.ctx.clone(), stop_rx));
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let result = self.server.await;
        // The background work hears of the stop at once (the dispatcher must not start another
        // mail); the metrics listener goes after it.
        let _ = stop_tx.send(true);
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        let _ = dispatcher.await;
        let _ = resets.await;
        let _ = maintenance.await;
        result
    }
}

/// Time-driven work, until stopped: recovery requests (held links coming due, expiry,
/// auto-approval) twice a second in app time, and forgetting old rate-limit events and
/// expired WebAuthn ceremonies once a minute.
async fn run_maintenance(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        if let Err(e) = crate::services::recovery_requests::run_due_work(&ctx).await {
            tracing::warn!(error = %e, "recovery-request maintenance failed");
        }
        if last_prune.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
            last_prune = Some(std::time::Instant::now());
            if let Err(e) = crate::services::rate_limit::prune(&ctx).await {
                tracing::warn!(error = %e, "rate-limit housekeeping failed");
            }
            if let Err(e) = crate::services::passkeys::forget_ceremonies(&ctx).await {
                tracing::warn!(error = %e, "webauthn ceremony housekeeping failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The metrics listener: `GET /metrics` and nothing else, on one worker, with no signal
/// handlers of its own (it stops with the API server).
fn run_metrics(listener: TcpListener, ctx: Ctx) -> anyhow::Result<Server> {
    let data = web::Data::new(ctx);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(api::metrics::routes)
    })
    .listen(listener)?
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5);
    Ok(server.run())
}

/// A function that mounts extra routes on the app.
pub type ExtraRoutes = fn(&mut web::ServiceConfig);

fn run(
    listener: TcpListener,
    ctx: Ctx,
    signals: Signals,
    extra_routes: Option<ExtraRoutes>,
) -> anyhow::Result<Server> {
    let doc = openapi::document();
    let routes = web::Data::new(RouteTable::from_openapi(&doc));
    // Serialised once, and the bytes shared by every worker: Swagger UI's own route kept a
    // copy of the document in each worker and serialised it again for every request.
    let doc_json = web::Bytes::from(serde_json::to_vec(&doc)?);
    drop(doc);
    let workers = ctx.config.workers;
    let cors_config = ctx.config.clone();
    let metrics = ctx.metrics.http_middleware();
    let limit = api::slow_clients::ConnectionLimit::new(
        ctx.config.max_connections_per_ip,
        ctx.config.trusted_proxies.clone(),
    );
    let data = web::Data::new(ctx);
    let mut server = HttpServer::new(move || {
        let (app, _) = App::new()
            .into_utoipa_app()
            .configure(api::routes)
            .split_for_parts();
        app.app_data(data.clone())
            .app_data(routes.clone())
            .configure(problem::configure_extractors)
            .configure(|cfg| {
                if let Some(extra) = extra_routes {
                    extra(cfg);
                }
            })
            .route(
                openapi::OPENAPI_JSON_PATH,
                web::get().to({
                    let doc_json = doc_json.clone();
                    move || {
                        let body = doc_json.clone();
                        async move {
                            HttpResponse::Ok()
                                .content_type(ContentType::json())
                                .body(body)
                        }
                    }
                }),
            )
            .service(
                SwaggerUi::new("/swagger-ui/{_:.*}")
                    .config(utoipa_swagger_ui::Config::new([openapi::OPENAPI_JSON_PATH])),
            )
            .service(web::redirect("/swagger-ui", "/swagger-ui/"))
            .default_service(web::to(api::fallback))
            // The first wrap is the innermost. CORS sits inside the problem renderer, which
            // turns its refusals into problem documents; the request id and the security
            // headers sit outside both, so every answer carries them.
            .wrap(CatchPanic::default())
            .wrap(from_fn(api::slow_clients::body_read_deadline))
            .wrap(api::middleware::cors(&cors_config))
            .wrap(from_fn(
                api::middleware::credentials_for_allowed_origins_only,
            ))
            .wrap(from_fn(api::middleware::render_other_errors))
            .wrap(from_fn(api::middleware::request_id_and_log))
            .wrap(from_fn(api::middleware::security_headers))
            .wrap(TracingLogger::<api::middleware::RootSpan>::new())
            // Outermost, so that it times everything and sees the final status.
            .wrap(metrics.clone())
    })
    .on_connect(move |io, data| limit.on_connect(io, data))
    .listen(listener)?
    .shutdown_timeout(30);
    if let Some(n) = workers {
        server = server.workers(n);
    }
    if signals == Signals::Ignore {
        server = server.disable_signals();
    }
    Ok(server.run())
}
