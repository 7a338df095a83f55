//! Opens the store a URL names.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, bail};
use sessanger_core::Store;
use sessanger_store_embedded::{EmbeddedStore, OpenError};
use sessanger_store_memory::MemoryStore;

use crate::settings::{Settings, redact};

/// A store ready to use, or the news that a running server holds it.
#[derive(Debug)]
pub(crate) enum Opened {
    Ready(Arc<dyn Store>),
    /// The embedded store at this path is locked by another process (a running `serve`).
    HeldElsewhere(PathBuf),
}

/// Opens `settings.store_url`; a store this build leaves out is named in the error.
pub(crate) async fn open(settings: &Settings) -> anyhow::Result<Opened> {
    open_url(settings, &settings.store_url, Sealing::Open).await
}

/// What a store opened for the binary does with attributes `encryption:` seals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sealing {
    /// Seals them on the way in and opens them on the way out (`serve`, admin commands).
    Open,
    /// Leaves them as stored: moving sessions between stores keeps sealed values sealed.
    Keep,
}

/// Opens the store at `url` with `settings`' other store options (TLS, key prefix, cache).
pub(crate) async fn open_url(settings: &Settings, url: &str, sealing: Sealing) -> anyhow::Result<Opened> {
    open_store(settings, url, sealing).await.with_context(|| {
        format!("cannot open the store {} (check that it runs and that --store / store.url names it)", redact(url))
    })
}

async fn open_store(settings: &Settings, url: &str, sealing: Sealing) -> anyhow::Result<Opened> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let redis = matches!(scheme, "redis" | "rediss" | "redis+cluster" | "rediss+cluster");
    if !settings.record_events && !redis {
        bail!("events.record: false needs a Redis store; the `{scheme}` store records events with every change");
    }
    if settings.cache == Some(true) && !redis {
        bail!("store.cache: true needs a Redis store; the `{scheme}` store keeps no node cache");
    }
    let store: Arc<dyn Store> = match scheme {
        "memory" => Arc::new(MemoryStore::with_max_events(settings.policy.event_retention.max_events)),
        "embedded" => {
            let path = PathBuf::from(if rest.is_empty() { "sessanger-data" } else { rest });
            match EmbeddedStore::open(&path) {
                Ok(store) => Arc::new(store),
                Err(OpenError::Locked { .. }) => return Ok(Opened::HeldElsewhere(path)),
                Err(e) => return Err(e.into()),
            }
        }
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => {
            let prefix = match &settings.key_prefix {
                Some(prefix) => prefix.parse().map_err(|e| anyhow::anyhow!("store.key_prefix: {e}"))?,
                None => sessanger_store_redis::KeyPrefix::default(),
            };
            let cache = (settings.cache != Some(false)).then_some(settings.cache_size);
            let options = sessanger_store_redis::ConnectOptions { prefix, cache, tls: settings.tls.clone() };
            let store = sessanger_store_redis::RedisStore::connect_with(url, options).await?;
            let max_events = settings.policy.event_retention.max_events;
            Arc::new(store.with_event_log(settings.record_events.then_some(max_events)))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            Arc::new(sessanger_store_sql::PostgresStore::connect_tls(url, &settings.tls).await?)
        }
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => Arc::new(sessanger_store_sql::MySqlStore::connect_tls(url, &settings.tls).await?),
        #[cfg(feature = "mongodb")]
        "mongodb" => {
            let options = sessanger_store_mongodb::MongoOptions::from_url(url)?;
            Arc::new(sessanger_store_mongodb::MongoStore::open(&options).await?)
        }
        "" => bail!("store URL `{url}` has no scheme (expected embedded://PATH, memory://, redis://…)"),
        other => bail!("store `{other}://` is not built into this sessanger"),
    };
    // Encryption wraps whichever store was opened, so every path (serve, admin commands, the
    // compat APIs) reads and writes sealed attributes the same way.
    let store: Arc<dyn Store> = match &settings.encryption {
        Some(section) if sealing == Sealing::Open => {
            let (keyring, selection) =
                crate::options::encryption(section).context("encryption.keys / encryption.active_key")?;
            Arc::new(sessanger_store_encrypted::EncryptedStore::new(store, keyring, selection))
        }
        _ => store,
    };
    Ok(Opened::Ready(store))
}
