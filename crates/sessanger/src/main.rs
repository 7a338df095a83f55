//! `sessanger`: the one binary. A thin clap shell over the library crates.
//!
//! # Layout
//! - `cli`: the command line (flags, environment variables, subcommands).
//! - `settings`: the config file merged with flags and environment.
//! - `options`: the config file's sections mapped onto the library crates' options.
//! - `store`: opens the store a URL names.
//! - `serve`: `sessanger serve`, the HTTP service with its first-start bootstrap.
//! - `admin`: `service …` and `sessions …`, on the store directly or through a running server.
//! - `logging`: human logs and the JSON-lines audit trail.
//! - `amqp`: the AMQP session manager and its clients: `amqp`, `login`, `logout`, `pam-exec`,
//!   `broker setup`.

mod admin;
mod amqp;
mod cli;
mod events;
mod logging;
mod options;
mod pam_exec;
mod serve;
mod settings;
mod store;
mod transfer;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crate::cli::{Cli, Command, ConfigCommand, EventsCommand};

fn main() -> std::process::ExitCode {
    // Every TLS client of the binary on the one crypto provider, chosen before any connects.
    sessanger_tls::install_crypto_provider();
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line for whoever started it: what failed and why, each cause after a colon.
            // The backtrace and the cause list only when asked for, as Rust's own panics do.
            eprintln!("error: {}", one_line(&error));
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("{error:?}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each after a colon; a cause that only repeats the
/// text before it (drivers often wrap an I/O error in one that prints the same) is left out.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if !line.ends_with(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line
}

fn start() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.audit_log.as_deref())?;
    if let Command::Config { command: ConfigCommand::Check { file } } = &cli.command {
        // The error already names file, line and key; its source would only repeat them.
        let config = match sessanger_config::Config::load(file) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        if let Some(section) = &config.encryption {
            // Key material is parsed by the keyring alone; check it here too, not first at serve.
            if let Err(e) = options::encryption(section) {
                eprintln!("{}: encryption.keys: {e}", file.display());
                std::process::exit(1);
            }
        }
        println!("{}: ok", file.display());
        if let Some(key) = &config.session.routing_key {
            println!("session.routing_key: {key}");
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = settings::Settings::resolve(&cli)?;
    match cli.command {
        Command::Serve { .. } => serve::run(settings).await,
        Command::Service { command } => admin::service(&settings, command).await,
        Command::Sessions { command } => admin::sessions(&settings, command).await,
        Command::Events { command: EventsCommand::Tail { types, user, after } } => {
            events::tail(&settings, types.as_deref(), user.as_deref(), after.as_deref()).await
        }
        Command::Migrate => admin::migrate(&settings).await,
        Command::Export { output } => transfer::run_export(&settings, output.as_deref()).await,
        Command::Import { input } => transfer::run_import(&settings, input.as_deref()).await,
        Command::MigrateStore { from, to } => transfer::run_migrate(&settings, &from, &to).await,
        Command::Config { .. } => unreachable!("handled before the runtime starts"),
        Command::Amqp => amqp::run_alone(settings).await,
        Command::Login { user, routing_key, device_id } => {
            amqp::login(&settings, &user, routing_key.as_deref(), device_id).await
        }
        Command::Logout { session_id } => amqp::logout(&settings, &session_id).await,
        Command::PamExec { state_dir } => pam_exec::run(&settings, &state_dir).await,
        Command::Broker { command } => amqp::broker(&settings, command).await,
    }
}
