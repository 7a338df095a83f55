//! Run with `cargo run -p example-web-app`; `--help` lists the flags.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use example_web_app::{COOKIE_NAME, Users, app};
use sessanger_client::Client;
use sessanger_core::SessionManager;
use sessanger_store_embedded::EmbeddedStore;
use sessanger_tower::{ExpressSignatureLayer, SessangerStore};

/// An axum app keeping its sessions in sessanger.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Directory of the embedded session store (unless `--remote`).
    #[arg(long, default_value = "web-app-data")]
    data_dir: PathBuf,
    /// Keep sessions in the sessanger server at this URL (e.g. `http://127.0.0.1:8090`)
    /// instead of the embedded store.
    #[arg(long, requires = "token")]
    remote: Option<String>,
    /// The service token for `--remote`, with the read and write permissions
    /// (`sessanger service add web` prints one).
    #[arg(long, env = "SESSANGER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// JSON object of user name to password; the built-in fixture by default.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Send the session cookie over HTTPS only (serve behind TLS).
    #[arg(long)]
    secure: bool,
    /// Sign the session cookie as express-session does, with this secret, so the Express
    /// example (`examples/express-app`) run with the same secret shares its sessions.
    #[arg(long, env = "SESSION_SECRET", hide_env_values = true)]
    express_secret: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let users = match &args.users {
        Some(path) => Users::load(path)?,
        None => Users::fixture(),
    };
    // In remote mode the server reaps expired sessions; in process, this app does.
    let (router, _reaper) = match (&args.remote, &args.token) {
        (Some(url), Some(token)) => {
            let client = Client::new(url, token)?;
            // Fail now, not at the first visitor, on a wrong URL or token.
            client.stats().await.with_context(|| format!("cannot use the sessanger at {url} with this token"))?;
            println!("sessions are kept by the sessanger at {}", client.base_url());
            (app(SessangerStore::remote(client), users, args.secure), None)
        }
        _ => {
            let embedded = Arc::new(EmbeddedStore::open(&args.data_dir)?);
            let manager = SessionManager::new(embedded, "web-app".parse()?, Duration::from_secs(30 * 60));
            let reaper = manager.spawn_reaper(Duration::from_secs(60));
            (app(SessangerStore::new(manager), users, args.secure), Some(reaper))
        }
    };
    let router = match &args.express_secret {
        Some(secret) => router.layer(ExpressSignatureLayer::new(COOKIE_NAME, secret)),
        None => router,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
