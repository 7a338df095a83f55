//! What a web app does with a user: log in, find who is logged in, sign out everywhere.

use sessanger_core::{Device, UserId};
use tower_sessions::{Session, session};

use crate::{DEVICE_KEY, SessangerStore, Upstream, UpstreamError};

/// Why [`SessangerStore::sign_out_everywhere`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignOutError {
    /// The request's session could not be read or cleared.
    #[error(transparent)]
    Session(#[from] session::Error),
    /// sessanger could not delete the user's sessions.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl<U: Upstream> SessangerStore<U> {
    /// Logs `user` in on this request's session: gives the session a fresh id first (the
    /// old one is deleted at once, so an id planted before login is worthless: beego's
    /// `SessionRegenerateId`), then records the user and the device. Data put in the session
    /// before login (a cart, a return URL) is kept, unless the session belonged to another
    /// user: one user's data never passes to the next. The session is stored under the user
    /// when the response is sent.
    pub async fn log_in(&self, session: &Session, user: &UserId, device: Device) -> Result<(), session::Error> {
        if self.current_user(session).await?.is_some_and(|previous| previous != *user) {
            session.clear().await;
        }
        session.cycle_id().await?;
        session.insert(self.user_attribute(), user).await?;
        if device != Device::default() {
            session.insert(DEVICE_KEY, device).await?;
        }
        Ok(())
    }

    /// The user logged in on this request's session, if any.
    pub async fn current_user(&self, session: &Session) -> Result<Option<UserId>, session::Error> {
        let value = session.get_value(self.user_attribute()).await?;
        Ok(value.and_then(|v| v.as_str()?.parse().ok()))
    }

    /// The sessanger id of this request's session, once it is stored: compare it with
    /// [`list_user_sessions`](Self::list_user_sessions) to mark "this device".
    pub fn session_id(&self, session: &Session) -> Option<sessanger_core::SessionId> {
        crate::store::stored_id(session)
    }

    /// Deletes every session of the logged-in user, on every device and in every service,
    /// this one included, and clears this request's session; returns how many were deleted
    /// (0 for an anonymous session).
    pub async fn sign_out_everywhere(&self, session: &Session) -> Result<u64, SignOutError> {
        let deleted = match self.current_user(session).await? {
            Some(user) => self.delete_user_sessions(&user).await?,
            None => 0,
        };
        session.flush().await?;
        Ok(deleted)
    }
}
