//! `revoke_all {user, password?}`: closes every session of a user, and its broker access.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::UserId;

use super::{Password, ReplyError};
use crate::{Responder, responder::Caller};

/// Deletes every session of the user, then ends its broker access as the last logout does.
/// A client must give the user's password; an admin need not. Replies `{deleted: n}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokeAll {
    /// The user.
    pub user: UserId,
    /// The user's password, which PAM checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
}

impl RevokeAll {
    /// Runs the revocation on `responder` for `caller`.
    pub async fn apply(self, responder: &Responder, caller: Caller) -> Result<Map<String, Value>, ReplyError> {
        responder.check_route(&self.user)?;
        responder.authorize(caller, &self.user, self.password.as_ref().map(Password::as_str)).await?;
        let _guard = responder.lock_user(&self.user).await;
        let deleted = responder.manager().delete_user_sessions(&self.user).await?;
        responder.end_if_last_locked(&self.user).await;
        Ok(Map::from_iter([("deleted".to_owned(), Value::from(deleted))]))
    }
}
