//! `EncryptedStore`: attribute encryption at rest, over any sessanger store.
//!
//! A decorator: [`EncryptedStore`] wraps a store and is one itself. The values of the
//! attribute keys it is told to protect ([`Selection`]) are **sealed** with XChaCha20-Poly1305
//! before they reach the inner store, and opened on their way back, so the database (Redis,
//! SQL, files on disk, their backups) only ever holds ciphertext for them. Everything else
//! passes through unchanged: ids, users, deadlines, versions, devices, services.
//!
//! # Layout
//! - `lib.rs`: [`EncryptedStore`] and [`Selection`]; the [`SessionStore`] and
//!   [`ServiceStore`] impls, which seal what goes in and open what comes out.
//! - `keyring.rs`: [`Keyring`] and [`KeyId`]: the keys, which one seals, parsing them from
//!   their text (`k1:<base64>,k2:<base64>`).
//! - `envelope.rs`: the sealed form of one value: sealing, opening, [`OpenError`].
//!
//! # What is sealed and opened where
//! | operation | on the way in | on the way out |
//! |---|---|---|
//! | `create` | the session's attributes | — |
//! | `patch` | the values of `set`; an `incr` of a protected key is refused | the patched session |
//! | `replace` | the new attributes | the replaced session |
//! | `load`, `touch`, `rename`, `delete`, `list_user` | — | every session returned |
//! | `delete_user`, `count_active`, `delete_expired`, `ping`, services | — | — (no attributes) |
//!
//! Sealing is local work, so every operation is still **one call of the inner store**, with the
//! inner store's atomicity: concurrent patches of different keys still never meet, and
//! compare-and-set still compares versions in the inner store. What the decorator cannot keep is
//! `incr`: the inner store adds to a number it can read, and a sealed value is not one. An
//! increment of a protected key is refused, before the inner store is called, with
//! [`Patched::Rejected`]`(`[`PatchError::Encrypted`]`)`; keep counters out of the selection
//! ([`Selection::all_except`]).
//!
//! # Sealed values
//! A sealed value is an ordinary JSON value, stored by the inner store like any other (in Redis the
//! `a:<key>` hash field holds it as JSON text):
//!
//! ```json
//! {"$enc": "v1", "kid": "k2", "n": "<base64 of 24 random bytes>", "c": "<base64 of ciphertext and tag>"}
//! ```
//!
//! - `$enc`: the format version; its presence marks the object as sealed.
//! - `kid`: the [`KeyId`] of the key that sealed it, so rotation needs no rewrite.
//! - `n`: a 192-bit nonce drawn from the OS CSPRNG for every value: random nonces that long
//!   never realistically repeat under one key, so no counter has to be kept across processes.
//! - `c`: the XChaCha20-Poly1305 ciphertext of the value's JSON text, with its 16-byte tag.
//!
//! The associated data binds the ciphertext to the format version, the key id and the
//! **attribute key**: a sealed value copied to another attribute, or given another `kid`,
//! fails to open. It does not bind the **session id**: `rename` moves a session to a new id
//! inside the inner store in one atomic step, with the stored values as they are, and re-sealing
//! them for the new id would take a read and a write around that step (losing concurrent
//! writes, and the one-round-trip budget). The **user id** never changes, but `patch` and
//! `replace` name only the session id, so binding to the user would cost a read before every
//! write. So someone able to write to the database can move a sealed value between sessions
//! under the same attribute key; they cannot read it, alter it, or move it to another key.
//!
//! A value that fails to open (unknown key id, wrong key, tampered nonce, ciphertext or key id,
//! malformed envelope) makes the operation fail with [`StoreError::Decode`], whose source is an
//! [`OpenError`] naming the attribute key and key id, never the session id nor any plaintext.
//!
//! # What stays readable in the database
//! Attribute **keys** (names), and values of unprotected keys. A value of a protected key that
//! is stored in plain (written before encryption was turned on, or by another writer) is
//! returned as it is, so turning encryption on needs no migration; it is sealed when next
//! written. Any value shaped like a sealed value (an object with a `"$enc"` member) is sealed
//! whatever its key, so a client storing such an object gets it back rather than an error: as
//! long as every write goes through the decorator, every sealed value in the database is one
//! this crate wrote. Such values are opened whatever the selection says, so a key dropped from
//! the selection stays readable (and is stored plain when next written).
//!
//! Sizes: a sealed value takes about 4/3 of the value's JSON text plus ~100 bytes; the size
//! limits of [`Limits`](sessanger_core::Limits) apply to the value as the client sent it.
//!
//! # Examples
//! ```
//! use std::sync::Arc;
//! use serde_json::json;
//! use sessanger_core::{Change, Patch, Patched, Session, SessionId, SessionStore, PatchOptions, Timestamp, UserLimit};
//! use sessanger_store_encrypted::{EncryptedStore, Keyring, Selection};
//! use sessanger_store_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = Keyring::from_spec("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "k1")?;
//! let inner = Arc::new(MemoryStore::new());
//! let store = EncryptedStore::new(inner.clone(), keys, Selection::only(["access_token"]));
//!
//! let now = Timestamp::now();
//! let user = "alice".parse()?;
//! let mut session = Session::new(SessionId::generate_for(&user), user, now,
//!                                std::time::Duration::from_secs(600), std::time::Duration::from_secs(3600));
//! session.attributes.insert("access_token".into(), json!("s3cret"));
//! session.attributes.insert("theme".into(), json!("dark"));
//! store.create(&session, UserLimit::Unlimited, now).await?;
//!
//! // Through the decorator: the values as written.
//! let loaded = store.load(&session.id, now).await?.unwrap();
//! assert_eq!(loaded.attributes["access_token"], json!("s3cret"));
//! // In the inner store: the token is sealed, the theme is not.
//! let raw = inner.load(&session.id, now).await?.unwrap();
//! assert_eq!(raw.attributes["access_token"]["kid"], json!("k1"));
//! assert_eq!(raw.attributes["theme"], json!("dark"));
//!
//! // A sealed value cannot be incremented by the inner store: refused, nothing written.
//! let incr = Patch::default().incr("access_token", 1);
//! let refused = store.patch(&session.id, &incr, PatchOptions::new(), Change::at(now)).await?;
//! assert!(matches!(refused, Patched::Rejected(_)));
//! # Ok(()) }
//! ```

mod envelope;
mod keyring;

use std::{borrow::Cow, collections::BTreeSet, fmt, num::NonZeroU32, sync::Arc};

use async_trait::async_trait;
use serde_json::Value;
use sessanger_core::{
    Attributes, CacheStats, Change, Created, DeleteReason, EventLog, Maintenance, Page, Patch, PatchError,
    PatchOptions, Patched, Renamed, Replaced, Replacement, ServiceChanges, ServiceId, ServiceRecord, ServiceStore,
    Session, SessionId, SessionRef, SessionStore, Store, StoreError, Timestamp, UserId, UserLimit,
};

pub use crate::{
    envelope::{OpenError, SealError},
    keyring::{KEY_LEN, KeyId, Keyring, KeyringError},
};

/// Which attribute keys have their values sealed.
///
/// # Examples
/// ```
/// use sessanger_store_encrypted::Selection;
///
/// assert!(Selection::All.covers("anything"));
/// assert!(Selection::only(["access_token"]).covers("access_token"));
/// assert!(!Selection::only(["access_token"]).covers("theme"));
/// assert!(!Selection::all_except(["visits"]).covers("visits"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every attribute.
    All,
    /// Only these keys.
    Only(BTreeSet<String>),
    /// Every attribute but these keys (counters that clients increment, for instance).
    AllExcept(BTreeSet<String>),
}

impl Selection {
    /// Only the given keys.
    pub fn only<K: Into<String>>(keys: impl IntoIterator<Item = K>) -> Selection {
        Selection::Only(keys.into_iter().map(Into::into).collect())
    }

    /// Every key but the given ones.
    pub fn all_except<K: Into<String>>(keys: impl IntoIterator<Item = K>) -> Selection {
        Selection::AllExcept(keys.into_iter().map(Into::into).collect())
    }

    /// Whether values of `key` are sealed.
    pub fn covers(&self, key: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Only(keys) => keys.contains(key),
            Selection::AllExcept(keys) => !keys.contains(key),
        }
    }
}

/// A store that seals the values of selected attribute keys before they reach `inner`, and
/// opens them on the way back (see the crate docs). It is a [`Store`] whenever `inner` is,
/// including `dyn Store`, the store the binary picks at run time.
pub struct EncryptedStore<S: ?Sized = dyn Store> {
    inner: Arc<S>,
    keyring: Keyring,
    selection: Selection,
}

impl<S: ?Sized + fmt::Debug> fmt::Debug for EncryptedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("inner", &self.inner)
            .field("keyring", &self.keyring)
            .field("selection", &self.selection)
            .finish()
    }
}

impl<S: ?Sized> EncryptedStore<S> {
    /// Seals the values of `selection`'s keys stored in `inner` with `keyring`'s active key.
    pub fn new(inner: Arc<S>, keyring: Keyring, selection: Selection) -> Self {
        EncryptedStore { inner, keyring, selection }
    }

    /// The wrapped store, which holds sealed values.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The key ring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Which keys are sealed.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// `attributes` as the inner store must hold them: values of selected keys, and values that
    /// look sealed, replaced by sealed values. Borrowed when there is nothing to seal.
    fn seal<'a>(&self, attributes: &'a Attributes) -> Result<Cow<'a, Attributes>, StoreError> {
        let must_seal = |(key, value): (&String, &Value)| self.selection.covers(key) || envelope::is_sealed(value);
        if !attributes.iter().any(must_seal) {
            return Ok(Cow::Borrowed(attributes));
        }
        let sealed = attributes
            .iter()
            .map(|entry @ (key, value)| {
                let stored = if must_seal(entry) {
                    envelope::seal(&self.keyring, key, value).map_err(|e| StoreError::Encode(e.into()))?
                } else {
                    value.clone()
                };
                Ok((key.clone(), stored))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Cow::Owned(sealed))
    }

    /// `session` as the client sees it: every sealed value opened.
    fn open(&self, mut session: Session) -> Result<Session, StoreError> {
        for (key, value) in session.attributes.iter_mut().filter(|(_, value)| envelope::is_sealed(value)) {
            *value = envelope::open(&self.keyring, key, value).map_err(|e| StoreError::Decode(e.into()))?;
        }
        Ok(session)
    }

    fn open_all(&self, sessions: Vec<Session>) -> Result<Vec<Session>, StoreError> {
        sessions.into_iter().map(|session| self.open(session)).collect()
    }

    fn open_some(&self, session: Option<Session>) -> Result<Option<Session>, StoreError> {
        session.map(|session| self.open(session)).transpose()
    }
}

#[async_trait]
impl<S: SessionStore + ?Sized> SessionStore for EncryptedStore<S> {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        match self.seal(&session.attributes)? {
            Cow::Borrowed(_) => self.inner.create(session, limit, now).await,
            Cow::Owned(attributes) => {
                let sealed = Session { attributes, ..session.clone() };
                self.inner.create(&sealed, limit, now).await
            }
        }
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.open_some(self.inner.load(id, now).await?)
    }

    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.open_some(self.inner.touch(id, now).await?)
    }

    async fn refresh(&self, id: &SessionId, change: Change<'_>) -> Result<Option<Session>, StoreError> {
        self.open_some(self.inner.refresh(id, change).await?)
    }

    /// Refuses an increment of a selected key at once, even of an unknown session: no stored
    /// value could make it apply, as with a patch that fails validation.
    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError> {
        if let Some(key) = patch.incr.keys().find(|key| self.selection.covers(key)) {
            return Ok(Patched::Rejected(PatchError::Encrypted(key.clone())));
        }
        let outcome = match self.seal(&patch.set)? {
            Cow::Borrowed(_) => self.inner.patch(id, patch, options, change).await?,
            Cow::Owned(set) => {
                let sealed = Patch { set, remove: patch.remove.clone(), incr: patch.incr.clone() };
                self.inner.patch(id, &sealed, options, change).await?
            }
        };
        Ok(match outcome {
            Patched::Applied(session) => Patched::Applied(self.open(session)?),
            other => other,
        })
    }

    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError> {
        let sealed = self.seal(new.attributes)?;
        Ok(match self.inner.replace(id, Replacement { attributes: &sealed, ..new }, change).await? {
            Replaced::Applied(session) => Replaced::Applied(self.open(session)?),
            other => other,
        })
    }

    async fn rename(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        Ok(match self.inner.rename(old, new, change).await? {
            Renamed::Renamed(session) => Renamed::Renamed(self.open(session)?),
            other => other,
        })
    }

    async fn delete(
        &self,
        id: &SessionId,
        reason: DeleteReason,
        change: Change<'_>,
    ) -> Result<Option<Session>, StoreError> {
        self.open_some(self.inner.delete(id, reason, change).await?)
    }

    async fn find_users(&self, prefix: &str, limit: NonZeroU32, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        self.inner.find_users(prefix, limit, now).await
    }

    async fn list_user(&self, user: &UserId, page: &Page, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        self.open_all(self.inner.list_user(user, page, now).await?)
    }

    async fn scan(
        &self,
        after: Option<&SessionId>,
        limit: NonZeroU32,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        self.open_all(self.inner.scan(after, limit, now).await?)
    }

    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError> {
        self.inner.delete_user(user, change).await
    }
}

#[async_trait]
impl<S: Maintenance + ?Sized> Maintenance for EncryptedStore<S> {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.count_active(now).await
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        self.inner.delete_expired(now, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    /// The inner store's: events name attribute keys, never values, so nothing in them is
    /// sealed.
    fn event_log(&self) -> Option<&dyn EventLog> {
        self.inner.event_log()
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        self.inner.cache_stats()
    }
}

/// Services hold no attributes: every call goes straight to the inner store.
#[async_trait]
impl<S: ServiceStore + ?Sized> ServiceStore for EncryptedStore<S> {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        self.inner.create_service(service).await
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        self.inner.load_service(id).await
    }

    async fn load_service_shared(&self, id: &ServiceId) -> Result<Option<Arc<ServiceRecord>>, StoreError> {
        self.inner.load_service_shared(id).await
    }

    async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        self.inner.list_services(after, limit).await
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        self.inner.update_service(service).await
    }

    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        self.inner.delete_service(id).await
    }

    fn caches_services(&self) -> bool {
        self.inner.caches_services()
    }

    async fn watch_service_changes(&self) -> Result<Option<ServiceChanges>, StoreError> {
        self.inner.watch_service_changes().await
    }
}

#[cfg(test)]
mod tests;
