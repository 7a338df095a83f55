//! The sealed form of one attribute value (see the crate's `# Sealed values`).

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use serde_json::{Map, Value};

use crate::keyring::Keyring;

/// The member that marks an object as a sealed value, and the format version it holds.
pub(crate) const MARKER: &str = "$enc";
const VERSION: &str = "v1";

/// The nonce length of XChaCha20-Poly1305: 192 bits, long enough to draw at random for every
/// value without a realistic chance of a repeat under one key.
const NONCE_LEN: usize = 24;

/// Why a stored value could not be opened. Each names the attribute key, never its session
/// (session ids are credentials, and errors are logged).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The value is marked as sealed but is not a sealed value of any version this crate writes.
    #[error("attribute `{attribute}` holds a malformed sealed value: {why}")]
    Malformed {
        /// The attribute key.
        attribute: String,
        /// What is wrong.
        why: String,
    },
    /// The value was sealed with a key the key ring no longer holds.
    #[error("attribute `{attribute}` was sealed with key `{key_id}`, which is not in the key ring")]
    UnknownKey {
        /// The attribute key.
        attribute: String,
        /// The key id stored with the value.
        key_id: String,
    },
    /// Authentication failed: the key is wrong, or the ciphertext, nonce or key id was changed,
    /// or the value was moved from another attribute key. No plaintext is returned.
    #[error("attribute `{attribute}` failed authentication with key `{key_id}` (wrong key or tampered value)")]
    Forged {
        /// The attribute key.
        attribute: String,
        /// The key id stored with the value.
        key_id: String,
    },
}

/// Why a value could not be sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The operating system's random number generator failed.
    // getrandom's error implements `std::error::Error` only with its `std` feature; its
    // Display says what failed.
    #[error("the OS random number generator failed: {0}")]
    Random(getrandom::Error),
    /// The cipher refused the value (only a value of gigabytes can be refused).
    #[error("attribute `{0}` could not be encrypted")]
    Cipher(String),
}

/// Whether `value` has the shape of a sealed value: an object with a `"$enc"` member.
pub(crate) fn is_sealed(value: &Value) -> bool {
    value.as_object().is_some_and(|object| object.contains_key(MARKER))
}

/// The associated data of a value sealed under `key_id` for `attribute`: the ciphertext opens
/// only under that key id and attribute key. The key id cannot hold a NUL byte, so the
/// concatenation is unambiguous.
fn associated_data(key_id: &str, attribute: &str) -> Vec<u8> {
    [b"sessanger attribute ", VERSION.as_bytes(), b"\0", key_id.as_bytes(), b"\0", attribute.as_bytes()].concat()
}

/// Seals `value` of `attribute` with the ring's active key and a fresh random nonce.
pub(crate) fn seal(ring: &Keyring, attribute: &str, value: &Value) -> Result<Value, SealError> {
    let (key_id, cipher) = ring.active_cipher();
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(SealError::Random)?;
    let plaintext = serde_json::to_vec(value).expect("a JSON value always serializes");
    let aad = associated_data(key_id.as_ref(), attribute);
    let ciphertext = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: &plaintext, aad: &aad })
        .map_err(|_| SealError::Cipher(attribute.to_owned()))?;
    let sealed = Map::from_iter([
        (MARKER.to_owned(), Value::from(VERSION)),
        ("kid".to_owned(), Value::from(key_id.as_ref())),
        ("n".to_owned(), Value::from(BASE64.encode(nonce))),
        ("c".to_owned(), Value::from(BASE64.encode(ciphertext))),
    ]);
    Ok(Value::Object(sealed))
}

/// Opens a sealed value of `attribute` (see [`is_sealed`]) with the key it names.
pub(crate) fn open(ring: &Keyring, attribute: &str, sealed: &Value) -> Result<Value, OpenError> {
    let malformed = |why: &str| OpenError::Malformed { attribute: attribute.to_owned(), why: why.to_owned() };
    let member = |name: &str| sealed.get(name).and_then(Value::as_str);
    match member(MARKER) {
        Some(VERSION) => {}
        _ => return Err(malformed("unknown format version (this version reads \"v1\")")),
    }
    if sealed.as_object().is_some_and(|object| object.len() != 4) {
        return Err(malformed("expected exactly the members `$enc`, `kid`, `n` and `c`"));
    }
    let key_id = member("kid").ok_or_else(|| malformed("no key id (`kid`)"))?;
    let nonce = member("n").and_then(|n| BASE64.decode(n).ok()).ok_or_else(|| malformed("no base64 nonce (`n`)"))?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| malformed("the nonce is not 24 bytes"))?;
    let ciphertext =
        member("c").and_then(|c| BASE64.decode(c).ok()).ok_or_else(|| malformed("no base64 ciphertext (`c`)"))?;
    let cipher: &XChaCha20Poly1305 = ring
        .cipher(key_id)
        .ok_or_else(|| OpenError::UnknownKey { attribute: attribute.to_owned(), key_id: key_id.to_owned() })?;
    let aad = associated_data(key_id, attribute);
    let plaintext = cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: &ciphertext, aad: &aad })
        .map_err(|_| OpenError::Forged { attribute: attribute.to_owned(), key_id: key_id.to_owned() })?;
    // Authentic, so written by this crate: only a bug could make it anything but JSON.
    serde_json::from_slice(&plaintext).map_err(|_| malformed("the plaintext is not JSON"))
}
