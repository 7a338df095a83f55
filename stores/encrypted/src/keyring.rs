//! [`Keyring`]: the keys values are sealed and opened with, by [`KeyId`].

use std::{borrow::Borrow, collections::BTreeMap, fmt, str::FromStr, sync::Arc};

use base64::Engine;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use zeroize::Zeroizing;

/// The length of every key, in bytes: XChaCha20-Poly1305 takes 256-bit keys.
pub const KEY_LEN: usize = 32;

/// The name of one key, stored beside every value it sealed (`"kid"`), so the value can be
/// opened after the active key changed: 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
///
/// # Examples
/// ```
/// use sessanger_store_encrypted::KeyId;
///
/// let kid: KeyId = "2026-11".parse().unwrap();
/// assert_eq!(kid.as_ref(), "2026-11");
/// ```
///
/// # Validation
/// ```
/// use sessanger_store_encrypted::KeyId;
///
/// assert!("".parse::<KeyId>().is_err());
/// assert!("a:b".parse::<KeyId>().is_err());
/// assert!("k".repeat(65).parse::<KeyId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct KeyId(Arc<str>);

impl FromStr for KeyId {
    type Err = KeyringError;

    fn from_str(s: &str) -> Result<Self, KeyringError> {
        // A small alphabet keeps the id unambiguous in the key ring text (`:` and `,` are its
        // separators) and harmless in the stored value and in logs.
        let valid = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid { Ok(KeyId(s.into())) } else { Err(KeyringError::InvalidKeyId(s.to_owned())) }
    }
}

// Ordering, equality and hashing of a `KeyId` are those of its text, so the ring can be
// searched by the `&str` a stored value names.
impl Borrow<str> for KeyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for KeyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a key ring could not be built. Messages name key ids, never key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A key id is empty, too long, or has characters outside `A-Z a-z 0-9 . _ -`.
    #[error("invalid key id {0:?}: 1 to 64 ASCII letters, digits, `.`, `_` or `-`")]
    InvalidKeyId(String),
    /// An entry of the key ring text is not `key_id:base64_key`.
    #[error("key ring entry {0} is not `key_id:base64_key`")]
    MalformedEntry(usize),
    /// A key is not base64 of exactly 32 bytes.
    #[error("key `{0}` is not the base64 of exactly 32 bytes")]
    InvalidKey(KeyId),
    /// Two keys have the same id.
    #[error("key id `{0}` is listed twice")]
    DuplicateKeyId(KeyId),
    /// The active key id names no key of the ring.
    #[error("the active key `{0}` is not in the key ring")]
    UnknownActiveKey(KeyId),
}

/// The keys of attribute encryption: one **active** key seals new values; every key of the ring
/// opens the values it sealed. Rotation is adding a key and making it active: values sealed
/// with the old key stay readable, and each is sealed again with the new key when next
/// written. Drop an old key only once no stored value names it.
///
/// The key bytes never leave the ring: `Debug` shows key ids only, and each key is wiped from
/// memory when the ring is dropped (the cipher zeroizes its key on drop).
///
/// # Examples
/// ```
/// use sessanger_store_encrypted::Keyring;
///
/// // Two keys, base64 of 32 bytes each (make one with `openssl rand -base64 32`).
/// let spec = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,k2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
/// let ring = Keyring::from_spec(spec, "k2").unwrap();
/// assert_eq!(ring.active().as_ref(), "k2");
/// assert_eq!(format!("{ring:?}"), r#"Keyring { active: "k2", keys: ["k1", "k2"] }"#);
/// ```
///
/// # Validation
/// ```
/// use sessanger_store_encrypted::{Keyring, KeyringError};
///
/// let short = Keyring::from_spec("k1:c2hvcnQ=", "k1").unwrap_err();
/// assert_eq!(short.to_string(), "key `k1` is not the base64 of exactly 32 bytes");
/// let spec = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// assert!(matches!(Keyring::from_spec(spec, "k9"), Err(KeyringError::UnknownActiveKey(_))));
/// ```
#[derive(Clone)]
pub struct Keyring {
    active: KeyId,
    // Ciphers rather than raw keys: a cipher is built once per key, and it wipes its copy of
    // the key when dropped, so no other copy of the bytes outlives construction.
    ciphers: BTreeMap<KeyId, XChaCha20Poly1305>,
}

impl Keyring {
    /// A ring of one key, active.
    pub fn new(id: KeyId, key: &[u8; KEY_LEN]) -> Keyring {
        Keyring { active: id.clone(), ciphers: BTreeMap::from([(id, cipher(key))]) }
    }

    /// Adds a key that opens the values it sealed but seals nothing new, unless made active by
    /// [`Keyring::with_active`].
    pub fn with_key(mut self, id: KeyId, key: &[u8; KEY_LEN]) -> Result<Keyring, KeyringError> {
        if self.ciphers.contains_key(&id) {
            return Err(KeyringError::DuplicateKeyId(id));
        }
        self.ciphers.insert(id, cipher(key));
        Ok(self)
    }

    /// Makes `id`, a key of the ring, the one new values are sealed with.
    pub fn with_active(mut self, id: KeyId) -> Result<Keyring, KeyringError> {
        if !self.ciphers.contains_key(&id) {
            return Err(KeyringError::UnknownActiveKey(id));
        }
        self.active = id;
        Ok(self)
    }

    /// Parses the key ring text of the config (`encryption.keys`): comma-separated
    /// `key_id:base64_key` entries (standard base64, padding optional, spaces around entries
    /// ignored), with `active` naming the key that seals new values.
    pub fn from_spec(spec: &str, active: &str) -> Result<Keyring, KeyringError> {
        let active: KeyId = active.trim().parse()?;
        let mut ciphers = BTreeMap::new();
        for (index, entry) in spec.split(',').map(str::trim).enumerate() {
            let (id, key) = entry.split_once(':').ok_or(KeyringError::MalformedEntry(index + 1))?;
            let id: KeyId = id.trim().parse()?;
            let key = decode_key(key.trim()).ok_or_else(|| KeyringError::InvalidKey(id.clone()))?;
            if ciphers.insert(id.clone(), cipher(&key)).is_some() {
                return Err(KeyringError::DuplicateKeyId(id));
            }
        }
        if !ciphers.contains_key(&active) {
            return Err(KeyringError::UnknownActiveKey(active));
        }
        Ok(Keyring { active, ciphers })
    }

    /// The id of the key new values are sealed with.
    pub fn active(&self) -> &KeyId {
        &self.active
    }

    /// The active key's id and cipher.
    pub(crate) fn active_cipher(&self) -> (&KeyId, &XChaCha20Poly1305) {
        (&self.active, &self.ciphers[&self.active])
    }

    /// The cipher of the key named `id`, if the ring holds it.
    pub(crate) fn cipher(&self, id: &str) -> Option<&XChaCha20Poly1305> {
        self.ciphers.get(id)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active.as_ref())
            .field("keys", &self.ciphers.keys().map(AsRef::<str>::as_ref).collect::<Vec<_>>())
            .finish()
    }
}

fn cipher(key: &[u8; KEY_LEN]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.into())
}

/// The 32 key bytes of `text`, in a buffer wiped on drop; `None` unless it is base64 (padded or
/// not) of exactly 32 bytes.
fn decode_key(text: &str) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let engine = &base64::engine::general_purpose::STANDARD_NO_PAD;
    let decoded = Zeroizing::new(engine.decode(text.trim_end_matches('=')).ok()?);
    let mut key = Zeroizing::new([0; KEY_LEN]);
    key.copy_from_slice(decoded.get(..KEY_LEN).filter(|_| decoded.len() == KEY_LEN)?);
    Some(key)
}
