//! `get {session_id}`: reads a session.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::SessionId;

use super::{Failure, session_fields};
use crate::Manager;

/// Reads the session. Replies `{session}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Get {
    /// The session to read.
    pub session_id: SessionId,
}

impl Get {
    /// Runs the read on `manager`.
    pub async fn apply(self, manager: &Manager) -> Result<Map<String, Value>, Failure> {
        Ok(session_fields(manager.served_session(&self.session_id).await?))
    }
}
