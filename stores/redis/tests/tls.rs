//! The store over TLS, against the TLS-only servers of `scripts/redis-tls` (started by
//! `scripts/test`): the conformance suite on a standalone server and on a cluster, a server
//! whose certificate another CA signed refused with the host named, a client certificate shown
//! where the server asks for one, and plaintext meeting TLS failing at once, either way round.
//! Fails when the servers are not reachable.

mod common;

use std::time::{Duration, Instant};

use sessanger_store_redis::{ConnectError, ConnectOptions, RedisStore};
use sessanger_testkit::tls::error_chain as chain;
use sessanger_tls::TlsOptions;

mod standalone {
    use super::common;

    sessanger_testkit::store_conformance!(|| common::tls_store(false, true));
    sessanger_testkit::store_events_conformance!(|| common::tls_store(false, true));
}

mod cluster {
    use super::common;

    sessanger_testkit::store_conformance!(|| common::tls_store(true, true));
}

/// What connecting to `url` with `tls` says, and how long it took to say it.
async fn connect(url: &str, tls: TlsOptions) -> (Result<RedisStore, ConnectError>, Duration) {
    let started = Instant::now();
    let options = ConnectOptions { prefix: common::unique_prefix(), tls, ..ConnectOptions::default() };
    (RedisStore::connect_with(url, options).await, started.elapsed())
}

#[tokio::test]
async fn a_server_whose_certificate_another_ca_signed_is_refused_naming_it() {
    let (refused, took) = connect("rediss://127.0.0.1:6391", sessanger_testkit::tls::trusting("ca.crt")).await;
    let message = chain(&refused.expect_err("refused"));
    println!("{message} ({took:?})");
    assert!(message.contains("rediss://127.0.0.1:6391"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // The same server, told to trust any certificate (test benches only), is accepted.
    let insecure = TlsOptions { insecure: true, ..TlsOptions::default() };
    let (accepted, _) = connect("rediss://127.0.0.1:6391", insecure).await;
    accepted.expect("insecure accepts the other CA's certificate");
}

#[tokio::test]
async fn a_server_that_asks_for_a_client_certificate_gets_the_one_configured() {
    let (refused, _) = connect("rediss://127.0.0.1:6392", sessanger_testkit::tls::trusting("ca.crt")).await;
    let message = chain(&refused.expect_err("no client certificate, refused"));
    assert!(message.contains("rediss://127.0.0.1:6392"), "{message}");

    let certificates = sessanger_testkit::tls::test_ca_dir();
    let identity = TlsOptions {
        cert_file: Some(certificates.join("client.crt")),
        key_file: Some(certificates.join("client.key")),
        ..sessanger_testkit::tls::trusting("ca.crt")
    };
    let (store, _) = connect("rediss://127.0.0.1:6392", identity).await;
    sessanger_core::Maintenance::ping(&store.expect("with the client certificate")).await.unwrap();
}

#[tokio::test]
async fn plaintext_meeting_tls_fails_at_once_either_way_round() {
    // Plain Redis protocol to a TLS-only port, and a TLS handshake with a plaintext server:
    // each named, with what it suggests.
    for (url, hint) in [("redis://127.0.0.1:6390", "then rediss://"), ("rediss://127.0.0.1:6379", "then redis://")] {
        let (refused, took) = connect(url, sessanger_testkit::tls::trusting("ca.crt")).await;
        let message = chain(&refused.err().unwrap_or_else(|| panic!("{url} accepted")));
        println!("{url}: {message} ({took:?})");
        assert!(message.contains(url) && message.contains(hint), "{message}");
        assert!(took < Duration::from_secs(10), "{url}: {took:?}");
    }
}

#[tokio::test]
async fn tls_files_that_cannot_be_used_are_named_before_connecting() {
    let missing = TlsOptions { ca_file: Some("/nowhere/ca.crt".into()), ..TlsOptions::default() };
    let (refused, _) = connect(&common::tls_url(), missing).await;
    let error = refused.expect_err("refused");
    assert!(matches!(error, ConnectError::Tls(_)), "{error:?}");
    assert!(chain(&error).contains("/nowhere/ca.crt"), "{}", chain(&error));
}
