//! The `account-recovery` command line: `serve` (the default), `migrate`, `openapi` and
//! `support-user create`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use account_recovery::clock::SystemClock;
use account_recovery::config::{Config, ConfigError};
use account_recovery::context::Ctx;
use account_recovery::db::Db;
use account_recovery::services::registration::{self, Registration};
use account_recovery::startup::{Application, Signals};
use account_recovery::{api, telemetry};
use clap::{Parser, Subcommand};

/// Gets locked-out people back into their accounts safely: a JSON API for 2FA recovery codes,
/// password reset by email and support-reviewed account-recovery requests.
///
/// Configuration comes from the environment and from `.env` when present; see `.env.example`.
/// With none, it serves on 127.0.0.1:8080 with SQLite at data/account-recovery.db.
#[derive(Debug, Parser)]
#[command(name = "account-recovery", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations, then serve the API (what a bare `account-recovery` does).
    ///
    /// Swagger UI is at /swagger-ui/, the OpenAPI document at /api-docs/openapi.json.
    /// SIGTERM or Ctrl-C stops it gracefully: requests in flight finish first.
    Serve,
    /// Apply pending database migrations and exit; running it again changes nothing.
    Migrate,
    /// Print the OpenAPI 3.1 document (the content of openapi/openapi.json).
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Manage support accounts (role `support`: review recovery requests, read the audit log).
    #[command(subcommand)]
    SupportUser(SupportUserCommand),
}

#[derive(Debug, Subcommand)]
enum SupportUserCommand {
    /// Create a support account with a verified email address.
    ///
    /// The password is read from standard input (one line), so it never appears in the shell
    /// history or the process list: `printf '%s' "$PW" | account-recovery support-user create
    /// --username ana --email ana@example.com --password-stdin`.
    Create {
        /// The username (3–50 letters, digits, '-', '_', '.').
        #[arg(long)]
        username: String,
        /// The email address.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi { output }) = &cli.command {
        return print_openapi(output.as_deref());
    }
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("account-recovery: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(ConfigError { variable, message }) => {
            eprintln!("account-recovery: configuration error: {variable}: {message}");
            return ExitCode::from(2);
        }
    };
    let _log = telemetry::init(config.app_env);
    if let Some(path) = &config.dev_secrets_file {
        tracing::warn!(
            file = %path.display(),
            "JWT_SECRET or DATA_ENCRYPTION_KEY is not set: using development secrets generated \
             and kept in this file; set both in production"
        );
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Migrate => migrate(&config),
        Command::Openapi { .. } => ExitCode::SUCCESS,
        Command::SupportUser(SupportUserCommand::Create {
            username, email, ..
        }) => create_support_user(config, username, email),
    }
}

fn print_openapi(output: Option<&std::path::Path>) -> ExitCode {
    let json = api::openapi::document_json();
    match output {
        None => {
            print!("{json}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("account-recovery: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

fn migrate(config: &Config) -> ExitCode {
    let result = Db::new(config).and_then(|db| db.migrate());
    match result {
        Ok(applied) if applied.is_empty() => {
            println!("database is up to date");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            for name in applied {
                println!("applied {name}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("account-recovery: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn create_support_user(config: Config, username: String, email: String) -> ExitCode {
    let mut password = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut password) {
        eprintln!("account-recovery: cannot read the password from standard input: {e}");
        return ExitCode::from(2);
    }
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    let result = Ctx::new(config, Arc::new(SystemClock)).and_then(|ctx| {
        ctx.db.migrate()?;
        Ok(registration::create_support_user(
            &ctx,
            Registration {
                username,
                email,
                password,
            },
        ))
    });
    match result {
        Ok(Ok(account)) => {
            println!(
                "created support user {} <{}> (id {})",
                account.username, account.email, account.id
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("account-recovery: cannot create the support user: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("account-recovery: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async move {
        let backend = config.database_url.backend();
        let app = Application::build(config, Arc::new(SystemClock), Signals::Handle).await?;
        tracing::info!(
            port = app.port(),
            metrics_port = app.metrics_port(),
            database = backend,
            "serving; Swagger UI at /swagger-ui/, metrics at /metrics on the metrics port"
        );
        app.run_until_stopped().await?;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "the server stopped");
            eprintln!("account-recovery: {e:#}");
            ExitCode::FAILURE
        }
    }
}
