//! [`SessangerStore`]: tower-sessions' [`SessionStore`] over a sessanger [`SessionManager`].

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use serde_json::Value;
use sessanger_client::Client;
use sessanger_core::{
    Attributes, Device, NewSession, Page, Session, SessionId, SessionManager, Timestamp, UserId, error_chain,
};
use time::OffsetDateTime;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store::{Error, Result},
};

use crate::{Upstream, UpstreamError, ids, upstream::UpstreamErrorKind};

/// The data key [`SessangerStore::log_in`] keeps the session's [`Device`] under; the store
/// moves it to sessanger's own device field, so `/v1` and device lists show it.
pub const DEVICE_KEY: &str = "sessanger.device";

/// How often a write is retried when another request changed the session in between.
const SAVE_ATTEMPTS: usize = 5;

/// How often `create` mints a fresh id before it calls the store broken.
const CREATE_ATTEMPTS: usize = 3;

/// A tower-sessions store keeping its sessions in sessanger, where they are also indexed by
/// user: [`list_user_sessions`](Self::list_user_sessions) shows a user's devices,
/// [`sign_out_everywhere`](Self::sign_out_everywhere) revokes them, and every other service
/// sees them through `/v1`.
///
/// # Two modes
/// - In process, `SessangerStore<SessionManager>` (the default type), from
///   [`new`](SessangerStore::new): sessions live in any sessanger store this process opens
///   (embedded, Redis, SQL, …), through a [`SessionManager`], which
///   [`manager`](SessangerStore::manager) gives back for everything else sessanger offers.
/// - Remote, `SessangerStore<Client>`, from [`remote`](SessangerStore::remote): sessions live
///   in a sessanger server, reached through `sessanger-client` with a service token that has
///   the `read` and `write` permissions. Several app instances share sessions this way.
///
/// Both behave the same, with one difference: the `/v1` API counts a session's idle window
/// in whole seconds, so in remote mode an idle window may last up to a second longer (the
/// record's deadline itself is kept to the millisecond). Either way a session created here is an ordinary sessanger session: the manager
/// announces it (`SessionEvent::Created`, evictions at a per-user limit) and audits it.
///
/// # The contract, as tower-sessions states it
/// - `create` never overwrites: it always assigns a fresh id (see [`session_id_of`](crate::session_id_of)
///   for how it is made) and retries on the rare collision, which sessanger detects
///   atomically (`ManagerError::IdTaken`, or 409 `session_id_taken` remotely).
/// - `load` of an unknown, deleted or expired id is `Ok(None)`. Every load renews the
///   session's idle deadline (sliding expiry), so a session stays alive while it is used even
///   when the cookie lasts only as long as the browser and tower-sessions never saves it.
/// - `save` replaces the session's data and moves its deadline to the record's `expiry_date`
///   in the same write (compare-and-set by version, retried, so the last writer wins as with
///   tower-sessions' own stores). Saving a session that was deleted
///   meanwhile (logout elsewhere, "sign out everywhere", expiry) writes nothing: a request in
///   flight must not bring a revoked session back.
/// - `delete` of an absent session is `Ok(())`.
///
/// # Users
/// The data attribute named by [`with_user_attribute`](Self::with_user_attribute) (default
/// `user_id`, a JSON string) is the session's sessanger user. A session without it belongs to
/// an anonymous user of its own (see [`ANONYMOUS_PREFIX`](crate::ANONYMOUS_PREFIX)). A session
/// never changes user under the same id: log in with [`log_in`](Self::log_in), which cycles the
/// id (the session-fixation defence) so the session is created anew under the real user;
/// `save` refuses a record whose user changed without a new id.
///
/// # Expiry
/// The record's `expiry_date` is the session's deadline on the server, to the millisecond:
/// `create` sets it and every `save` moves it, earlier or later, in the same write as the
/// data — never past sessanger's absolute lifetime (`SessionPolicy::max_lifetime`, counted
/// from the creation). Between saves, a `load` renews the session's idle deadline by its idle
/// window (the time from creation to the first `expiry_date`, capped by
/// [`with_idle_ttl`](Self::with_idle_ttl), beego's `maxLifetime`) but never past the deadline
/// last saved; the policy's own idle TTL does not apply, the record says what it wants. So:
/// - `Expiry::AtDateTime(t)` ends the session at `t` exactly; no load extends it, and
///   `Session::set_expiry` with another `t` moves it at the next save.
/// - `Expiry::OnInactivity(d)` gives the session `d` more at each save; a load alone keeps it
///   no longer than the last save plus `d`. tower-sessions saves a session when it changed,
///   or on every request with `with_always_save(true)`: set that for a session that lives
///   while it is only read, as with tower-sessions' own stores.
/// - `Expiry::OnSessionEnd` (the default) saves a deadline two weeks out, so the idle window
///   (capped by [`with_idle_ttl`](Self::with_idle_ttl)) decides.
///
/// A record that has expired already is not stored at all (or, on `save`, is deleted): it
/// gets an id that names no session, so it loads as `None`. A user at a
/// `UserLimit::Refuse` limit cannot open another session: `create` fails with `Error::Backend`.
///
/// # Examples
/// ```
/// use std::{sync::Arc, time::Duration};
/// use sessanger_client::Client;
/// use sessanger_core::{SessionManager, SessionPolicy};
/// use sessanger_store_memory::MemoryStore;
/// use sessanger_tower::SessangerStore;
///
/// // In process:
/// let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
/// let store = SessangerStore::new(manager).with_user_attribute("account").with_idle_ttl(Duration::from_secs(1800));
/// assert_eq!(store.user_attribute(), "account");
///
/// // Against `sessanger serve`, as the service `web` (`sessanger service add web --permissions read,write`):
/// let client = Client::new("http://127.0.0.1:8090", "web.secret")?;
/// let remote = SessangerStore::remote(client).with_idle_ttl(Duration::from_secs(1800));
/// assert_eq!(remote.upstream().base_url(), "http://127.0.0.1:8090");
/// # Ok::<(), sessanger_client::ClientError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SessangerStore<U: Upstream = SessionManager> {
    upstream: U,
    user_attribute: Arc<str>,
    idle_ttl: Option<Duration>,
}

impl SessangerStore<SessionManager> {
    /// A store over `manager`'s sessions, in this process, with the user in the `user_id`
    /// attribute.
    pub fn new(manager: SessionManager) -> Self {
        Self::over(manager)
    }

    /// The manager underneath, for everything else sessanger offers (events, the reaper, …).
    pub fn manager(&self) -> &SessionManager {
        &self.upstream
    }
}

impl SessangerStore<Client> {
    /// A store over the sessions of a remote sessanger, with the user in the `user_id`
    /// attribute. The client's service token needs the `read` and `write` permissions; the
    /// server reaps expired sessions itself.
    pub fn remote(client: Client) -> Self {
        Self::over(client)
    }
}

impl<U: Upstream> SessangerStore<U> {
    fn over(upstream: U) -> Self {
        SessangerStore { upstream, user_attribute: Arc::from("user_id"), idle_ttl: None }
    }

    /// Reads the session's user from another data attribute.
    #[must_use]
    pub fn with_user_attribute(mut self, name: impl Into<String>) -> Self {
        self.user_attribute = Arc::from(name.into());
        self
    }

    /// Caps how long a session lives on the server without a request, whatever the cookie's
    /// lifetime (beego's `maxLifetime`; a browser-session cookie otherwise means two weeks).
    #[must_use]
    pub fn with_idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = Some(ttl);
        self
    }

    /// The data attribute holding the session's user.
    pub fn user_attribute(&self) -> &str {
        &self.user_attribute
    }

    /// Where the sessions are kept: the [`SessionManager`] or the [`Client`].
    pub fn upstream(&self) -> &U {
        &self.upstream
    }

    /// One page of the user's live sessions across every device and service, oldest first;
    /// [`Page::next`] says where the next starts.
    pub async fn list_user_sessions(
        &self,
        user: &UserId,
        page: &Page,
    ) -> std::result::Result<Vec<Session>, UpstreamError> {
        self.upstream.list_user(user, page).await
    }

    /// Deletes every session of the user ("sign out everywhere"); returns how many were live.
    /// Each one fails on its next request, whichever app or device holds it.
    pub async fn delete_user_sessions(&self, user: &UserId) -> std::result::Result<u64, UpstreamError> {
        self.upstream.delete_user(user).await
    }

    fn user_of(&self, data: &HashMap<String, Value>) -> Result<Option<UserId>> {
        let Some(value) = data.get(&*self.user_attribute) else { return Ok(None) };
        let encode = |why: &str| Error::Encode(format!("session attribute `{}` {why}", self.user_attribute));
        let user: UserId = value
            .as_str()
            .ok_or_else(|| encode("is not a string"))?
            .parse()
            .map_err(|_| encode("is not a valid user id (1 to 256 bytes of printable text)"))?;
        if ids::is_anonymous(&user) {
            return Err(encode(&format!("starts with the reserved prefix `{}`", crate::ANONYMOUS_PREFIX)));
        }
        Ok(Some(user))
    }

    /// The record's data split into sessanger attributes and device. Size limits are
    /// sessanger's to check (the manager's policy, or the server's).
    fn split(&self, data: &HashMap<String, Value>) -> Result<(Attributes, Device)> {
        let mut attributes: Attributes = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let device = match attributes.remove(DEVICE_KEY) {
            Some(value) => serde_json::from_value(value).map_err(|e| Error::Encode(format!("`{DEVICE_KEY}`: {e}")))?,
            None => Device::default(),
        };
        Ok((attributes, device))
    }

    fn record(&self, id: Id, session: Session) -> Result<Record> {
        let mut data: HashMap<String, Value> = session.attributes.into_iter().collect();
        // sessanger's user is the truth: a service that rewrote the attribute through `/v1`
        // cannot make the web app believe in another user than the index holds.
        if ids::is_anonymous(&session.user_id) {
            data.remove(&*self.user_attribute);
        } else {
            data.insert(self.user_attribute.to_string(), Value::from(String::from(session.user_id)));
        }
        if session.device != Device::default() {
            let device = serde_json::to_value(&session.device).map_err(|e| Error::Decode(e.to_string()))?;
            data.insert(DEVICE_KEY.to_owned(), device);
        }
        let nanos = i128::from(session.expires_at.as_millis()) * 1_000_000;
        let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Record { id, data, expiry_date })
    }

    /// The idle lifetime of a new session: the time left to the record's expiry, capped;
    /// `None` if the record has expired already.
    fn ttl_for(&self, expiry_date: OffsetDateTime) -> Option<Duration> {
        let left = Duration::try_from(expiry_date - OffsetDateTime::now_utc()).ok().filter(|d| !d.is_zero())?;
        Some(self.idle_ttl.map_or(left, |cap| left.min(cap)))
    }
}

/// A record's expiry as a sessanger deadline, to the millisecond.
fn deadline(expiry_date: OffsetDateTime) -> Timestamp {
    let millis = expiry_date.unix_timestamp_nanos() / 1_000_000;
    Timestamp::from_millis(i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX }))
}

#[async_trait]
impl<U: Upstream> SessionStore for SessangerStore<U> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let user = self.user_of(&record.data)?.unwrap_or_else(ids::anonymous_user);
        let (attributes, device) = self.split(&record.data)?;
        for _ in 0..CREATE_ATTEMPTS {
            let id = ids::generate_for(&user);
            let Some(ttl) = self.ttl_for(record.expiry_date) else {
                // Dead on arrival: nothing to store, and a fresh id loads as `None`, as
                // tower-sessions' own stores load an expired record.
                record.id = id;
                return Ok(());
            };
            let new = NewSession {
                device: device.clone(),
                attributes: attributes.clone(),
                ttl: Some(ttl),
                absolute_expires_at: Some(deadline(record.expiry_date)),
            };
            match self.upstream.create_with_id(&ids::session_id_of(&id), &user, new).await {
                Ok(()) => {
                    record.id = id;
                    return Ok(());
                }
                Err(e) => match e.kind() {
                    UpstreamErrorKind::IdTaken => continue,
                    // Expired on the way (the check above is a few microseconds older).
                    UpstreamErrorKind::DeadlinePassed => {
                        record.id = id;
                        return Ok(());
                    }
                    UpstreamErrorKind::LimitReached => {
                        return Err(Error::Backend(format!("user `{user}` already holds the most sessions allowed")));
                    }
                    _ => return Err(store_error(&e)),
                },
            }
        }
        Err(Error::Backend("three fresh session ids collided: the sessanger store's create is broken".into()))
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let id = ids::session_id_of(&record.id);
        let wanted = self.user_of(&record.data)?;
        let (attributes, device) = self.split(&record.data)?;
        let until = deadline(record.expiry_date);
        for _ in 0..SAVE_ATTEMPTS {
            let current = match self.upstream.get(&id).await {
                Ok(session) => session,
                Err(e) if e.kind() == UpstreamErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(store_error(&e)),
            };
            check_same_user(&current, wanted.as_ref())?;
            match self.upstream.replace(&id, &attributes, &device, current.version, until).await {
                Ok(()) => return Ok(()),
                Err(e) => match e.kind() {
                    UpstreamErrorKind::NotFound => return Ok(()),
                    // The record expired before it was saved: as tower-sessions' own stores
                    // would, it is gone (and loads as `None`).
                    UpstreamErrorKind::DeadlinePassed => return self.delete(&record.id).await,
                    UpstreamErrorKind::VersionMismatch => continue,
                    _ => return Err(store_error(&e)),
                },
            }
        }
        Err(Error::Backend(format!("session changed {SAVE_ATTEMPTS} times while being saved")))
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        match self.upstream.refresh(&ids::session_id_of(id)).await {
            Ok(session) => self.record(*id, session).map(Some),
            Err(e) if e.kind() == UpstreamErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_error(&e)),
        }
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        match self.upstream.delete(&ids::session_id_of(id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == UpstreamErrorKind::NotFound => Ok(()),
            Err(e) => Err(store_error(&e)),
        }
    }
}

/// A session's user is fixed for the life of its id: moving it to another user in place
/// would keep a pre-login id alive after login, which is session fixation.
fn check_same_user(current: &Session, wanted: Option<&UserId>) -> Result<()> {
    let same = match wanted {
        Some(user) => *user == current.user_id,
        None => ids::is_anonymous(&current.user_id),
    };
    if same {
        Ok(())
    } else {
        Err(Error::Backend(
            "the session's user changed without a new id: log in with SessangerStore::log_in \
             (or call Session::cycle_id) and log out with Session::flush"
                .into(),
        ))
    }
}

/// tower-sessions' errors hold strings only, so the whole cause chain goes into the message.
fn store_error(error: &UpstreamError) -> Error {
    match error.kind() {
        UpstreamErrorKind::Encode => Error::Encode(error_chain(error)),
        UpstreamErrorKind::Decode => Error::Decode(error_chain(error)),
        _ => Error::Backend(error_chain(error)),
    }
}

/// The sessanger id of a session as tower-sessions sees it, if it has been stored.
pub(crate) fn stored_id(session: &tower_sessions::Session) -> Option<SessionId> {
    session.id().map(|id| ids::session_id_of(&id))
}
