//! `refresh {session_id}`: renews a session's idle deadline.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::SessionId;

use super::{ReplyError, session_fields};
use crate::Responder;

/// Renews the session's idle deadline (never past its absolute one). Replies `{session}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Refresh {
    /// The session to renew.
    pub session_id: SessionId,
}

impl Refresh {
    /// Runs the refresh on `responder`.
    pub async fn apply(self, responder: &Responder) -> Result<Map<String, Value>, ReplyError> {
        let session = responder.served_session(&self.session_id).await?;
        Ok(session_fields(responder.manager().refresh_session(&session.id).await?))
    }
}
