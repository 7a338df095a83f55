//! The config file merged with flags and environment: flags win, then the file, then defaults.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use sessanger_core::config::Config;

use crate::cli::{Cli, Command, CompatApi};

/// Everything a command needs to know about where things are.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: Config,
    pub(crate) data_dir: PathBuf,
    pub(crate) store_url: String,
    pub(crate) listen: SocketAddr,
    pub(crate) token: Option<String>,
}

impl Settings {
    pub(crate) fn resolve(cli: &Cli) -> anyhow::Result<Settings> {
        let mut config = match &cli.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(prefix) = &cli.key_prefix {
            config.store.key_prefix = Some(prefix.clone());
        }
        if let Command::Serve { compat, .. } = &cli.command {
            for api in compat {
                match api {
                    CompatApi::BackSession => config.compat.back_session.enabled = true,
                    CompatApi::Sessman => config.compat.sessman.enabled = true,
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
        Ok(Settings { config, data_dir, store_url, listen, token: cli.token.clone() })
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
fn redact(url: &str) -> String {
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
