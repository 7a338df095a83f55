//! Connections to the broker: plain for `amqp://`, TLS for `amqps://` with the CAs and client
//! certificate of the broker's TLS options (`broker.tls`), on the binary's one TLS stack.

use lapin::{Connect, Connection, ConnectionProperties, uri::AMQPUri};
use sessanger_tls::LoadedTls;

/// Connects to `uri`; for `amqps://`, trusting `tls`'s CAs (else the system's) and showing its
/// certificate to a broker that asks for one.
///
/// # Errors
/// The broker cannot be reached, refuses the handshake (its certificate, the account).
pub async fn open(uri: &AMQPUri, tls: &LoadedTls) -> Result<Connection, lapin::Error> {
    let config = lapin::tcp::OwnedTLSConfig {
        cert_chain: tls.ca_pem.as_ref().map(|pem| String::from_utf8_lossy(pem).into_owned()),
        identity: tls.identity.as_ref().map(|identity| lapin::tcp::OwnedIdentity::PKCS8 {
            pem: identity.cert_pem.clone(),
            key: identity.key_pem.clone(),
        }),
    };
    uri.clone().connect_with_config(ConnectionProperties::default(), config, lapin::runtime::default_runtime()?).await
}

/// `scheme://host:port` of `uri`, for errors: no account, no vhost.
pub(crate) fn named(uri: &AMQPUri) -> String {
    let scheme = if matches!(uri.scheme, lapin::uri::AMQPScheme::AMQPS) { "amqps" } else { "amqp" };
    format!("{scheme}://{}:{}", uri.authority.host, uri.authority.port)
}
