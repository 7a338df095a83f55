//! `logout {session_id}`: closes one session; the last one takes the broker access with it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::SessionId;

use super::{ReplyError, session_fields};
use crate::Responder;

/// Deletes the session. When it was its user's last, the user's broker connections are
/// closed and its account removed (see
/// [`BrokerOptions::keep_user`](crate::BrokerOptions::keep_user)) before the reply is sent, so
/// a client that got the reply knows the credentials are dead. Replies `{session}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Logout {
    /// The session to close.
    pub session_id: SessionId,
}

impl Logout {
    /// Runs the logout on `responder`.
    pub async fn apply(self, responder: &Responder) -> Result<Map<String, Value>, ReplyError> {
        let session = responder.served_session(&self.session_id).await?;
        let _guard = responder.lock_user(&session.user_id).await;
        let session = responder.manager().delete_session(&session.id).await?;
        responder.end_if_last_locked(&session.user_id).await;
        Ok(session_fields(session))
    }
}
