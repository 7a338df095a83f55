//! `refresh {session_id}`: renews a session's idle deadline.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::SessionId;

use super::{Failure, session_fields};
use crate::Manager;

/// Renews the session's idle deadline (never past its absolute one). Replies `{session}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Refresh {
    /// The session to renew.
    pub session_id: SessionId,
}

impl Refresh {
    /// Runs the refresh on `manager`.
    pub async fn apply(self, manager: &Manager) -> Result<Map<String, Value>, Failure> {
        let session = manager.served_session(&self.session_id).await?;
        Ok(session_fields(manager.sessions().refresh_session(&session.id).await?))
    }
}
