//! SQL session stores for sessanger: [`PostgresStore`] (PostgreSQL) and [`MySqlStore`]
//! (MySQL and MariaDB), both on [sqlx](https://docs.rs/sqlx), both implementing the
//! [`SessionStore`](sessanger_core::SessionStore) and
//! [`ServiceStore`](sessanger_core::ServiceStore) contract.
//!
//! Every operation is one statement, or one transaction where the contract needs a decision
//! between statements (a per-user limit, a rename) or where the dialect cannot return what it
//! wrote (MySQL has no `UPDATE ... RETURNING`). Attributes change in place inside the
//! database — `-` and `||` in PostgreSQL, `JSON_REMOVE` and `JSON_SET` in MySQL — in the one
//! `UPDATE` that also checks the version, so concurrent writers of different keys,
//! and concurrent increments of one key, never lose each other's writes. The time `now`
//! always comes from the caller as a parameter, never from the database clock, and every
//! read filters on `expires_at > now`, so a dead session is invisible at once, purged or not.
//!
//! # Layout
//!
//! Each dialect's file holds every statement that dialect receives, as a string literal bound
//! with sqlx, so `grep` finds each `SELECT`, `INSERT INTO`, `UPDATE` and `DELETE FROM` where
//! it runs. The other files hold only what is the same for both:
//!
//! - `postgres` (feature `postgres`): [`PostgresStore`] — `$n` placeholders, `jsonb`,
//!   `RETURNING`, an advisory lock that serializes one user's limited creates, and the patch
//!   as one literal `UPDATE`.
//! - `mysql` (feature `mysql`): [`MySqlStore`] — `?` placeholders, JSON paths, transactions
//!   where PostgreSQL would use `RETURNING`, and the two statements built at run time with
//!   sqlx's `QueryBuilder`: the patch (`JSON_SET` takes one argument pair per key) and the id
//!   list of a batch delete.
//! - `store`: [`SqlStore`], the type both stores are: a pool, plus opening and migrating it.
//! - `row`: rows ↔ records — the `FromRow` row types, their mapping to `Session` and
//!   `ServiceRecord` (a value that does not read is `StoreError::Decode`), and the values an
//!   `INSERT` binds.
//! - `outcome`: the contract's decisions from what the statements returned — the per-user
//!   limit, reusing a dead session's id, why a patch or replace matched nothing.
//! - `error`: sqlx errors as `StoreError`s (an unreachable server is `Unavailable`), the
//!   deadlock retry with backoff, the pool settings.
//! - `migrations/{postgres,mysql}/`: the schema, embedded in the binary with
//!   `sqlx::migrate!` and applied by `connect` (or `migrate`, for `sessanger migrate`).
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
//! | `create` under a limit | one transaction: advisory lock on the user, `SELECT ... FOR UPDATE` of the user's rows, `DELETE` of evicted rows and of a dead session with the id, `INSERT`; retried on deadlock | one transaction: `SELECT ... FOR UPDATE` (next-key locks), `DELETE` of a dead session with the id, `DELETE` of evicted rows, `INSERT`; retried on deadlock |
//! | `touch`, `patch`, `replace` | one `UPDATE ... RETURNING` (a `SELECT` follows only when it matched nothing, to say why) | one transaction: `UPDATE`, `SELECT` |
//! | `rename` | one transaction: `DELETE` of a dead session under the new id, `UPDATE ... RETURNING` of the id; retried on deadlock | one transaction: the same `DELETE`, `UPDATE`, `SELECT`; retried on deadlock |
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
//! assert_eq!(*manager.get_session(&session.id).await?, session);
//! # Ok(()) }
//! ```

mod error;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod events;
mod outcome;
mod row;
mod store;
mod tls;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;

#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use store::SqlStore;
