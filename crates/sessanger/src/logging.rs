//! Human-readable logs on standard error, and the audit trail as JSON lines.

use std::{fs::OpenOptions, io::IsTerminal, path::Path, sync::Mutex};

use sessanger_core::audit;
use tracing_subscriber::{EnvFilter, Layer, filter::filter_fn, layer::SubscriberExt, util::SubscriberInitExt};

/// `RUST_LOG` filters the human logs (default `info`); audit events always go to the trail.
pub(crate) fn init(audit_log: Option<&Path>) -> anyhow::Result<()> {
    let human = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_filter(filter_fn(|meta| meta.target() != audit::TARGET));
    let audit_layer = tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(false);
    let audit_layer = match audit_log {
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            audit_layer.with_writer(Mutex::new(file)).boxed()
        }
        None => audit_layer.with_writer(std::io::stderr).boxed(),
    }
    .with_filter(filter_fn(|meta| meta.target() == audit::TARGET));
    tracing_subscriber::registry().with(human).with(audit_layer).init();
    Ok(())
}
