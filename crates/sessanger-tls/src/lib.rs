//! TLS to the stores and brokers sessanger connects to: one stack for the whole binary (rustls,
//! on the ring crypto provider), and one set of options, [`TlsOptions`], that every store and
//! broker reads the same way.
//!
//! Managed Redis, PostgreSQL, MySQL and RabbitMQ services take TLS only. A client verifies the
//! server's certificate against the system's trusted CAs, or against the CAs of
//! [`TlsOptions::ca_file`] (a private CA, or a test's); it shows a certificate of its own when
//! given one ([`TlsOptions::cert_file`] and [`TlsOptions::key_file`]); and
//! [`TlsOptions::insecure`] turns verification off, loudly, for a test bench.
//!
//! The files are read once, when a store connects ([`TlsOptions::load`]): a missing file, or
//! one that holds no certificate or no key, is told then, naming the file, rather than at the
//! first handshake.
//!
//! # Examples
//! ```
//! use sessanger_tls::TlsOptions;
//!
//! // The system's CAs, no client certificate: what a managed service needs.
//! let loaded = TlsOptions::default().load().unwrap();
//! assert!(loaded.ca_pem.is_none() && loaded.identity.is_none() && !loaded.insecure);
//!
//! // A file that is not there is named.
//! let options = TlsOptions { ca_file: Some("/nowhere/ca.crt".into()), ..TlsOptions::default() };
//! assert!(options.load().unwrap_err().to_string().contains("/nowhere/ca.crt"));
//! ```

use std::{
    fs,
    path::{Path, PathBuf},
};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// How to reach a server over TLS. Used only where the URL asks for TLS (`rediss://`,
/// `amqps://`, `sslmode=require`…); the default trusts the system's CAs and shows no
/// certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of the CAs to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// A PEM file of the certificate (and chain) to show a server that asks for one; with
    /// [`key_file`](Self::key_file).
    pub cert_file: Option<PathBuf>,
    /// The PEM file of [`cert_file`](Self::cert_file)'s private key.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate, for any name: no protection against whoever sits on the
    /// network. For test benches only; connecting so logs a warning.
    pub insecure: bool,
}

/// [`TlsOptions`] with their files read and checked: PEM text, as the clients take it. The
/// default is the default options': the system's CAs, no certificate.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LoadedTls {
    /// The CAs to trust, if not the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// The certificate to show and its key.
    pub identity: Option<Identity>,
    /// Whether any server certificate is accepted.
    pub insecure: bool,
}

impl std::fmt::Debug for LoadedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("identity", &self.identity.is_some())
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// A client certificate and its private key, in PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The certificate and its chain.
    pub cert_pem: Vec<u8>,
    /// The private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Identity").field("cert_pem", &self.cert_pem.len()).finish_non_exhaustive()
    }
}

/// Why [`TlsOptions::load`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key.
    #[error("{path} holds no PEM private key")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A certificate without a key, or a key without a certificate.
    #[error("a client certificate needs both cert_file and key_file")]
    HalfIdentity,
}

impl TlsOptions {
    /// Reads and checks the files the options name, and makes ring the process's crypto
    /// provider if none is yet ([`install_crypto_provider`]): what a client is built from next.
    ///
    /// # Errors
    /// A file cannot be read or does not hold what it should; a certificate without its key.
    pub fn load(&self) -> Result<LoadedTls, TlsError> {
        install_crypto_provider();
        if self.insecure {
            tracing::warn!("TLS without verifying the server's certificate (tls.insecure): for test benches only");
        }
        let ca_pem = self.ca_file.as_deref().map(certificates).transpose()?;
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(Identity { cert_pem: certificates(cert)?, key_pem: private_key(key)? }),
            (None, None) => None,
            _ => return Err(TlsError::HalfIdentity),
        };
        Ok(LoadedTls { ca_pem, identity, insecure: self.insecure })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

/// The text of a PEM file holding at least one certificate.
fn certificates(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(path)?;
    let parsed: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
    if parsed.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(pem)
}

/// The text of a PEM file holding a private key.
fn private_key(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(path)?;
    if PrivateKeyDer::from_pem_slice(&pem).is_err() {
        return Err(TlsError::NoKey { path: path.to_owned() });
    }
    Ok(pem)
}

/// Makes ring the process's crypto provider, once: every TLS client of the binary (redis-rs,
/// the SQL driver, the AMQP client, the MongoDB driver) then builds its configuration on it.
/// Called before the first connection; later calls do nothing.
pub fn install_crypto_provider() {
    // Err: one is installed already (by an earlier call), which is the one wanted.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIBeDCCAR+gAwIBAgIUchOzBGhVggodPbf2dgXkJ7KgoBEwCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHdGVzdCBjYTAeFw0yNjEyMDcwOTQyMDJaFw0zNjEyMDQwOTQy
MDJaMBIxEDAOBgNVBAMMB3Rlc3QgY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AASRjBZEXCAUVbTqnL1myHWtsr3eAlep2Hj8yONiCfCbBOgR3c2FG9HRoMoYnkbe
kJZvLJQZzOkxXVWy2/hh9c6do1MwUTAdBgNVHQ4EFgQUsopgloQnU6uVrkLjZEpW
oTwYi8gwHwYDVR0jBBgwFoAUsopgloQnU6uVrkLjZEpWoTwYi8gwDwYDVR0TAQH/
BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAoV27JGFctCgSuzWX8pLXAxJyhQQoQ
oe3CxZq7pmRcDQIgB4XiFrOUn55btoClhf2WNkn7ntoYfhmB4bgrvYxzg7w=
-----END CERTIFICATE-----
";

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn each_file_must_hold_what_it_is_for() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, junk) = (file(&dir, "ca.crt", CERTIFICATE), file(&dir, "junk.pem", "not a certificate"));
        let loaded = TlsOptions { ca_file: Some(cert.clone()), ..TlsOptions::default() }.load().unwrap();
        assert_eq!(loaded.ca_pem.as_deref(), Some(CERTIFICATE.as_bytes()));

        let error = TlsOptions { ca_file: Some(junk.clone()), ..TlsOptions::default() }.load().unwrap_err();
        assert!(matches!(&error, TlsError::NoCertificate { path } if *path == junk), "{error}");
        let keyless =
            TlsOptions { cert_file: Some(cert.clone()), key_file: Some(junk.clone()), ..TlsOptions::default() };
        assert!(matches!(keyless.load().unwrap_err(), TlsError::NoKey { path } if path == junk));
        let half = TlsOptions { cert_file: Some(cert), ..TlsOptions::default() };
        assert!(matches!(half.load().unwrap_err(), TlsError::HalfIdentity));
    }
}
