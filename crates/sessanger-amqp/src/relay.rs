//! [`relay`]: the store's event log forwarded to RabbitMQ, so services that live on the broker
//! hear of every session change (seed 001's "be told when one expires").
//!
//! Events go to the durable topic exchange [`EVENTS_EXCHANGE`] in the managers' vhost, with
//! routing key `session.<type>` (`session.expired`, …), as persistent JSON messages whose
//! `message_id` is the event id. Delivery is at least once: a batch counts as forwarded only
//! when the broker confirmed every message of it (publisher confirms), and the position is
//! saved in the store after that; a relay that loses its connection, or a process that dies,
//! sends the unconfirmed part again, which consumers drop by `message_id`.
//!
//! Any number of processes may run a relay on one store: a lease in the store
//! ([`EventLog::claim_relay`](sessanger_core::EventLog::claim_relay)) lets one forward at a
//! time, and a holder that lost its lease cannot move the position
//! ([`EventLog::advance_relay`](sessanger_core::EventLog::advance_relay)), so the others
//! take over where it stopped.

use std::{
    future::Future,
    pin::{Pin, pin},
    time::{Duration, Instant},
};

use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ExchangeKind,
    options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions},
    types::FieldTable,
    uri::AMQPUri,
};
use sessanger_core::{EventId, EventLog, RelayClaim, SessionManager, StoreError, Timestamp, wire::EventBody};
use sessanger_tls::LoadedTls;
use tokio::sync::broadcast;

use crate::BrokerOptions;

/// The exchange events are published to (topic, durable), in the managers' vhost.
pub const EVENTS_EXCHANGE: &str = "sessanger.events";

/// The relay's name in the store: one relay forwards the log to the broker.
const NAME: &str = "rabbitmq";

/// The most events published before waiting for their confirms.
const BATCH: usize = 256;

/// How long an idle relay waits before it looks at the log again when nothing in this process
/// woke it (events of other processes sharing the store).
const POLL: Duration = Duration::from_secs(1);

const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How [`relay`] connects and forwards.
#[derive(Clone, Debug)]
pub struct RelayOptions {
    /// The broker, with the managers' credentials and vhost.
    pub uri: AMQPUri,
    /// TLS for an `amqps://` [`uri`](Self::uri).
    pub tls: LoadedTls,
    /// This process's name in the lease: unique per process.
    pub holder: String,
    /// How long a lease lasts without renewal: how soon another process takes over from one
    /// that died.
    pub lease: Duration,
    /// Whether messages carry the session ids (else only their fingerprints).
    pub session_ids: bool,
    /// The longest wait between reconnection attempts; waits start at 100 ms and double.
    pub max_backoff: Duration,
}

impl RelayOptions {
    /// The managers' account of `options`, a random holder name, a 15 s lease.
    pub fn from_options(options: &BrokerOptions, session_ids: bool) -> Result<RelayOptions, String> {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| e.to_string())?;
        Ok(RelayOptions {
            uri: options.manager_uri()?,
            tls: options.loaded_tls()?,
            holder: id.iter().map(|b| format!("{b:02x}")).collect(),
            lease: Duration::from_secs(15),
            session_ids,
            max_backoff: Duration::from_secs(5),
        })
    }
}

/// Why forwarding stopped (and starts again after a backoff).
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("broker")]
    Broker(#[from] lapin::Error),
    #[error("store")]
    Store(#[from] StoreError),
    #[error("the broker refused (nacked) an event")]
    Nacked,
    #[error("the broker did not confirm a batch within {CONFIRM_DEADLINE:?}")]
    Unconfirmed,
}

/// How long the broker may take to confirm a batch before the relay connects again: a broker
/// that neither confirms nor closes must not hold the relay (or a shutdown) forever.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(10);

/// Forwards `manager`'s event log to the broker until `shutdown` completes, reconnecting
/// with backoff after the broker or the store fails. Returns at once if the store keeps no
/// event log.
pub async fn relay(manager: SessionManager, options: RelayOptions, shutdown: impl Future<Output = ()>) {
    if manager.event_log().is_none() {
        tracing::warn!("the store keeps no event log: no events are relayed to the broker");
        return;
    }
    let mut shutdown = pin!(shutdown);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let connected = tokio::select! {
            () = &mut shutdown => return,
            connected = connect(&options.uri, &options.tls) => connected,
        };
        match connected {
            Ok((connection, channel)) => {
                backoff = FIRST_BACKOFF;
                // A shutdown is taken between two batches, so a batch the broker has is also
                // marked as forwarded, and the next holder does not send it again.
                let forwarded = forward(&manager, &channel, &options, shutdown.as_mut()).await;
                match forwarded {
                    Ok(()) => {
                        let _ = connection.close(200, "sessanger shutting down".into()).await;
                        return;
                    }
                    Err(error) => tracing::warn!(%error, "relaying events stopped; starting again"),
                }
            }
            Err(error) => tracing::warn!(%error, retry_in = ?backoff, "the event relay cannot reach the broker"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

async fn connect(uri: &AMQPUri, tls: &LoadedTls) -> Result<(Connection, Channel), lapin::Error> {
    let connection = crate::connect::open(uri, tls).await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel.exchange_declare(EVENTS_EXCHANGE.into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
    Ok((connection, channel))
}

/// Holds the lease and forwards batch after batch until `shutdown` completes (taken between
/// two batches, or while waiting) or an error.
async fn forward<S: Future<Output = ()>>(
    manager: &SessionManager,
    channel: &Channel,
    options: &RelayOptions,
    mut shutdown: Pin<&mut S>,
) -> Result<(), RelayError> {
    let log: &dyn EventLog = manager.event_log().expect("checked by relay");
    let mut wake = manager.subscribe();
    let lease = options.lease;
    // The position held and when the lease was last renewed: each advance renews it, so the
    // store is asked again only when a third of the lease passed without one (an idle log).
    let mut held: Option<(Option<EventId>, Instant)> = None;
    loop {
        // Never polled again once complete: the relay returns at once.
        if futures::poll!(shutdown.as_mut()).is_ready() {
            return Ok(());
        }
        let position = match held {
            Some((position, renewed)) if renewed.elapsed() < lease / 3 => position,
            _ => {
                let now = Timestamp::now();
                // Claiming again as the holder renews the lease.
                match log.claim_relay(NAME, &options.holder, now + lease, now).await? {
                    RelayClaim::Held { position } => {
                        held = Some((position, Instant::now()));
                        position
                    }
                    RelayClaim::Busy { .. } => {
                        held = None;
                        tokio::select! {
                            () = shutdown.as_mut() => return Ok(()),
                            () = tokio::time::sleep(lease / 3) => {}
                        }
                        continue;
                    }
                }
            }
        };
        let batch = log.read_events(position, BATCH).await?;
        let Some(last) = batch.last().map(|record| record.id) else {
            tokio::select! {
                () = shutdown.as_mut() => return Ok(()),
                woke = wake.recv() => if let Err(broadcast::error::RecvError::Closed) = woke {
                    tokio::time::sleep(POLL).await;
                },
                () = tokio::time::sleep(POLL.min(lease / 3)) => {}
            }
            continue;
        };
        let mut confirms = Vec::with_capacity(batch.len());
        for record in &batch {
            let body =
                serde_json::to_vec(&EventBody::new(record, options.session_ids)).expect("event bodies serialize");
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_message_id(record.id.to_string().into())
                .with_type(record.event.kind().into())
                .with_timestamp(u64::try_from(record.at.as_millis() / 1000).unwrap_or_default())
                .with_app_id("sessanger".into());
            let routing_key = format!("session.{}", record.event.kind());
            let publish = BasicPublishOptions::default();
            confirms.push(
                channel
                    .basic_publish(EVENTS_EXCHANGE.into(), routing_key.as_str().into(), publish, &body, properties)
                    .await?,
            );
        }
        let confirmed = tokio::time::timeout(CONFIRM_DEADLINE, async {
            for confirm in confirms {
                if let Confirmation::Nack(_) = confirm.await? {
                    return Err(RelayError::Nacked);
                }
            }
            Ok(())
        });
        confirmed.await.map_err(|_| RelayError::Unconfirmed)??;
        let renewed = Instant::now();
        held = if log.advance_relay(NAME, &options.holder, Some(last), Timestamp::now() + lease).await? {
            Some((Some(last), renewed))
        } else {
            tracing::warn!("the event relay lost its lease to another process; waiting to take over again");
            None
        };
    }
}
