//! Run with `cargo run -p example-web-app`; `--help` lists the flags.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::Parser;
use example_web_app::{Users, app};
use sessanger_core::SessionManager;
use sessanger_store_embedded::EmbeddedStore;
use sessanger_tower::SessangerStore;

/// An axum app keeping its sessions in sessanger.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Directory of the embedded session store.
    #[arg(long, default_value = "web-app-data")]
    data_dir: PathBuf,
    /// JSON object of user name to password; the built-in fixture by default.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Send the session cookie over HTTPS only (serve behind TLS).
    #[arg(long)]
    secure: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let users = match &args.users {
        Some(path) => Users::load(path)?,
        None => Users::fixture(),
    };
    let backend = Arc::new(EmbeddedStore::open(&args.data_dir)?);
    let manager = SessionManager::new(backend, "web-app".parse()?, Duration::from_secs(30 * 60));
    let _reaper = manager.spawn_reaper(Duration::from_secs(60));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app(SessangerStore::new(manager), users, args.secure))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
