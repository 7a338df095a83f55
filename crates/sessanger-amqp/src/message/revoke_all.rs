//! `revoke_all {user}`: closes every session of a user, and its broker access.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::UserId;

use super::Failure;
use crate::Manager;

/// Deletes every session of the user, then ends its broker access as the last logout does.
/// Replies `{deleted: n}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokeAll {
    /// The user.
    pub user: UserId,
}

impl RevokeAll {
    /// Runs the revocation on `manager`.
    pub async fn apply(self, manager: &Manager) -> Result<Map<String, Value>, Failure> {
        manager.check_route(&self.user)?;
        let _guard = manager.lock_user(&self.user).await;
        let deleted = manager.sessions().delete_user_sessions(&self.user).await?;
        manager.end_if_last_locked(&self.user).await;
        Ok(Map::from_iter([("deleted".to_owned(), Value::from(deleted))]))
    }
}
