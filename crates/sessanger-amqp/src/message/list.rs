//! `list {user}`: a user's live sessions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::{UserId, wire::SessionBody};

use super::{Failure, to_value};
use crate::Manager;

/// The user's live sessions, oldest first. Replies `{sessions: [...]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct List {
    /// The user.
    pub user: UserId,
}

impl List {
    /// Runs the listing on `manager`.
    pub async fn apply(self, manager: &Manager) -> Result<Map<String, Value>, Failure> {
        manager.check_route(&self.user)?;
        let sessions = manager.sessions().list_user_sessions(&self.user).await?;
        let sessions: Vec<SessionBody> = sessions.into_iter().map(SessionBody::from).collect();
        Ok(Map::from_iter([("sessions".to_owned(), to_value(sessions))]))
    }
}
