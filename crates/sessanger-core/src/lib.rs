//! The core of sessanger: sessions, the store contract, the manager and the service registry.
//! No network or database code lives here; stores and front ends depend on this crate.
//!
//! # Layout
//! - [`id`](crate::SessionId): validated identifiers — [`SessionId`], [`UserId`], [`ServiceId`].
//! - `time`: [`Timestamp`] and the [`Clock`]s every expiry check reads through.
//! - `session`: the [`Session`] record, [`Patch`]es of its attributes, size [`Limits`].
//! - `store`: the [`SessionStore`], [`ServiceStore`] and [`Maintenance`] contract a [`Store`]
//!   implements, and the [`EventLog`] of a store that records [`EventRecord`]s.
//! - `service`: registered services, their [`Permission`]s and [`ServiceToken`]s.
//! - `manager`: [`SessionManager`], the library API (sa-token's `DistributedSessionManager`,
//!   beego's `Manager`), with [`SessionEvent`]s and the audit trail ([`audit::TARGET`]);
//!   `combine`: how it writes concurrent increments of one session as one patch.
//! - `follow`: [`LogFollower`], which follows a store's event log as it grows.
//! - [`wire`]: the JSON bodies of the native HTTP API, shared by server and clients.
//! - [`error_chain`]: an error and its causes on one line.

pub mod audit;
pub mod cache;
mod combine;
mod error_chain;
mod event;
mod follow;
mod id;
mod manager;
mod service;
mod session;
mod store;
mod time;
pub mod wire;

pub use error_chain::error_chain;
pub use event::{
    DeleteReason, EventFilter, EventId, EventRecord, MalformedEventId, Retention, SessionEvent, UnknownEventType,
};
pub use follow::LogFollower;
pub use id::{IdError, ServiceId, SessionId, UserId};
pub use manager::{Background, ManagerError, NewSession, SessionManager, SessionPolicy};
pub use service::{MalformedToken, Permission, ServiceRecord, ServiceToken, UnknownPermission};
pub use session::{Attributes, Device, Limits, Patch, PatchError, Session, SessionCap, Version, encoded_size};
pub use store::{
    BoxError, CacheCounts, CacheStats, Change, Created, EventLog, Maintenance, MalformedCursor, Page, PatchOptions,
    Patched, Position, RelayClaim, RelayState, Renamed, Replaced, Replacement, Resume, ServiceChanges, ServiceStore,
    SessionRef, SessionStore, Store, StoreError, UserLimit,
};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
