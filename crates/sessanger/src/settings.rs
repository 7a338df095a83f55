//! The config file merged with flags and environment: flags win, then the file, then defaults.
//! The file's sections become the library crates' options here (through `options`), once.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use sessanger_amqp::BrokerOptions;
use sessanger_config::{Config, EncryptionConfig};
use sessanger_core::SessionPolicy;
use sessanger_server::ServerOptions;

use crate::{
    cli::{Cli, Command, CompatApi},
    options,
};

/// Everything a command needs to know: where things are, and each library's options.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) store_url: String,
    pub(crate) listen: SocketAddr,
    pub(crate) token: Option<String>,
    /// How sessions live (`session:`).
    pub(crate) policy: SessionPolicy,
    /// How often expired sessions are purged (`session.gc_interval`).
    pub(crate) gc_interval: Duration,
    /// The routing key this process consumes on the broker (`session.routing_key`).
    pub(crate) routing_key: Option<String>,
    /// The HTTP service: `http.body_limit`, and `compat:` with `--compat`.
    pub(crate) server: ServerOptions,
    /// The broker (`broker:`), when sessanger is on one.
    pub(crate) broker: Option<BrokerOptions>,
    /// The key prefix of a shared store (`--key-prefix`, else `store.key_prefix`).
    pub(crate) key_prefix: Option<String>,
    /// Whether the store records events (`events.record`).
    pub(crate) record_events: bool,
    /// Whether the node cache is asked for (`store.cache`): `None` leaves it to the store.
    pub(crate) cache: Option<bool>,
    /// The node cache's memory (`store.cache_size`).
    pub(crate) cache_size: std::num::NonZeroUsize,
    /// TLS to the store (`store.tls`), for a URL that asks for it.
    pub(crate) tls: sessanger_tls::TlsOptions,
    /// Attribute encryption (`encryption:`). Its keys are parsed when the store is opened, so
    /// a bad key fails the commands that open the store and no other.
    pub(crate) encryption: Option<EncryptionConfig>,
}

impl Settings {
    pub(crate) fn resolve(cli: &Cli) -> anyhow::Result<Settings> {
        let config = match &cli.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let console = config.console.enabled || matches!(cli.command, Command::Serve { admin_console: true, .. });
        let mut compat = options::compat(&config.compat);
        if let Command::Serve { compat: apis, .. } = &cli.command {
            for api in apis {
                match api {
                    CompatApi::BackSession => compat.back_session.enabled = true,
                    CompatApi::Sessman => compat.sessman.enabled = true,
                }
            }
        }
        let data_dir =
            cli.data_dir.clone().or_else(|| config.data_dir.clone()).unwrap_or_else(|| PathBuf::from("sessanger-data"));
        let store_url = cli
            .store
            .clone()
            .or_else(|| config.store.url.clone())
            .unwrap_or_else(|| format!("embedded://{}", data_dir.display()));
        let listen = match &cli.command {
            Command::Serve { listen: Some(addr), .. } => *addr,
            _ => config.http.listen.parse().context("http.listen is not a socket address")?,
        };
        Ok(Settings {
            data_dir,
            store_url,
            listen,
            token: cli.token.clone(),
            policy: config.session_policy(),
            gc_interval: config.session.gc_interval,
            routing_key: config.session.routing_key.clone(),
            server: options::server(
                &config.http,
                compat,
                &config.events,
                console.then_some(&config.console),
                config.encryption.as_ref(),
            ),
            broker: config.broker.as_ref().map(options::broker),
            key_prefix: cli.key_prefix.clone().or(config.store.key_prefix),
            record_events: config.events.record,
            cache: config.store.cache,
            // Validation refused 0.
            cache_size: std::num::NonZeroUsize::new(config.store.cache_size).unwrap_or(std::num::NonZeroUsize::MIN),
            tls: options::tls(&config.store.tls),
            encryption: config.encryption,
        })
    }

    /// The store URL with any password blanked, fit for logs and messages.
    pub(crate) fn store_url_redacted(&self) -> String {
        redact(&self.store_url)
    }

    /// The file where the running server announces its URL, so admin commands can find it.
    pub(crate) fn server_url_file(&self) -> PathBuf {
        self.data_dir.join("server.url")
    }

    /// The bootstrap admin token, written once at first start.
    pub(crate) fn admin_token_file(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.split_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_in_store_urls_are_blanked() {
        assert_eq!(super::redact("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(super::redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(super::redact("embedded://data"), "embedded://data");
    }
}
