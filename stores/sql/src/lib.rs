//! SQL session stores for sessanger: [`PostgresStore`] (PostgreSQL) and [`MySqlStore`]
//! (MySQL and MariaDB), both on [sqlx](https://docs.rs/sqlx), both implementing the
//! [`SessionStore`](sessanger_core::SessionStore) and
//! [`ServiceStore`](sessanger_core::ServiceStore) contract.
//!
//! Every operation is one statement, or one transaction where the contract needs a decision
//! between statements (a per-user limit, a rename) or where the dialect cannot return what it
//! wrote (MySQL has no `UPDATE ... RETURNING`). Attributes change in place inside the
//! database — `jsonb_set` and `-` in PostgreSQL, `JSON_SET` and `JSON_REMOVE` in MySQL — in
//! the one `UPDATE` that also checks the version, so concurrent writers of different keys,
//! and concurrent increments of one key, never lose each other's writes. The time `now`
//! always comes from the caller as a parameter, never from the database clock, and every
//! read filters on `expires_at > now`, so a dead session is invisible at once, purged or not.
//!
//! # Layout
//!
//! - `shared`: the engine, written once: statement building, row ↔ `Session` mapping, error
//!   mapping, the per-user limit, the purge batches, and the contract itself, generic over a
//!   sealed [`Dialect`].
//! - `postgres` (feature `postgres`): [`PgDialect`] — function names, `$n` placeholders,
//!   `RETURNING`, and an advisory lock that serializes one user's limited creates.
//! - `mysql` (feature `mysql`): [`MySqlDialect`] — `?` placeholders, JSON paths, and
//!   transactions where PostgreSQL would use `RETURNING`.
//! - `migrations/{postgres,mysql}/`: the schema, embedded in the binary with
//!   `sqlx::migrate!` and applied by `connect` (or [`SqlStore::migrate`], for
//!   `sessanger migrate`).
//!
//! The schema has two tables:
//!
//! | table | columns | indexes | why |
//! |---|---|---|---|
//! | `sessions` | `id` (PK), `user_id`, `created_at`, `last_access_at`, `idle_ttl_ms`, `absolute_expires_at`, `expires_at`, `device` (JSON), `created_by`, `attributes` (JSON; `jsonb` in PostgreSQL), `version` | `(user_id, created_at, id)`, `(expires_at)` | `load` is a primary-key lookup; a user's sessions are one index range in list order (oldest first), so listing, revoking and the per-user limit cost O(k) in that user's sessions; the purge reads the due end of the expiry index only |
//! | `services` | `id` (PK), `name`, `permissions` (JSON), `secret_sha256`, `created_at` | — | the service registry, listed in id order |
//!
//! Times are integer milliseconds since the Unix epoch, as [`Timestamp`](sessanger_core::Timestamp)
//! holds them: exact, zone-free and alike in both dialects. Ids compare bytewise (`COLLATE "C"`,
//! `ascii_bin`), because session ids are case-sensitive.
//!
//! # Statements per operation
//!
//! | operation | PostgreSQL | MySQL/MariaDB |
//! |---|---|---|
//! | `load`, `list_user`, `count_active`, services | one `SELECT` | one `SELECT` |
//! | `create` without a limit | one `INSERT` (a second `DELETE` + `INSERT` only if the id belongs to a dead session) | the same |
//! | `create` under a limit | one transaction: advisory lock on the user, `SELECT ... FOR UPDATE` of the user's rows, `DELETE` of evicted rows, `INSERT` | one transaction: `SELECT ... FOR UPDATE` (next-key locks), `DELETE`, `INSERT`; retried on deadlock |
//! | `touch`, `patch`, `replace` | one `UPDATE ... RETURNING` (a `SELECT` follows only when it matched nothing, to say why) | one transaction: `UPDATE`, `SELECT` |
//! | `rename` | one transaction: `DELETE` of a dead session under the new id, `UPDATE` of the id, `SELECT` | the same |
//! | `delete`, `delete_user`, `delete_expired` | one `DELETE ... RETURNING` (the purge picks its batch with `ORDER BY expires_at LIMIT n FOR UPDATE SKIP LOCKED`) | one transaction: `SELECT ... FOR UPDATE`, `DELETE` by id |
//!
//! # Examples
//!
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//! use sessanger_core::{NewSession, SessionManager};
//! # #[cfg(feature = "postgres")]
//! use sessanger_store_sql::PostgresStore;
//!
//! # #[cfg(feature = "postgres")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Connects, then applies any migration the database has not seen yet.
//! let store = PostgresStore::connect("postgres://sessanger@localhost/sessanger").await?;
//! let manager = SessionManager::new(Arc::new(store), "web".parse()?, Duration::from_secs(3600));
//! let session = manager.create_session(&"alice".parse()?, NewSession::default()).await?;
//! assert_eq!(manager.get_session(&session.id).await?, session);
//! # Ok(()) }
//! ```

mod error;
mod outcome;
mod row;
mod store;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;

#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use store::SqlStore;
