//! Password checks through PAM, run off the async threads, with failures slowed down per user.

use std::{
    collections::HashMap,
    ffi::{OsStr, OsString},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use nonstick::{AuthnFlags, ConversationAdapter, ErrorCode, Transaction, TransactionBuilder};
use sessanger_core::UserId;

/// Why a password check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// PAM refused the user or the password (or the account is locked or expired).
    #[error("authentication failed")]
    Rejected,
    /// PAM itself failed (no such service file, a module error); the password was not judged.
    #[error("PAM failed: {0}")]
    Pam(String),
}

/// The delay before the next attempt after `failures` consecutive failures: none after none,
/// then 250 ms doubling up to 8 s, so guessing a password over AMQP is slow while a user who
/// mistypes once barely notices.
pub fn penalty(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => Duration::from_millis(250u64 << (n - 1).min(5)),
    }
}

/// Checks user names and passwords against one PAM service. Cheap to clone; clones share the
/// failure counts.
///
/// # Examples
/// ```no_run
/// use sessanger_amqp::pam::Authenticator;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pam = Authenticator::new("sessanger");
/// pam.authenticate(&"sysadm".parse()?, "sysadm").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Authenticator {
    service: Arc<str>,
    /// Consecutive failures per user and when the last one happened. A success removes the
    /// entry; a std mutex because no `.await` happens while it is held.
    failures: Arc<Mutex<HashMap<UserId, (u32, Instant)>>>,
}

impl Authenticator {
    /// Checks against `/etc/pam.d/<service>`.
    pub fn new(service: impl Into<String>) -> Self {
        Authenticator { service: service.into().into(), failures: Arc::default() }
    }

    /// The PAM service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Checks `password` (PAM auth, then account management). After failures for this user,
    /// first waits out [`penalty`] since the last one.
    pub async fn authenticate(&self, user: &UserId, password: &str) -> Result<(), AuthError> {
        let wait = {
            let failures = self.failures.lock().expect("PAM failure table poisoned");
            failures.get(user).map_or(Duration::ZERO, |(n, at)| penalty(*n).saturating_sub(at.elapsed()))
        };
        tokio::time::sleep(wait).await;
        let (service, name, password) = (Arc::clone(&self.service), user.to_string(), password.to_owned());
        // PAM modules block (pam_unix hashes the password on purpose slowly), so a blocking thread.
        let result = tokio::task::spawn_blocking(move || check(&service, &name, &password))
            .await
            .unwrap_or_else(|e| Err(AuthError::Pam(format!("PAM check panicked: {e}"))));
        let mut failures = self.failures.lock().expect("PAM failure table poisoned");
        match &result {
            Ok(()) => {
                failures.remove(user);
            }
            Err(AuthError::Rejected) => {
                let entry = failures.entry(user.clone()).or_insert((0, Instant::now()));
                *entry = (entry.0.saturating_add(1), Instant::now());
            }
            Err(AuthError::Pam(_)) => {}
        }
        result
    }
}

fn check(service: &str, user: &str, password: &str) -> Result<(), AuthError> {
    let conversation = Answers { user: user.into(), password: password.into() };
    let classify = |code: ErrorCode| match code {
        ErrorCode::AuthenticationError
        | ErrorCode::UserUnknown
        | ErrorCode::MaxTries
        | ErrorCode::AccountExpired
        | ErrorCode::AuthInfoUnavailable
        | ErrorCode::PermissionDenied
        | ErrorCode::NewAuthTokRequired => AuthError::Rejected,
        other => AuthError::Pam(format!("{other:?}")),
    };
    let mut transaction = TransactionBuilder::new_with_service(service)
        .username(user)
        .build(conversation.into_conversation())
        .map_err(|code| AuthError::Pam(format!("starting PAM service `{service}`: {code:?}")))?;
    transaction.authenticate(AuthnFlags::empty()).map_err(classify)?;
    transaction.account_management(AuthnFlags::empty()).map_err(classify)
}

/// Answers PAM's prompts: the user name for a plain prompt, the password for a masked one.
struct Answers {
    user: OsString,
    password: OsString,
}

impl ConversationAdapter for Answers {
    fn prompt(&self, _request: impl AsRef<OsStr>) -> nonstick::Result<OsString> {
        Ok(self.user.clone())
    }

    fn masked_prompt(&self, _request: impl AsRef<OsStr>) -> nonstick::Result<OsString> {
        Ok(self.password.clone())
    }

    fn error_msg(&self, message: impl AsRef<OsStr>) {
        tracing::debug!(message = %message.as_ref().to_string_lossy(), "PAM error message");
    }

    fn info_msg(&self, message: impl AsRef<OsStr>) {
        tracing::debug!(message = %message.as_ref().to_string_lossy(), "PAM info message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_grows_with_failures_and_stops_at_eight_seconds() {
        assert_eq!(penalty(0), Duration::ZERO);
        assert_eq!(penalty(1), Duration::from_millis(250));
        assert_eq!(penalty(2), Duration::from_millis(500));
        assert_eq!(penalty(6), Duration::from_secs(8));
        assert_eq!(penalty(100), Duration::from_secs(8));
    }
}
