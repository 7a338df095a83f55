//! What the TLS tests share: the certificates of `scripts/test-ca`, errors as the binary
//! prints them, and HTTP clients on the workspace's one crypto provider.

use std::path::PathBuf;

use sessanger_tls::TlsOptions;

/// Where `scripts/test-ca` keeps the test certificates: `$SESSANGER_TEST_CA_DIR`, else
/// `sessanger-test-ca` in the temporary directory (the script's default).
pub fn test_ca_dir() -> PathBuf {
    std::env::var_os("SESSANGER_TEST_CA_DIR")
        .map_or_else(|| std::env::temp_dir().join("sessanger-test-ca"), PathBuf::from)
}

/// TLS trusting only the CA whose certificate is `file` among the test certificates
/// (`ca.crt`, the test CA; `other-ca.crt`, a CA that signed none of the servers' certificates).
pub fn trusting(file: &str) -> TlsOptions {
    TlsOptions { ca_file: Some(test_ca_dir().join(file)), ..TlsOptions::default() }
}

/// The error and its causes on one line (the tests' messages name the root cause).
pub use sessanger_core::error_chain;

/// A builder of the HTTP clients tests talk to servers with: reqwest is built without a crypto
/// provider of its own, so the process's (ring) is installed first.
pub fn http() -> reqwest::ClientBuilder {
    sessanger_tls::install_crypto_provider();
    reqwest::Client::builder()
}
