//! Opens the store a URL names.

use std::{path::PathBuf, sync::Arc};

use anyhow::bail;
use sessanger_core::Backend;
use sessanger_store_embedded::{EmbeddedStore, OpenError};
use sessanger_store_memory::MemoryStore;

/// A store ready to use, or the news that a running server holds it.
#[derive(Debug)]
pub(crate) enum Opened {
    Ready(Arc<dyn Backend>),
    /// The embedded store at this path is locked by another process (a running `serve`).
    HeldElsewhere(PathBuf),
}

pub(crate) fn open(url: &str) -> anyhow::Result<Opened> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    match scheme {
        "memory" => Ok(Opened::Ready(Arc::new(MemoryStore::new()))),
        "embedded" => {
            let path = PathBuf::from(if rest.is_empty() { "sessanger-data" } else { rest });
            match EmbeddedStore::open(&path) {
                Ok(store) => Ok(Opened::Ready(Arc::new(store))),
                Err(OpenError::Locked { .. }) => Ok(Opened::HeldElsewhere(path)),
                Err(e) => Err(e.into()),
            }
        }
        "" => bail!("store URL `{url}` has no scheme (expected embedded://PATH or memory://)"),
        other => bail!("store `{other}://` is not built into this sessanger (available: embedded://, memory://)"),
    }
}
