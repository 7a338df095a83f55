//! `revoke_all {user}`: closes every session of a user, and its broker access.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::UserId;

use super::ReplyError;
use crate::Responder;

/// Deletes every session of the user, then ends its broker access as the last logout does.
/// Replies `{deleted: n}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokeAll {
    /// The user.
    pub user: UserId,
}

impl RevokeAll {
    /// Runs the revocation on `responder`.
    pub async fn apply(self, responder: &Responder) -> Result<Map<String, Value>, ReplyError> {
        responder.check_route(&self.user)?;
        let _guard = responder.lock_user(&self.user).await;
        let deleted = responder.manager().delete_user_sessions(&self.user).await?;
        responder.end_if_last_locked(&self.user).await;
        Ok(Map::from_iter([("deleted".to_owned(), Value::from(deleted))]))
    }
}
