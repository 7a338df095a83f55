//! `login {user, password?, device_id?}`: PAM, then the broker account, then the session.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::{Device, NewSession, UserId};

use super::{Password, ReplyCode, ReplyError, session_fields, to_value};
use crate::{Responder, broker::BrokerError, responder::Caller};

/// Authenticates `user` with `password` through PAM and opens a session. On success the user
/// has a broker account (password: the login password, or the fixed one of
/// [`BrokerOptions::user_password`](crate::BrokerOptions::user_password)) and a vhost of its
/// own. Replies `{session, broker: {user, vhost}, routing_key}`; a refused password gives
/// `auth_failed` and creates nothing.
///
/// An admin may log a user in without a password (a system login by SSH key): the broker
/// account then gets the fixed password, or keeps the one it has; a user with neither gets
/// `password_required`. A client without a password gets `forbidden`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Login {
    /// The system login.
    pub user: UserId,
    /// Its password, checked by PAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// The client's device, kept in the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

impl Login {
    /// Runs the login on `responder` for `caller`.
    pub async fn apply(self, responder: &Responder, caller: Caller) -> Result<Map<String, Value>, ReplyError> {
        responder.check_route(&self.user)?;
        let password = self.password.as_ref().map(Password::as_str);
        responder.authorize(caller, &self.user, password).await?;
        // Under the user's lock, so a logout ending its last session cannot delete the broker
        // account between its creation here and the new session.
        let _guard = responder.lock_user(&self.user).await;
        let password = responder.user_password().or(password);
        let grant = responder.provisioner().provision(&self.user, password).await.map_err(|error| match error {
            BrokerError::NoPassword => ReplyError::new(
                ReplyCode::PasswordRequired,
                "the user has no broker account yet: log in with its password once, or set broker.user.password",
            ),
            error => {
                tracing::error!(user = %self.user, %error, "provisioning the broker account failed");
                ReplyError::new(ReplyCode::BrokerFailed, "the broker account could not be set up")
            }
        })?;
        let new =
            NewSession { device: Device { device_id: self.device_id, ..Device::default() }, ..NewSession::default() };
        let session = match responder.manager().create_session(&self.user, new).await {
            Ok(session) => session,
            Err(error) => {
                // No session, so no broker access either, unless older sessions hold it.
                responder.end_if_last_locked(&self.user).await;
                return Err(error.into());
            }
        };
        let mut fields = session_fields(session);
        fields.insert("broker".into(), to_value(grant));
        fields.insert("routing_key".into(), Value::String(responder.routing_key().to_string()));
        Ok(fields)
    }
}
