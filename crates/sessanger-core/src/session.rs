//! The session record and the changes a store applies to it.

use std::{num::NonZeroU32, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ServiceId, SessionId, Timestamp, UserId};

/// A session's attributes: string keys to JSON values.
pub type Attributes = Map<String, Value>;

/// A session's version: starts at 1 and grows by one with every write, so a client can
/// compare-and-set (`If-Match`) without holding a lock.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(pub u64);

impl Version {
    /// The version of a freshly created session.
    pub const FIRST: Version = Version(1);

    /// The version after one more write.
    #[must_use]
    pub fn next(self) -> Version {
        Version(self.0 + 1)
    }

    /// The version after `writes` more writes.
    #[must_use]
    pub fn advanced(self, writes: NonZeroU32) -> Version {
        Version(self.0 + u64::from(writes.get()))
    }
}

/// Where a session was opened from. Every field is optional and free text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    /// The client's own device identifier (back-session's `device_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The client's IP address as the calling service saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl Device {
    /// Takes every field `changes` has; keeps the others.
    ///
    /// # Examples
    /// ```
    /// use sessanger_core::Device;
    ///
    /// let mut device = Device { ip: Some("10.0.0.1".into()), ..Device::default() };
    /// device.merge(&Device { device_id: Some("phone".into()), ..Device::default() });
    /// assert_eq!((device.device_id.as_deref(), device.ip.as_deref()), (Some("phone"), Some("10.0.0.1")));
    /// ```
    pub fn merge(&mut self, changes: &Device) {
        for (field, change) in [
            (&mut self.device_id, &changes.device_id),
            (&mut self.ip, &changes.ip),
            (&mut self.user_agent, &changes.user_agent),
        ] {
            if change.is_some() {
                field.clone_from(change);
            }
        }
    }
}

/// One session of one user.
///
/// A session dies at `expires_at`, which is the earlier of its idle deadline
/// (`last_access_at + idle_ttl`, pushed forward by every refresh) and its absolute deadline
/// (`absolute_expires_at`, which nothing extends).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The session's id.
    pub id: SessionId,
    /// The user the session belongs to.
    pub user_id: UserId,
    /// Where the session was opened from.
    #[serde(default)]
    pub device: Device,
    /// The service that created the session, if it was created by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<ServiceId>,
    /// When the session was created.
    pub created_at: Timestamp,
    /// When the session was last refreshed (or created).
    pub last_access_at: Timestamp,
    /// How long the session lives without a refresh.
    #[serde(with = "duration_ms")]
    pub idle_ttl: Duration,
    /// The deadline no refresh extends.
    pub absolute_expires_at: Timestamp,
    /// When the session dies unless refreshed first.
    pub expires_at: Timestamp,
    /// The session's data.
    #[serde(default)]
    pub attributes: Attributes,
    /// Grows with every write.
    pub version: Version,
}

impl Session {
    /// A new session created at `now`, living `idle_ttl` without a refresh and never past
    /// `now + max_lifetime`.
    pub fn new(id: SessionId, user_id: UserId, now: Timestamp, idle_ttl: Duration, max_lifetime: Duration) -> Self {
        let absolute_expires_at = now + max_lifetime;
        Session {
            id,
            user_id,
            device: Device::default(),
            created_by: None,
            created_at: now,
            last_access_at: now,
            idle_ttl,
            absolute_expires_at,
            expires_at: (now + idle_ttl).min(absolute_expires_at),
            attributes: Attributes::new(),
            version: Version::FIRST,
        }
    }

    /// Whether the session is dead at `now`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use sessanger_core::{Session, SessionId, Timestamp};
    ///
    /// let t0 = Timestamp::from_millis(0);
    /// let s = Session::new(SessionId::generate_for(&"bob".parse().unwrap()), "bob".parse().unwrap(), t0,
    ///                      Duration::from_secs(60), Duration::from_secs(3600));
    /// assert!(!s.is_expired(t0 + Duration::from_secs(59)));
    /// assert!(s.is_expired(t0 + Duration::from_secs(60)));
    /// ```
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// Whether a read at `now` should renew the idle deadline, renewing no more often than once
    /// per `threshold_percent` of the idle TTL (0: at every read).
    pub fn renewal_due(&self, now: Timestamp, threshold_percent: u8) -> bool {
        // `now.saturating_since(t)` is how long after `t` now is.
        let since_renewal = now.saturating_since(self.last_access_at);
        since_renewal.as_millis() * 100 >= self.idle_ttl.as_millis() * u128::from(threshold_percent)
    }

    /// Renews the idle deadline from `now`, never past the absolute deadline.
    pub fn touch(&mut self, now: Timestamp) {
        self.last_access_at = now;
        self.expires_at = (now + self.idle_ttl).min(self.absolute_expires_at);
    }

    /// Moves the absolute deadline to `at`, earlier or later; the session then dies at the
    /// earlier of its idle deadline (`last_access_at + idle_ttl`) and `at`.
    pub fn set_absolute_expires_at(&mut self, at: Timestamp) {
        self.absolute_expires_at = at;
        self.expires_at = (self.last_access_at + self.idle_ttl).min(at);
    }

    /// Applies `patch` to the attributes and counts a write; on error nothing changes.
    ///
    /// With a `cap`, a patch that sets or increments anything is refused if the attributes
    /// would then break it ([`SessionCap::check`]); a patch that only removes keys never is,
    /// so a session stored before a lower cap can always shrink.
    ///
    /// Stores that read, change and write a record inside one transaction (memory, embedded,
    /// SQL) call this so every store applies a patch the same way.
    pub fn apply(&mut self, patch: &Patch, cap: Option<SessionCap>) -> Result<(), PatchError> {
        let mut increments = Vec::with_capacity(patch.incr.len());
        for (key, by) in &patch.incr {
            let not_an_integer = || PatchError::NotAnInteger(key.clone());
            let by = by.as_i64().ok_or_else(not_an_integer)?;
            let current = match self.attributes.get(key) {
                None => 0,
                Some(v) => v.as_i64().ok_or_else(not_an_integer)?,
            };
            let sum = current.checked_add(by).ok_or_else(not_an_integer)?;
            increments.push((key, sum));
        }
        let checked = cap.filter(|_| patch.adds());
        // Only a checked patch can be refused after it is applied: it works on a copy.
        let mut copy = checked.map(|_| self.attributes.clone());
        let attributes = copy.as_mut().unwrap_or(&mut self.attributes);
        for key in &patch.remove {
            attributes.remove(key);
        }
        for (key, value) in &patch.set {
            attributes.insert(key.clone(), value.clone());
        }
        for (key, sum) in increments {
            attributes.insert(key.clone(), Value::from(sum));
        }
        if let (Some(cap), Some(next)) = (checked, copy) {
            cap.check(&next)?;
            self.attributes = next;
        }
        self.version = self.version.next();
        Ok(())
    }
}

/// How large a session's attributes may grow, checked in the same atomic step as every write
/// that adds to them, so concurrent writers cannot pass it together.
///
/// The size is that of the attributes as one compact JSON object ([`encoded_size`]); a store
/// that keeps ciphertext (encryption at rest) counts the ciphertext it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCap {
    /// Most attributes one session may hold.
    pub max_attributes: usize,
    /// Largest [`encoded_size`] of a session's attributes, in bytes.
    pub max_bytes: usize,
}

impl SessionCap {
    /// Whether `attributes` fit.
    ///
    /// # Errors
    /// [`PatchError::TooManyAttributes`] or [`PatchError::SessionTooLarge`].
    ///
    /// # Examples
    /// ```
    /// use serde_json::json;
    /// use sessanger_core::{Attributes, PatchError, SessionCap};
    ///
    /// let cap = SessionCap { max_attributes: 2, max_bytes: 16 };
    /// let mut attributes = Attributes::new();
    /// attributes.insert("a".into(), json!("01234567")); // {"a":"01234567"}: 16 bytes
    /// assert_eq!(cap.check(&attributes), Ok(()));
    /// attributes.insert("a".into(), json!("012345678"));
    /// assert_eq!(cap.check(&attributes), Err(PatchError::SessionTooLarge(16)));
    /// ```
    pub fn check(&self, attributes: &Attributes) -> Result<(), PatchError> {
        if attributes.len() > self.max_attributes {
            return Err(PatchError::TooManyAttributes(self.max_attributes));
        }
        if encoded_size(attributes) > self.max_bytes {
            return Err(PatchError::SessionTooLarge(self.max_bytes));
        }
        Ok(())
    }
}

/// The size of `attributes` as one compact JSON object, in bytes (what
/// `serde_json::to_vec(attributes)` would hold), counted without building it.
pub fn encoded_size(attributes: &Attributes) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a map of JSON values into a counter cannot fail.
    serde_json::to_writer(&mut count, attributes).map_or(usize::MAX, |()| count.0)
}

/// A change to some attributes of a session, applied atomically: keys it does not name are
/// never touched, so concurrent patches of different keys never lose each other's writes.
///
/// A key appears in at most one of `set`, `remove` and `incr` (see [`Patch::validate`]).
///
/// # Examples
/// ```
/// use serde_json::json;
/// use sessanger_core::Patch;
///
/// let patch = Patch::default().set("theme", json!("dark")).remove("cart").incr("visits", 1);
/// assert!(patch.validate(&Default::default()).is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// Keys to set, with their new values.
    #[serde(default)]
    pub set: Attributes,
    /// Keys to remove; absent keys are ignored.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Integer attributes to add to; an absent key counts from 0.
    #[serde(default)]
    pub incr: Map<String, Value>,
}

impl Patch {
    /// Adds a key to set.
    #[must_use]
    pub fn set(mut self, key: impl Into<String>, value: Value) -> Self {
        self.set.insert(key.into(), value);
        self
    }

    /// Adds a key to remove.
    #[must_use]
    pub fn remove(mut self, key: impl Into<String>) -> Self {
        self.remove.push(key.into());
        self
    }

    /// Adds an increment.
    #[must_use]
    pub fn incr(mut self, key: impl Into<String>, by: i64) -> Self {
        self.incr.insert(key.into(), Value::from(by));
        self
    }

    /// Whether the patch sets or increments anything: only such a patch can grow a session.
    pub fn adds(&self) -> bool {
        !self.set.is_empty() || !self.incr.is_empty()
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.incr.is_empty()
    }

    /// Every key the patch names.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.set.keys().chain(self.incr.keys()).chain(self.remove.iter()).map(String::as_str)
    }

    /// Checks sizes and shape before any store sees the patch.
    pub fn validate(&self, limits: &Limits) -> Result<(), PatchError> {
        let count = self.set.len() + self.remove.len() + self.incr.len();
        if count > limits.max_keys_per_patch {
            return Err(PatchError::TooManyKeys(limits.max_keys_per_patch));
        }
        let mut seen = std::collections::HashSet::with_capacity(count);
        for key in self.keys() {
            limits.check_key(key)?;
            if !seen.insert(key) {
                return Err(PatchError::DuplicateKey(key.to_owned()));
            }
        }
        limits.check_values(&self.set)?;
        match self.incr.iter().find(|(_, by)| by.as_i64().is_none()) {
            Some((key, _)) => Err(PatchError::NotAnInteger(key.clone())),
            None => Ok(()),
        }
    }
}

/// Size limits on what a client may store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest attribute key, in bytes.
    pub max_key_len: usize,
    /// Largest attribute value, in bytes of JSON.
    pub max_value_bytes: usize,
    /// Most keys one patch may name.
    pub max_keys_per_patch: usize,
    /// How large one session may grow.
    pub session: SessionCap,
}

impl Limits {
    /// Checks a whole set of attributes, as a new or replaced session would hold them.
    pub fn check_attributes(&self, attributes: &Attributes) -> Result<(), PatchError> {
        attributes.keys().try_for_each(|key| self.check_key(key))?;
        self.check_values(attributes)?;
        self.session.check(attributes)
    }

    fn check_key(&self, key: &str) -> Result<(), PatchError> {
        if key.is_empty() || key.len() > self.max_key_len || key.chars().any(char::is_control) {
            return Err(PatchError::InvalidKey(key.to_owned()));
        }
        Ok(())
    }

    fn check_values(&self, attributes: &Attributes) -> Result<(), PatchError> {
        for (key, value) in attributes {
            if serde_json::to_vec(value).map_or(usize::MAX, |v| v.len()) > self.max_value_bytes {
                return Err(PatchError::ValueTooLarge(key.clone(), self.max_value_bytes));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: 256,
            max_value_bytes: 64 * 1024,
            max_keys_per_patch: 256,
            // Half the largest request body (1 MiB): a whole session always fits in one `PUT`.
            session: SessionCap { max_attributes: 1000, max_bytes: 512 * 1024 },
        }
    }
}

/// Why a patch was refused; the session is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// An increment hit a value that is not an integer, or would overflow.
    #[error("attribute `{0}` is not an integer (or the increment overflows)")]
    NotAnInteger(String),
    /// A key is empty, too long or holds control characters.
    #[error("invalid attribute key `{0}`")]
    InvalidKey(String),
    /// A key is named twice.
    #[error("attribute `{0}` is named more than once in one patch")]
    DuplicateKey(String),
    /// A value is over the size limit.
    #[error("attribute `{0}` is larger than {1} bytes")]
    ValueTooLarge(String, usize),
    /// The patch names too many keys.
    #[error("a patch may name at most {0} keys")]
    TooManyKeys(usize),
    /// The session would hold more attributes than its cap allows.
    #[error("a session may hold at most {0} attributes")]
    TooManyAttributes(usize),
    /// The session's attributes would be larger than its cap allows.
    #[error("a session's attributes may take at most {0} bytes as JSON")]
    SessionTooLarge(usize),
    /// An increment names an attribute that is encrypted at rest: the store only holds its
    /// ciphertext, so it cannot add to it in one atomic step. Set the whole value instead.
    #[error("attribute `{0}` is encrypted at rest and cannot be incremented; set its value instead")]
    Encrypted(String),
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn session() -> Session {
        Session::new(
            SessionId::generate(),
            "u".parse().unwrap(),
            Timestamp::from_millis(0),
            Duration::from_secs(10),
            Duration::from_secs(25),
        )
    }

    #[test]
    fn touch_never_passes_the_absolute_deadline() {
        let mut s = session();
        s.touch(Timestamp::from_millis(9_000));
        assert_eq!(s.expires_at, Timestamp::from_millis(19_000));
        s.touch(Timestamp::from_millis(20_000));
        assert_eq!(s.expires_at, Timestamp::from_millis(25_000));
    }

    #[test]
    fn failed_patch_changes_nothing() {
        let mut s = session();
        s.attributes.insert("name".into(), json!("x"));
        let before = s.clone();
        let err = s.apply(&Patch::default().set("a", json!(1)).incr("name", 1), None).unwrap_err();
        assert_eq!(err, PatchError::NotAnInteger("name".into()));
        assert_eq!(s, before);
    }

    #[test]
    fn a_patch_over_the_cap_changes_nothing_and_a_removal_always_applies() {
        let cap = SessionCap { max_attributes: 2, max_bytes: 24 };
        let mut s = session();
        s.apply(&Patch::default().set("a", json!("0123456789")), Some(cap)).unwrap();
        let before = s.clone();
        let too_large = Patch::default().set("b", json!("0123456789"));
        assert_eq!(s.apply(&too_large, Some(cap)), Err(PatchError::SessionTooLarge(24)));
        let too_many = Patch::default().set("b", json!(1)).incr("c", 1);
        assert_eq!(s.apply(&too_many, Some(cap)), Err(PatchError::TooManyAttributes(2)));
        assert_eq!(s, before);
        s.apply(&too_large, None).unwrap();
        let tighter = SessionCap { max_attributes: 1, max_bytes: 1 };
        s.apply(&Patch::default().remove("a"), Some(tighter)).expect("a removal always applies");
        assert_eq!(encoded_size(&s.attributes), serde_json::to_vec(&s.attributes).unwrap().len());
    }

    #[test]
    fn validate_rejects_duplicates_and_oversized_values() {
        let limits = Limits { max_value_bytes: 8, ..Limits::default() };
        assert!(matches!(
            Patch::default().set("a", json!(1)).remove("a").validate(&limits),
            Err(PatchError::DuplicateKey(_))
        ));
        assert!(matches!(
            Patch::default().set("a", json!("0123456789")).validate(&limits),
            Err(PatchError::ValueTooLarge(..))
        ));
        let mut float = Patch::default();
        float.incr.insert("n".into(), json!(1.5));
        assert!(matches!(float.validate(&limits), Err(PatchError::NotAnInteger(_))));
    }

    #[test]
    fn session_round_trips_through_json() {
        let mut s = session();
        s.attributes.insert("k".into(), json!({"deep": [1, 2]}));
        let back: Session = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
