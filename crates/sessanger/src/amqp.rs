//! The AMQP side of the binary: the session manager (`amqp`, and beside HTTP in `serve`), its
//! clients (`login`, `logout`; `pam-exec` in its own module) and `broker setup`. Everything here is a thin
//! shell over `sessanger-amqp`.

use std::{
    io::{IsTerminal, Read},
    sync::Arc,
};

use anyhow::{Context, bail};
use sessanger_amqp::{
    AmqpClient, BrokerOptions, ClientError, Responder, RoutingKey, ServeOptions, broker::BrokerAdmin,
    relay::RelayOptions,
};
use sessanger_core::SessionManager;
use tokio::sync::watch;

use crate::{cli::BrokerCommand, settings::Settings, store};

/// A manager's refusal is the command's answer, not a crash: print its code and message
/// (`auth_failed: wrong user name or password`) and exit 1.
pub(crate) fn answered<T>(result: Result<T, ClientError>) -> anyhow::Result<T> {
    match result {
        Err(ClientError::Remote(failure)) => {
            eprintln!("{}", ClientError::Remote(failure));
            std::process::exit(1)
        }
        other => Ok(other?),
    }
}

pub(crate) fn broker_config(settings: &Settings) -> anyhow::Result<&BrokerOptions> {
    settings.broker.as_ref().context("the config has no `broker:` section (pass --config FILE)")
}

/// The key this process consumes: `session.routing_key`, or the table's only key.
fn routing_key(settings: &Settings, broker: &BrokerOptions) -> anyhow::Result<RoutingKey> {
    let key = match (&settings.routing_key, broker.routing_keys.keys().collect::<Vec<_>>().as_slice()) {
        (Some(key), _) => key.clone(),
        (None, [only]) => (*only).clone(),
        (None, []) => "sessanger".to_owned(),
        (None, _) => bail!("session.routing_key must name which of broker.routing_keys this manager serves"),
    };
    key.parse().with_context(|| format!("session.routing_key `{key}`"))
}

/// Starts the AMQP session manager on `manager` when the config has a `broker:` section, with
/// the relay of the store's event log to the broker beside it; both stop when `stop` is
/// dropped.
pub(crate) fn spawn(
    settings: &Settings,
    manager: &SessionManager,
    stop: watch::Receiver<()>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(broker) = settings.broker.as_ref() else { return Ok(None) };
    let options = ServeOptions::from_options(broker).map_err(anyhow::Error::msg)?;
    let relay = RelayOptions::from_options(broker, settings.server.events.session_ids).map_err(anyhow::Error::msg)?;
    let key = routing_key(settings, broker)?;
    let manager = manager.for_service(&"amqp".parse().expect("a valid service id"));
    let responder = Arc::new(Responder::from_options(manager.clone(), broker, key.clone())?);
    tracing::info!(routing_key = %key, broker = %broker.url, "starting the AMQP session manager");
    let stopped = |mut stop: watch::Receiver<()>| async move {
        let _ = stop.changed().await;
    };
    Ok(Some(tokio::spawn(async move {
        tokio::join!(
            sessanger_amqp::serve(options, responder, stopped(stop.clone())),
            sessanger_amqp::relay::relay(manager, relay, stopped(stop)),
        );
    })))
}

/// `sessanger amqp`: the manager alone, on the configured store.
pub(crate) async fn run_alone(settings: Settings) -> anyhow::Result<()> {
    // Before the store opens: a client's config holds no managers' password.
    broker_config(&settings)?.manager.password().map_err(anyhow::Error::msg)?;
    let store = match store::open(&settings).await? {
        store::Opened::Ready(store) => store,
        store::Opened::HeldElsewhere(path) => {
            bail!("the embedded store at {} is in use by another sessanger process", path.display())
        }
    };
    let manager = SessionManager::with_policy(store, settings.policy.clone());
    let _reaper = manager.spawn_reaper(settings.gc_interval);
    // Subscribers (the broker managers' watch, the event stream) hear every node's changes.
    let _feed = manager.spawn_event_feed().await?;
    let (stop, stopping) = watch::channel(());
    let task = spawn(&settings, &manager, stopping)?.expect("broker config checked above");
    crate::serve::shutdown_signal().await;
    drop(stop);
    task.await?;
    Ok(())
}

/// The password: from the terminal without echo, or the first line of standard input.
pub(crate) fn read_password(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password(prompt)?);
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    // pam_exec ends the token with a NUL; a shell pipe with a newline.
    let line = text.split(['\0', '\n']).next().unwrap_or_default();
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

/// `sessanger login USER`.
pub(crate) async fn login(
    settings: &Settings,
    user: &str,
    routing_key: Option<&str>,
    device_id: Option<String>,
) -> anyhow::Result<()> {
    let broker = broker_config(settings)?;
    let user = user.parse()?;
    let password = read_password("Password: ")?;
    let client = AmqpClient::from_options(broker).await?;
    let reply = answered(match routing_key {
        Some(key) => client.login_via(&key.parse()?, &user, Some(&password), device_id).await,
        None => client.login(&user, Some(&password), device_id).await,
    })?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    client.close().await?;
    Ok(())
}

/// `sessanger logout SESSION_ID`.
pub(crate) async fn logout(settings: &Settings, session_id: &str) -> anyhow::Result<()> {
    let client = AmqpClient::from_options(broker_config(settings)?).await?;
    let session = answered(client.logout(&session_id.parse()?).await)?;
    println!("{}", serde_json::json!({"ok": true, "session_id": session.session_id, "user_id": session.user_id}));
    client.close().await?;
    Ok(())
}

/// `sessanger broker setup`.
pub(crate) async fn broker(settings: &Settings, command: BrokerCommand) -> anyhow::Result<()> {
    match command {
        BrokerCommand::Setup { admin_url, admin_user } => {
            let broker = broker_config(settings)?;
            let (login, password) = admin_user.split_once(':').context("--admin-user is LOGIN:PASSWORD")?;
            BrokerAdmin::new(&admin_url, login, password)
                .setup(broker)
                .await
                .context("setting up the managers' and the clients' broker accounts")?;
            println!(
                "broker accounts ready: `{}` (the managers', vhost `{}`), `{}` (the clients')",
                broker.manager.login,
                broker.vhost(),
                broker.client.login
            );
            Ok(())
        }
    }
}
