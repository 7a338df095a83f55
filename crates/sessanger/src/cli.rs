//! The command line.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// sessanger: one session service for many services.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    /// Config file (YAML or JSON, by extension); `${VAR}` and `${VAR:-default}` are expanded.
    #[arg(long, global = true, env = "SESSANGER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Where the embedded store and the admin token live.
    #[arg(long, global = true, env = "SESSANGER_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Store URL (`embedded://PATH`, `memory://`, `redis://`, `redis+cluster://`, `postgres://`,
    /// `mysql://`, `mongodb://`); overrides `store.url` of the config.
    #[arg(long, global = true, env = "SESSANGER_STORE")]
    pub(crate) store: Option<String>,
    /// Key prefix of this deployment's data in a shared Redis; overrides `store.key_prefix`.
    #[arg(long, global = true, env = "SESSANGER_KEY_PREFIX")]
    pub(crate) key_prefix: Option<String>,
    /// Service token for admin commands sent to a running server (default: the bootstrap
    /// admin token in the data dir).
    #[arg(long, global = true, env = "SESSANGER_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Append the audit trail (JSON lines) to this file instead of standard error.
    #[arg(long, global = true, env = "SESSANGER_AUDIT_LOG")]
    pub(crate) audit_log: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the HTTP service.
    Serve {
        /// Address to listen on (default 127.0.0.1:8090, or `http.listen` of the config).
        #[arg(long, env = "SESSANGER_LISTEN")]
        listen: Option<SocketAddr>,
        /// Also serve these foreign APIs (comma-separated), as `compat.<api>.enabled` does.
        #[arg(long, env = "SESSANGER_COMPAT", value_delimiter = ',')]
        compat: Vec<CompatApi>,
        /// Also serve the admin console under /admin, as `console.enabled` does.
        #[arg(long, env = "SESSANGER_ADMIN_CONSOLE")]
        admin_console: bool,
    },
    /// Manage the services allowed to use sessanger.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// List and revoke sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Read the store's event log.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Create or upgrade the store's schema (SQL stores) and exit; `serve` also does it at start.
    Migrate,
    /// Write every live session and the service registry, as JSON lines, to standard output
    /// (or --output). Sealed attributes stay sealed.
    Export {
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Read what `export` wrote, from standard input (or --input), into the store; sessions and
    /// services it holds already are kept, sessions dead by now are skipped.
    Import {
        /// Read this file instead of standard input.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Copy every live session and service from one store to another, as export and import
    /// would without a file; safe to run again after an interruption.
    MigrateStore {
        /// The store to copy from (a store URL, as --store takes).
        #[arg(long)]
        from: String,
        /// The store to copy into.
        #[arg(long)]
        to: String,
    },
    /// Check configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the AMQP session manager alone (`serve` runs it beside HTTP when `broker:` is set).
    Amqp,
    /// Log a user in through the AMQP manager that serves it; prints the session as JSON.
    /// The password is read from the terminal, or from standard input when it is not one.
    Login {
        /// The system login.
        user: String,
        /// Send to the manager with this routing key, whoever the routing table names.
        #[arg(long)]
        routing_key: Option<String>,
        /// The device the session is opened from.
        #[arg(long)]
        device_id: Option<String>,
    },
    /// Close a session through the AMQP managers; the user's last session takes its broker
    /// account with it.
    Logout {
        /// The session id.
        session_id: String,
    },
    /// The `pam_exec.so` hook: `auth` (with `expose_authtok`) logs `PAM_USER` in with the
    /// password on standard input, `open_session` ties a session to the PAM session (opening
    /// one without a password if need be: admin client accounts only), `close_session` logs
    /// it out. The user's broker account lives while the user is logged in.
    PamExec {
        /// Where PAM sessions are tied to sessanger sessions (root's alone: it holds session
        /// ids).
        #[arg(long, default_value = "/run/sessanger/pam")]
        state_dir: std::path::PathBuf,
    },
    /// Set up the RabbitMQ broker.
    Broker {
        #[command(subcommand)]
        command: BrokerCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BrokerCommand {
    /// Create (or update) the managers' own broker account (tag `administrator`) and its
    /// vhost from the config's `broker.sessanger`, and the clients' account from
    /// `broker.client`, which may only publish requests. Idempotent.
    Setup {
        /// The management API.
        #[arg(long, default_value = "http://127.0.0.1:15672")]
        admin_url: String,
        /// An administrator of the broker, as LOGIN:PASSWORD.
        #[arg(long, env = "SESSANGER_BROKER_ADMIN", hide_env_values = true)]
        admin_user: String,
    },
}

/// A foreign API `serve --compat` can switch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CompatApi {
    /// back-session's API under `/a01`.
    BackSession,
    /// sessman's API under `/sessman`.
    Sessman,
}

/// Output format of listing commands.
#[derive(Debug, Args)]
pub(crate) struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// Register a service and print its token (shown once).
    Add {
        /// The service id: 1 to 64 characters of a-z, 0-9, '-' and '_'.
        id: String,
        /// Comma-separated permissions: read, write, admin.
        #[arg(long, value_delimiter = ',', default_value = "read,write")]
        permissions: Vec<String>,
        /// A human-readable name (defaults to the id).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// List registered services.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Replace a service's permissions; its token keeps working.
    Update {
        /// The service id.
        id: String,
        /// Comma-separated permissions: read, write, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        permissions: Vec<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Remove a service; its token stops working.
    Remove {
        /// The service id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// List a user's live sessions.
    List {
        /// The user.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        out: Output,
    },
    /// Revoke one session, or all of a user's.
    Revoke {
        /// The session id.
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// Revoke every session of this user.
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Print events as they are recorded, one JSON object per line, until interrupted: from
    /// the store, or through the running server that holds it. A dropped connection to the
    /// server is resumed after the last event printed.
    Tail {
        /// Comma-separated types to print (created, refreshed, attributes_changed,
        /// regenerated, deleted, expired); all by default.
        #[arg(long)]
        types: Option<String>,
        /// Print only this user's events.
        #[arg(long)]
        user: Option<String>,
        /// Start after this event id (0: from the oldest kept); by default with what happens
        /// next.
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Parse and validate a config file; errors name file, line and key.
    Check {
        /// The file.
        file: PathBuf,
    },
}
