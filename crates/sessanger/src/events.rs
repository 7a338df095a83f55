//! `sessanger events tail`: the event log, one JSON object per line, as it grows; read from
//! the store, or through the running server that holds it (an embedded store).

use std::time::Duration;

use anyhow::{Context, bail};
use sessanger_client::Received;
use sessanger_core::{EventFilter, EventId, Resume, wire::EventBody};

use crate::{admin::Target, settings::Settings};

/// How long a tail of the store itself waits before it looks at the log again.
const POLL: Duration = Duration::from_millis(500);

/// How long a tail through the server waits before it reconnects after a failure.
const RETRY: Duration = Duration::from_secs(1);

pub(crate) async fn tail(
    settings: &Settings,
    types: Option<&str>,
    user: Option<&str>,
    after: Option<&str>,
) -> anyhow::Result<()> {
    let mut filter = EventFilter::default();
    if let Some(types) = types {
        filter = filter.with_types(types)?;
    }
    filter.user = user.map(str::parse).transpose().context("--user")?;
    let after: Option<EventId> = after.map(str::parse).transpose().context("--after")?;
    match Target::connect(settings).await? {
        Target::Remote(client) => {
            let mut events = client.events(filter, after);
            loop {
                match events.next().await {
                    Ok(Received::Event(event)) => print(&event)?,
                    Ok(Received::Lost { after, trimmed_through }) => {
                        eprintln!(
                            "sessanger: events after {after} up to {trimmed_through} were trimmed before delivery"
                        );
                    }
                    Err(error) if error.is_retryable() => {
                        eprintln!("sessanger: {error}; reconnecting");
                        tokio::time::sleep(RETRY).await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Target::Direct(manager) => {
            let Some(log) = manager.event_log() else {
                bail!("this store keeps no event log");
            };
            let session_ids = settings.server.events.session_ids;
            let Resume { mut cursor, lost } = Resume::from(log, after).await?;
            if let Some((after, trimmed)) = lost {
                eprintln!("sessanger: events after {after} up to {trimmed} were trimmed before delivery");
            }
            loop {
                let batch = log.read_events(cursor, 256).await?;
                let Some(last) = batch.last() else {
                    tokio::time::sleep(POLL).await;
                    continue;
                };
                cursor = Some(last.id);
                for record in batch.iter().filter(|record| filter.keeps(record)) {
                    print(&EventBody::new(record, session_ids))?;
                }
            }
        }
    }
}

fn print(event: &EventBody) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(event)?);
    Ok(())
}
