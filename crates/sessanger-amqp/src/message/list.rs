//! `list {user}`: a user's live sessions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::{UserId, wire::SessionBody};

use super::{ReplyError, to_value};
use crate::Responder;

/// The user's live sessions, oldest first, all of them (the protocol has no pages; the
/// per-user limit bounds the reply). Replies `{sessions: [...]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct List {
    /// The user.
    pub user: UserId,
}

impl List {
    /// Runs the listing on `responder`.
    pub async fn apply(self, responder: &Responder) -> Result<Map<String, Value>, ReplyError> {
        responder.check_route(&self.user)?;
        let sessions = responder.manager().all_user_sessions(&self.user).await?;
        let sessions: Vec<SessionBody> = sessions.into_iter().map(SessionBody::from).collect();
        Ok(Map::from_iter([("sessions".to_owned(), to_value(sessions))]))
    }
}
