//! [`Upstream`]: where a [`SessangerStore`](crate::SessangerStore) keeps its sessions: a
//! [`SessionManager`] in this process, or a sessanger server reached through a
//! [`sessanger_client::Client`]. The store's logic is written once, over the operations of
//! the sealed [`Ops`](sealed::Ops) trait; each upstream only translates them.

use std::time::Duration;

use async_trait::async_trait;
use sessanger_client::{Client, ClientError, ErrorCode};
use sessanger_core::{
    Attributes, Device, ManagerError, NewSession, Page, Replacement, Session, SessionId, SessionManager, StoreError,
    Timestamp, UserId, Version,
    wire::{CreateSession, ReplaceSession, SessionBody},
};

/// The upstream of a [`SessangerStore`](crate::SessangerStore): where it keeps its sessions.
/// Implemented by [`SessionManager`] (in process, any sessanger store) and [`Client`] (a
/// remote sessanger over its `/v1` API); sealed, so no other type can be one.
pub trait Upstream: sealed::Ops {}

impl Upstream for SessionManager {}
impl Upstream for Client {}

/// Why an upstream operation failed: the in-process manager's error, or the remote server's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The in-process [`SessionManager`] failed.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// The remote sessanger answered with an error, or could not be reached.
    #[error(transparent)]
    Remote(#[from] ClientError),
}

/// The class of an [`UpstreamError`], as the store's logic tells its cases apart: the same
/// for either upstream, so the tower-sessions contract is kept once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpstreamErrorKind {
    /// No live session has the id.
    NotFound,
    /// A live session already has the id a create chose.
    IdTaken,
    /// The session changed since the version a replace expected.
    VersionMismatch,
    /// The user holds the most sessions allowed.
    LimitReached,
    /// The deadline a write asked for had passed when it arrived.
    DeadlinePassed,
    /// The data breaks a size or shape limit: the record cannot be encoded.
    Encode,
    /// The stored session cannot be decoded.
    Decode,
    /// Anything else: the upstream is unreachable or broken.
    Other,
}

impl UpstreamError {
    /// Which case of the contract this error is.
    pub(crate) fn kind(&self) -> UpstreamErrorKind {
        match self {
            UpstreamError::Manager(e) => match e {
                ManagerError::NotFound => UpstreamErrorKind::NotFound,
                ManagerError::IdTaken => UpstreamErrorKind::IdTaken,
                ManagerError::VersionMismatch { .. } => UpstreamErrorKind::VersionMismatch,
                ManagerError::LimitReached => UpstreamErrorKind::LimitReached,
                ManagerError::DeadlinePassed => UpstreamErrorKind::DeadlinePassed,
                ManagerError::InvalidPatch(_) => UpstreamErrorKind::Encode,
                ManagerError::Store(StoreError::Decode(_)) => UpstreamErrorKind::Decode,
                _ => UpstreamErrorKind::Other,
            },
            UpstreamError::Remote(e) => match e.code() {
                // A 404 of another kind (`not_found`: no such route) means the base URL is
                // wrong, which must not pass for "every session is gone".
                Some(ErrorCode::SessionNotFound | ErrorCode::InvalidSessionId) => UpstreamErrorKind::NotFound,
                Some(ErrorCode::SessionIdTaken) => UpstreamErrorKind::IdTaken,
                Some(ErrorCode::VersionMismatch) => UpstreamErrorKind::VersionMismatch,
                Some(ErrorCode::TooManySessions) => UpstreamErrorKind::LimitReached,
                Some(ErrorCode::DeadlinePassed) => UpstreamErrorKind::DeadlinePassed,
                Some(
                    ErrorCode::InvalidPatch
                    | ErrorCode::NotAnInteger
                    | ErrorCode::EncryptedAttribute
                    | ErrorCode::PayloadTooLarge
                    | ErrorCode::SessionTooLarge,
                ) => UpstreamErrorKind::Encode,
                _ => match e {
                    ClientError::Transport(t) if t.is_decode() => UpstreamErrorKind::Decode,
                    _ => UpstreamErrorKind::Other,
                },
            },
        }
    }
}

pub(crate) mod sealed {
    use super::*;

    /// The operations a [`SessangerStore`](crate::SessangerStore) performs, each one request
    /// (or one manager call).
    #[async_trait]
    pub trait Ops: Clone + std::fmt::Debug + Send + Sync + 'static {
        /// Creates a session under `id`, never overwriting a live one.
        async fn create_with_id(&self, id: &SessionId, user: &UserId, new: NewSession) -> Result<(), UpstreamError>;
        /// The live session, without renewing it.
        async fn get(&self, id: &SessionId) -> Result<Session, UpstreamError>;
        /// Replaces attributes and device if the session is still at `version`, and moves its
        /// absolute deadline to `deadline`.
        async fn replace(
            &self,
            id: &SessionId,
            attributes: &Attributes,
            device: &Device,
            version: Version,
            deadline: Timestamp,
        ) -> Result<(), UpstreamError>;
        /// Renews the idle deadline and returns the session.
        async fn refresh(&self, id: &SessionId) -> Result<Session, UpstreamError>;
        /// Deletes the session.
        async fn delete(&self, id: &SessionId) -> Result<(), UpstreamError>;
        /// One page of the user's live sessions, oldest first.
        async fn list_user(&self, user: &UserId, page: &Page) -> Result<Vec<Session>, UpstreamError>;
        /// Deletes every session of the user; how many were live.
        async fn delete_user(&self, user: &UserId) -> Result<u64, UpstreamError>;
    }
}

#[async_trait]
impl sealed::Ops for SessionManager {
    async fn create_with_id(&self, id: &SessionId, user: &UserId, new: NewSession) -> Result<(), UpstreamError> {
        self.create_session_with_id(id, user, new).await?;
        Ok(())
    }

    async fn get(&self, id: &SessionId) -> Result<Session, UpstreamError> {
        Ok(std::sync::Arc::unwrap_or_clone(self.get_session(id).await?))
    }

    async fn replace(
        &self,
        id: &SessionId,
        attributes: &Attributes,
        device: &Device,
        version: Version,
        deadline: Timestamp,
    ) -> Result<(), UpstreamError> {
        let new = Replacement::new(attributes, device, version).with_absolute_expires_at(Some(deadline));
        self.replace_session(id, new).await?;
        Ok(())
    }

    async fn refresh(&self, id: &SessionId) -> Result<Session, UpstreamError> {
        Ok(self.refresh_session(id).await?)
    }

    async fn delete(&self, id: &SessionId) -> Result<(), UpstreamError> {
        self.delete_session(id).await?;
        Ok(())
    }

    async fn list_user(&self, user: &UserId, page: &Page) -> Result<Vec<Session>, UpstreamError> {
        Ok(self.list_user_sessions(user, page).await?)
    }

    async fn delete_user(&self, user: &UserId) -> Result<u64, UpstreamError> {
        Ok(self.delete_user_sessions(user).await?)
    }
}

#[async_trait]
impl sealed::Ops for Client {
    async fn create_with_id(&self, id: &SessionId, user: &UserId, new: NewSession) -> Result<(), UpstreamError> {
        let body = CreateSession {
            session_id: Some(id.clone()),
            user_id: user.clone(),
            device_id: new.device.device_id,
            ip: new.device.ip,
            user_agent: new.device.user_agent,
            attributes: new.attributes,
            ttl_secs: new.ttl.map(whole_seconds),
            absolute_expires_at: new.absolute_expires_at,
        };
        self.create_session(&body).await?;
        Ok(())
    }

    async fn get(&self, id: &SessionId) -> Result<Session, UpstreamError> {
        Ok(session_of(self.get_session(id).await?))
    }

    async fn replace(
        &self,
        id: &SessionId,
        attributes: &Attributes,
        device: &Device,
        version: Version,
        deadline: Timestamp,
    ) -> Result<(), UpstreamError> {
        let body = ReplaceSession {
            attributes: attributes.clone(),
            device: device.clone(),
            absolute_expires_at: Some(deadline),
        };
        self.replace_session(id, &body, version).await?;
        Ok(())
    }

    async fn refresh(&self, id: &SessionId) -> Result<Session, UpstreamError> {
        Ok(session_of(self.refresh_session(id).await?))
    }

    async fn delete(&self, id: &SessionId) -> Result<(), UpstreamError> {
        Ok(self.delete_session(id).await?)
    }

    async fn list_user(&self, user: &UserId, page: &Page) -> Result<Vec<Session>, UpstreamError> {
        Ok(self.list_user_sessions(user, page).await?.sessions.into_iter().map(session_of).collect())
    }

    async fn delete_user(&self, user: &UserId) -> Result<u64, UpstreamError> {
        Ok(self.delete_user_sessions(user).await?)
    }
}

/// The API counts idle lifetimes in whole seconds: a part of a second rounds up, so a
/// session never dies before the record's expiry.
fn whole_seconds(ttl: Duration) -> u64 {
    (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1)
}

/// A session as the API shows it, as the core type (the idle TTL in whole seconds).
fn session_of(body: SessionBody) -> Session {
    Session {
        id: body.session_id,
        user_id: body.user_id,
        device: body.device,
        created_by: body.created_by,
        created_at: body.created_at,
        last_access_at: body.last_access_at,
        idle_ttl: Duration::from_secs(body.idle_ttl_secs),
        absolute_expires_at: body.absolute_expires_at,
        expires_at: body.expires_at,
        attributes: body.attributes,
        version: body.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_of_a_second_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn remote_error_codes_map_to_the_same_kinds_as_the_managers() {
        let api = |status: u16, code: &str| {
            UpstreamError::Remote(ClientError::Api {
                status,
                code: serde_json::from_value(code.into()).unwrap(),
                message: String::new(),
            })
        };
        assert_eq!(api(404, "session_not_found").kind(), UpstreamErrorKind::NotFound);
        assert_eq!(api(404, "not_found").kind(), UpstreamErrorKind::Other);
        assert_eq!(api(409, "session_id_taken").kind(), UpstreamErrorKind::IdTaken);
        assert_eq!(api(409, "too_many_sessions").kind(), UpstreamErrorKind::LimitReached);
        assert_eq!(api(412, "version_mismatch").kind(), UpstreamErrorKind::VersionMismatch);
        assert_eq!(api(422, "invalid_patch").kind(), UpstreamErrorKind::Encode);
        assert_eq!(UpstreamError::Manager(ManagerError::IdTaken).kind(), UpstreamErrorKind::IdTaken);
        assert_eq!(UpstreamError::Manager(ManagerError::NotFound).kind(), UpstreamErrorKind::NotFound);
    }
}
