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

    /// The file where the running server announces its URL, so admin commands can find it.
    pub(crate) fn server_url_file(&self) -> PathBuf {
        self.data_dir.join("server.url")
    }

    /// The bootstrap admin token, written once at first start.
    pub(crate) fn admin_token_file(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }
}
