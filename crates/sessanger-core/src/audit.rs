//! The audit trail: one structured `tracing` event per security-relevant act, under the
//! target [`TARGET`], so a subscriber can route it to its own JSON-lines sink.
//!
//! Every event has an `action` and, when a service acted, that `service`; acts on sessions add
//! the `session` and its `user`, changes to the service registry the `target_service`.
//!
//! Session ids are logged as [`SessionId::fingerprint`]s: whoever reads the log can correlate
//! entries but cannot replay a session.

use crate::{Permission, ServiceId, SessionId, UserId};

/// The `tracing` target of every audit event.
pub const TARGET: &str = "sessanger::audit";

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Create,
    Delete,
    Revoke,
    Regenerate,
    /// A read by a service other than the creator.
    ForeignRead,
    /// A change by a service other than the creator.
    ForeignUpdate,
    ServiceRegister,
    /// A service's permissions replaced.
    ServiceUpdate,
    ServiceRemove,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "session.create",
            Action::Delete => "session.delete",
            Action::Revoke => "session.revoke",
            Action::Regenerate => "session.regenerate",
            Action::ForeignRead => "session.read",
            Action::ForeignUpdate => "session.update",
            Action::ServiceRegister => "service.register",
            Action::ServiceUpdate => "service.update",
            Action::ServiceRemove => "service.remove",
        }
    }
}

/// An act on sessions: `actor` is the service that did it (none for the manager's own work,
/// such as expiry).
pub(crate) fn record(action: Action, actor: Option<&ServiceId>, session: Option<&SessionId>, user: Option<&UserId>) {
    tracing::info!(
        target: TARGET,
        action = action.as_str(),
        service = actor.map(AsRef::as_ref),
        session = session.map(SessionId::fingerprint),
        user = user.map(AsRef::as_ref),
        "audit"
    );
}

/// A change to the service registry ([`Action::ServiceRegister`], [`Action::ServiceUpdate`],
/// [`Action::ServiceRemove`]): `actor` did it, `target` is the service registered, changed or
/// removed, `permissions` what it may do now (none once removed). Without the target and its
/// permissions the trail could not tell which credentials appeared, grew or were revoked.
pub(crate) fn record_service(
    action: Action,
    actor: Option<&ServiceId>,
    target: &ServiceId,
    permissions: &[Permission],
) {
    let permissions: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    tracing::info!(
        target: TARGET,
        action = action.as_str(),
        service = actor.map(AsRef::as_ref),
        target_service = target.as_ref(),
        permissions = permissions.join(","),
        "audit"
    );
}
