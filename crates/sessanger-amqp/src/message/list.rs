//! `list {user, password?}`: a user's live sessions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::{UserId, wire::SessionBody};

use super::{Password, ReplyError, to_value};
use crate::{Responder, responder::Caller};

/// The user's live sessions, oldest first, all of them (the protocol has no pages; the
/// per-user limit bounds the reply). A client must give the user's password; an admin need
/// not. Replies `{sessions: [...]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct List {
    /// The user.
    pub user: UserId,
    /// The user's password, which PAM checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
}

impl List {
    /// Runs the listing on `responder` for `caller`.
    pub async fn apply(self, responder: &Responder, caller: Caller) -> Result<Map<String, Value>, ReplyError> {
        responder.check_route(&self.user)?;
        responder.authorize(caller, &self.user, self.password.as_ref().map(Password::as_str)).await?;
        let sessions = responder.manager().all_user_sessions(&self.user).await?;
        let sessions: Vec<SessionBody> = sessions.into_iter().map(SessionBody::from).collect();
        Ok(Map::from_iter([("sessions".to_owned(), to_value(sessions))]))
    }
}
