//! `get {session_id}`: reads a session.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::SessionId;

use super::{ReplyError, session_fields};
use crate::Responder;

/// Reads the session. Replies `{session}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Get {
    /// The session to read.
    pub session_id: SessionId,
}

impl Get {
    /// Runs the read on `responder`.
    pub async fn apply(self, responder: &Responder) -> Result<Map<String, Value>, ReplyError> {
        Ok(session_fields(Arc::unwrap_or_clone(responder.served_session(&self.session_id).await?)))
    }
}
