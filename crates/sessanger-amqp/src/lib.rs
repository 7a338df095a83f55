//! sessanger's RabbitMQ session managers: users log in with their system password
//! (PAM), get a broker user and a vhost of their own, and are split across several managers
//! by a routing table ([`BrokerOptions::routing_keys`]).
//!
//! Requests are JSON RPC over AMQP in the manager's vhost: a client publishes to
//! [`EXCHANGE`] with the routing key of the manager that serves the user, asks for the answer
//! on RabbitMQ's direct reply-to, and matches it by `correlation_id`.
//! Each request carries a unique `message_id`: a manager answers a request it is given again
//! (RabbitMQ redelivers after a reconnect) from its recent replies instead of running it twice.
//!
//! # Accounts
//! Clients connect with an account of their own ([`BrokerOptions::client`]), never the
//! managers' administrator account: it may publish to [`EXCHANGE`] and do nothing else
//! ([`broker::Rights::client`]). A request is authorized by what it carries (the user's
//! password, a session id) and by its `user_id` property, which RabbitMQ checks against the
//! connection's account: only the managers' own account and [`BrokerOptions::admins`] act on
//! a user's sessions without its password ([`responder::Caller`]).
//!
//! # Layout
//! - `options`: [`BrokerOptions`], the broker and how sessanger uses it, as plain values.
//! - [`routing`]: [`RoutingKey`] and [`Routing`], the one resolver clients and managers share.
//! - [`message`]: the versioned request and reply bodies; one file per request kind
//!   (`decode`, `apply`, `encode`), dispatched by [`Request`].
//! - [`pam`]: password checks through PAM, with failures slowed down per user.
//! - [`broker`]: the RabbitMQ management API: a user's broker account and vhost, created at
//!   login and removed with the last session; `broker setup` of the managers' and the
//!   clients' accounts.
//! - [`responder`]: [`serve`] (connect, declare, consume, reconnect) over [`run`] (one channel),
//!   and the [`Responder`] every request is applied to.
//! - `dedup`: the recent replies a manager answers a request delivered twice with.
//! - [`relay`]: the store's event log forwarded to the exchange [`relay::EVENTS_EXCHANGE`],
//!   one process at a time, at least once.
//! - [`client`]: [`AmqpClient`], the Rust API for programs and the CLI.

pub mod broker;
pub mod client;
pub mod connect;
mod dedup;
pub mod message;
mod options;
pub mod pam;
pub mod relay;
pub mod responder;
pub mod routing;

pub use client::{AmqpClient, ClientError};
pub use message::{ReplyCode, Request};
pub use options::{Account, BrokerOptions};
pub use responder::{Responder, ServeOptions, run, serve};
pub use routing::{Routing, RoutingKey};

/// The exchange requests are published to (direct, durable), in the manager's vhost.
pub const EXCHANGE: &str = "sessanger.requests";

/// RabbitMQ's direct reply-to pseudo-queue: replies go straight back to the requesting
/// channel, with no reply queue to declare or clean up.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The durable queue a manager consumes: one per routing key.
pub fn queue_name(key: &RoutingKey) -> String {
    format!("sessanger.{key}")
}
