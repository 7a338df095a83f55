//! sessanger's RabbitMQ session managers: users log in with their system password
//! (PAM), get a broker user and a vhost of their own, and are split across several managers
//! by the config's `broker.routing_keys` table.
//!
//! Requests are JSON RPC over AMQP in the manager's vhost: a client publishes to
//! [`EXCHANGE`] with the routing key of the manager that serves the user, asks for the answer
//! on RabbitMQ's direct reply-to, and matches it by `correlation_id`.
//! Each request carries a unique `message_id`: a manager answers a request it is given again
//! (RabbitMQ redelivers after a reconnect) from its recent replies instead of running it twice.
//!
//! # Layout
//! - [`routing`]: [`RoutingKey`] and [`Routing`], the one resolver clients and managers share.
//! - [`message`]: the versioned request and reply bodies; one file per request kind
//!   (`decode`, `apply`, `encode`), dispatched by [`Request`].
//! - [`pam`]: password checks through PAM, with failures slowed down per user.
//! - [`broker`]: the RabbitMQ management API: a user's broker account and vhost, created at
//!   login and removed with the last session; `broker setup` of the manager's own account.
//! - [`responder`]: [`serve`] (connect, declare, consume, reconnect) over [`run`] (one channel),
//!   and the [`Responder`] every request is applied to.
//! - `dedup`: the recent replies a manager answers a request delivered twice with.
//! - [`client`]: [`AmqpClient`], the Rust API for programs and the CLI.

pub mod broker;
pub mod client;
mod dedup;
pub mod message;
pub mod pam;
pub mod responder;
pub mod routing;

pub use client::{AmqpClient, ClientError};
pub use message::{ReplyCode, Request};
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

/// The AMQP URI of `config.url` with `login`/`password` and `vhost` put in: the config's
/// `url` is `host:port` (or a URL whose own credentials and vhost are replaced).
pub fn amqp_uri(
    config: &sessanger_core::config::BrokerConfig,
    login: &str,
    password: &str,
    vhost: &str,
) -> Result<lapin::uri::AMQPUri, String> {
    let mut uri: lapin::uri::AMQPUri = config.amqp_url().parse()?;
    uri.authority.userinfo = lapin::uri::AMQPUserInfo { username: login.to_owned(), password: password.to_owned() };
    uri.vhost = vhost.to_owned();
    Ok(uri)
}
