//! Validated identifiers: no bare strings cross the API.

use std::{fmt, str::FromStr};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not 24 (or, as earlier versions made them, 43) characters of the base64url alphabet.
    #[error("a session id is 24 characters of base64url (A-Z a-z 0-9 - _), or 43 from earlier versions")]
    SessionId,
    /// Empty, longer than [`UserId::MAX_LEN`] bytes, or holding control characters.
    #[error("a user id is 1 to 256 bytes of printable text")]
    UserId,
    /// Not 1 to 64 characters of `a-z 0-9 - _`.
    #[error("a service id is 1 to 64 characters of a-z, 0-9, '-' and '_'")]
    ServiceId,
}

/// A session's id: 24 characters of base64url from the operating system's CSPRNG.
///
/// The first two characters are the user's [shard tag](UserId::shard_tag), the other 132 bits
/// are random: guessing stays hopeless (OWASP asks for at least 64 bits of entropy; a UUID
/// holds 122, tower-sessions' ids 128), and a store can find every key of a session from its
/// id alone and still keep all of a user's sessions together (one Redis Cluster hash slot per
/// user). Every byte of an id is stored several times over (the record's key, the user index,
/// the expiry entry), so it is no longer than safety asks: 24 characters rather than the 43
/// (244 random bits) of earlier versions, whose ids stay valid ([`SessionId::LONG_LEN`]).
///
/// Its `Debug` shows only the [fingerprint](SessionId::fingerprint), never the id.
///
/// # Examples
/// ```
/// use sessanger_core::{SessionId, UserId};
///
/// let alice: UserId = "alice".parse().unwrap();
/// let id = SessionId::generate_for(&alice);
/// assert_eq!(id.as_ref().len(), SessionId::LEN);
/// assert_eq!(id.shard_tag(), alice.shard_tag());
/// assert_eq!(id.regenerate().shard_tag(), alice.shard_tag());
/// let parsed: SessionId = id.to_string().parse().unwrap();
/// assert_eq!(parsed, id);
/// ```
///
/// # Validation
/// ```
/// use sessanger_core::SessionId;
///
/// assert!("too-short".parse::<SessionId>().is_err());
/// assert!("!".repeat(24).parse::<SessionId>().is_err());
/// assert!("A".repeat(43).parse::<SessionId>().is_ok()); // as earlier versions made them
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct SessionId(String);

impl SessionId {
    /// Length of the ids this version makes, in characters.
    pub const LEN: usize = 24;

    /// Length of the ids earlier versions made (and the tower adapter still derives:
    /// `sessanger_tower::session_id_of`), in characters: accepted as well.
    pub const LONG_LEN: usize = 43;

    /// Length of the shard tag at the start of every id.
    pub const TAG_LEN: usize = 2;

    /// A fresh id for a session of `user`.
    pub fn generate_for(user: &UserId) -> Self {
        Self::fresh(Self::LEN, &user.shard_tag())
    }

    /// A fresh id with the same shard tag (for regenerating a session's id).
    #[must_use]
    pub fn regenerate(&self) -> Self {
        Self::fresh(Self::LEN, self.shard_tag())
    }

    /// [`generate_for`](Self::generate_for) making an id of [`LONG_LEN`](Self::LONG_LEN), as
    /// earlier versions did: during a rolling upgrade from them, their nodes read such ids only
    /// (`SessionPolicy::long_ids`).
    pub fn generate_long_for(user: &UserId) -> Self {
        Self::fresh(Self::LONG_LEN, &user.shard_tag())
    }

    /// [`regenerate`](Self::regenerate) making an id of [`LONG_LEN`](Self::LONG_LEN).
    #[must_use]
    pub fn regenerate_long(&self) -> Self {
        Self::fresh(Self::LONG_LEN, self.shard_tag())
    }

    /// A fresh id of no particular user: only for probing ids that name no session.
    pub fn generate() -> Self {
        Self::fresh(Self::LEN, "")
    }

    /// `len` characters of base64url from the CSPRNG, the first ones replaced by `tag`.
    fn fresh(len: usize, tag: &str) -> Self {
        // Every 3 bytes are 4 characters: ⌈len / 4⌉ × 3 bytes give `len` or a few more.
        let mut bytes = [0u8; Self::LONG_LEN.div_ceil(4) * 3];
        let bytes = &mut bytes[..len.div_ceil(4) * 3];
        getrandom::fill(bytes).expect("the operating system's random source must be readable");
        let mut id = URL_SAFE_NO_PAD.encode(bytes);
        id.truncate(len);
        id.replace_range(..tag.len(), tag);
        Self(id)
    }

    /// The user's shard tag this id starts with.
    pub fn shard_tag(&self) -> &str {
        &self.0[..Self::TAG_LEN]
    }

    /// A short, stable, non-reversible fingerprint for logs: the first 16 hex digits of SHA-256.
    ///
    /// Audit logs must not carry live session ids (whoever reads the log could replay them).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.0.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl FromStr for SessionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let valid = matches!(s.len(), Self::LEN | Self::LONG_LEN) && s.bytes().all(|b| BASE64URL[usize::from(b)]);
        if valid { Ok(Self(s.to_owned())) } else { Err(IdError::SessionId) }
    }
}

/// Which bytes are base64url's: every request names a session id, and one table lookup per
/// character costs a third of the three comparisons it replaces (callgrind).
static BASE64URL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// The identifier of a user (sa-token's `login_id`): 1 to 256 bytes, no control characters.
///
/// # Examples
/// ```
/// use sessanger_core::UserId;
///
/// let user: UserId = "alice@example.com".parse().unwrap();
/// assert_eq!(user.as_ref(), "alice@example.com");
/// assert!("".parse::<UserId>().is_err());
/// assert!("a\nb".parse::<UserId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct UserId(String);

impl UserId {
    /// Longest accepted user id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Two base64url characters (12 bits) of the SHA-256 of the user id: 4096 shards, the same
    /// for every session of the user. It reveals nothing usable about the user.
    pub fn shard_tag(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.0.as_bytes());
        URL_SAFE_NO_PAD.encode(&digest[..3])[..SessionId::TAG_LEN].to_owned()
    }
}

impl FromStr for UserId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let valid = !s.is_empty() && s.len() <= Self::MAX_LEN && !s.chars().any(char::is_control);
        if valid { Ok(Self(s.to_owned())) } else { Err(IdError::UserId) }
    }
}

/// The identifier of a registered service: 1 to 64 characters of `a-z 0-9 - _`.
///
/// The alphabet excludes `.` because a service token is `<service id>.<secret>`.
///
/// # Examples
/// ```
/// use sessanger_core::ServiceId;
///
/// let id: ServiceId = "api-gateway".parse().unwrap();
/// assert_eq!(id.to_string(), "api-gateway");
/// assert!("Api.Gateway".parse::<ServiceId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ServiceId(String);

impl FromStr for ServiceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let valid = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid { Ok(Self(s.to_owned())) } else { Err(IdError::ServiceId) }
    }
}

macro_rules! string_newtype {
    ($($ty:ident),*) => {$(
        impl TryFrom<String> for $ty {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }
        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.0
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype!(SessionId, UserId, ServiceId);

/// User and service ids grant nothing on their own, so `Debug` shows them; a [`SessionId`]
/// has its own.
macro_rules! debug_shows_the_id {
    ($($ty:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }
    )*};
}
debug_shows_the_id!(UserId, ServiceId);

/// Only the [fingerprint](SessionId::fingerprint): a `{:?}` in a log line, a panic or an
/// error chain must not hand out a live session id. `Display` and `as_ref` give the id itself,
/// for where it is meant to go (a cookie, a store key, an API reply).
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId(fp:{})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_and_valid() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| SessionId::generate()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids {
            assert_eq!(id.as_ref().parse::<SessionId>().unwrap(), id);
        }
    }

    #[test]
    fn session_id_rejects_wrong_length_and_alphabet() {
        let good = SessionId::generate().to_string();
        let long = "A".repeat(SessionId::LONG_LEN);
        for len in [SessionId::LEN, SessionId::LONG_LEN] {
            let good = if len == SessionId::LEN { &good } else { &long };
            assert!(good.parse::<SessionId>().is_ok());
            assert!(good[..len - 1].parse::<SessionId>().is_err());
            assert!(format!("{good}A").parse::<SessionId>().is_err());
            assert!(format!("{}=", &good[..len - 1]).parse::<SessionId>().is_err());
            assert!(format!("{}+", &good[..len - 1]).parse::<SessionId>().is_err());
        }
        assert!("A".repeat(30).parse::<SessionId>().is_err(), "only the two lengths");
    }

    #[test]
    fn a_generated_id_holds_132_random_bits_after_its_tag() {
        let user: UserId = "alice".parse().unwrap();
        let ids: Vec<SessionId> = (0..256).map(|_| SessionId::generate_for(&user)).collect();
        // No character after the tag is fixed: each takes nearly all 64 values in 256 ids.
        for position in SessionId::TAG_LEN..SessionId::LEN {
            let seen: std::collections::HashSet<u8> = ids.iter().map(|id| id.as_ref().as_bytes()[position]).collect();
            assert!(seen.len() > 48, "position {position}: {} values", seen.len());
        }
    }

    #[test]
    fn a_session_id_takes_exactly_the_base64url_alphabet() {
        let good = SessionId::generate().to_string();
        for b in 0..=u8::MAX {
            let one = format!("{}{}", &good[..SessionId::LEN - 1], char::from(b));
            let base64url = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(one.parse::<SessionId>().is_ok(), base64url, "byte {b}");
        }
    }

    #[test]
    fn json_refuses_invalid_ids() {
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert!(serde_json::from_str::<ServiceId>("\"UPPER\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"bob\"").is_ok());
    }

    #[test]
    fn fingerprint_is_stable_and_hides_the_id() {
        let id = SessionId::generate();
        assert_eq!(id.fingerprint(), id.fingerprint());
        assert_eq!(id.fingerprint().len(), 16);
        assert!(!id.as_ref().contains(&id.fingerprint()));
    }

    #[test]
    fn debug_of_a_session_id_shows_only_its_fingerprint() {
        let id = SessionId::generate();
        let debug = format!("{id:?}");
        assert_eq!(debug, format!("SessionId(fp:{})", id.fingerprint()));
        assert!(!debug.contains(id.as_ref()));
        let tagged = SessionId::generate_for(&"alice".parse().unwrap());
        assert!(!format!("{:?}", Some(&tagged)).contains(tagged.as_ref()));
    }

    #[test]
    fn debug_of_user_and_service_ids_shows_them() {
        assert_eq!(format!("{:?}", "alice".parse::<UserId>().unwrap()), r#"UserId("alice")"#);
        assert_eq!(format!("{:?}", "web".parse::<ServiceId>().unwrap()), r#"ServiceId("web")"#);
    }
}

/// Ids are written as their text, borrowed: `#[serde(into = "String")]` would copy each one
/// into a new `String` first, on every session answered.
macro_rules! serialize_as_text {
    ($($id:ty),*) => {$(
        impl Serialize for $id {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    )*};
}

serialize_as_text!(SessionId, UserId, ServiceId);
