//! `sessanger serve`.

use std::{fs, io::Write, num::NonZeroU32, path::Path};

use anyhow::{Context, bail};
use sessanger_core::{ManagerError, Permission, SessionManager};
use sessanger_server::{AppState, CompatAuth};
use tokio::net::TcpListener;

use crate::{settings::Settings, store};

pub(crate) async fn run(settings: Settings) -> anyhow::Result<()> {
    let store = match store::open(&settings).await? {
        store::Opened::Ready(store) => store,
        store::Opened::HeldElsewhere(path) => {
            bail!("the embedded store at {} is in use by another sessanger process", path.display())
        }
    };
    let manager = SessionManager::with_policy(store, settings.policy.clone());
    bootstrap_admin(&manager, &settings).await?;
    let _reaper = manager.spawn_reaper(settings.gc_interval);
    // Subscribers (the broker managers' watch, the event stream) hear every node's changes.
    let _feed = manager.spawn_event_feed().await?;
    // Removals through other nodes reach this one's service cache as the store announces them.
    let _service_watch = manager.spawn_service_watch().await?;
    // One signal stops both front ends: HTTP takes it, and dropping `stop` tells AMQP.
    let (stop, stopping) = tokio::sync::watch::channel(());
    let amqp = crate::amqp::spawn(&settings, &manager, stopping)?;

    let listener = TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    fs::create_dir_all(&settings.data_dir)?;
    // Written aside and renamed into place: whoever waits for the file (the admin commands,
    // scripts, tests) must never read it created but still empty.
    let url_file = settings.server_url_file();
    let partial = url_file.with_extension("url.partial");
    fs::write(&partial, &url)?;
    fs::rename(&partial, &url_file)?;
    tracing::info!(%url, store = %settings.store_url_redacted(), "sessanger listening");

    let compat = &settings.server.compat;
    for (api, enabled, auth) in [
        ("back-session (/a01)", compat.back_session.enabled, compat.back_session.auth),
        ("sessman (/sessman)", compat.sessman.enabled && compat.sessman.api_key.is_none(), compat.sessman.auth),
    ] {
        if enabled && auth == CompatAuth::None {
            tracing::warn!(
                api,
                "compat API enabled without authentication (auth: none): anyone who reaches it can act on sessions"
            );
        }
    }
    let options = settings.server.clone();
    let shutdown = async move {
        shutdown_signal().await;
        drop(stop);
    };
    let served = sessanger_server::serve(listener, AppState::new(manager, options), shutdown).await;
    if let Some(amqp) = amqp {
        let _ = amqp.await;
    }
    let _ = fs::remove_file(settings.server_url_file());
    tracing::info!("sessanger stopped");
    Ok(served?)
}

/// On first start (no service registered) creates the `admin` service, prints its token once
/// and keeps it in `<data-dir>/admin.token` (mode 0600) for the admin commands.
///
/// Nodes started together on one empty store all get here; the store registers a service
/// atomically and only once, so exactly one node creates the token and writes it, and the
/// others say where to find it and serve on.
async fn bootstrap_admin(manager: &SessionManager, settings: &Settings) -> anyhow::Result<()> {
    if !manager.list_services(None, NonZeroU32::MIN).await?.is_empty() {
        return Ok(());
    }
    let path = settings.admin_token_file();
    let registered = manager.register_service("admin".parse()?, "Administrator", Permission::ALL.to_vec()).await;
    let token = match registered {
        Ok((_, token)) => token,
        Err(ManagerError::ServiceExists(_)) => {
            tracing::info!(
                token_file = %path.display(),
                "another node registered the admin service first: its token is in the admin.token of that \
                 node's data dir (this one's, if they share it)"
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    fs::create_dir_all(&settings.data_dir)?;
    write_secret(&path, &token.expose())?;
    println!("admin token (shown once, also in {}): {}", path.display(), token.expose());
    Ok(())
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{secret}")?;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
