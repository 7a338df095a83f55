//! Errors and retries, the same for both dialects: a sqlx error as a [`StoreError`], the
//! deadlock retry with its backoff, and the pool settings and URL redaction `connect` uses so
//! that a dead server reads as `Unavailable` and a password never reaches an error message.

use std::{future::Future, time::Duration};

use sessanger_core::StoreError;
use sqlx::{Database, migrate::MigrateError};

/// A sqlx error as a store error, keeping it as the source: a lost or unreachable server (or
/// an exhausted pool) may pass, so it is `Unavailable`; a value that does not read is
/// `Decode`; anything else is `Other`.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match error {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            StoreError::Unavailable(error.into())
        }
        E::ColumnDecode { .. } | E::Decode(_) => StoreError::Decode(error.into()),
        E::Database(ref db) if db.code().is_some_and(|code| lost_connection(&code)) => {
            StoreError::Unavailable(error.into())
        }
        other => StoreError::Other(other.into()),
    }
}

/// A failure to connect to the database at `url`, naming it (a TLS refusal names no server).
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {url}")]
struct Unreachable {
    url: String,
    #[source]
    source: sessanger_core::BoxError,
}

/// A failed first connection as a store error ([`store_error`]'s), its message naming the
/// database at `url` (without its password).
pub(crate) fn unreachable(url: &str, error: sqlx::Error) -> StoreError {
    let named = |source| -> sessanger_core::BoxError { Box::new(Unreachable { url: redact(url), source }) };
    match store_error(error) {
        StoreError::Unavailable(source) => StoreError::Unavailable(named(source)),
        StoreError::Other(source) => StoreError::Other(named(source)),
        other => other,
    }
}

/// A failed migration as a store error: a statement that failed says why like any other;
/// anything else (a checksum that changed, a missing migration) is `Other`.
pub(crate) fn migrate_error(error: MigrateError) -> StoreError {
    match error {
        MigrateError::Execute(e) => store_error(e),
        other => StoreError::Other(other.into()),
    }
}

/// SQLSTATEs that mean the server went away or is shutting down (class 08: connection
/// exception; 57P0x: PostgreSQL operator intervention such as shutdown; 08S01: MySQL's
/// communication link failure).
fn lost_connection(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P0")
}

/// A duplicate primary key: the id is taken.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether an `INSERT` went in: `Ok(false)` if the primary key was taken.
pub(crate) fn inserted<R>(outcome: Result<R, sqlx::Error>) -> Result<bool, StoreError> {
    match outcome {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(store_error(e)),
    }
}

/// A deadlock or serialization failure: the transaction was rolled back and may simply be
/// run again. InnoDB gap locks make concurrent first creates of one user deadlock.
fn is_retryable(error: &StoreError) -> bool {
    let StoreError::Other(source) = error else { return false };
    matches!(
        source.downcast_ref::<sqlx::Error>(),
        Some(sqlx::Error::Database(db)) if db.code().is_some_and(|c| c == "40001" || c == "40P01")
    )
}

/// How often an operation is run again after a deadlock or a race before giving up.
pub(crate) const ATTEMPTS: usize = 64;

/// Runs the transaction `run` until it does not deadlock, waiting a little longer before
/// each new attempt; after [`ATTEMPTS`] deadlocks in a row, the last one is the error.
pub(crate) async fn retry_deadlocks<T, F, Fut>(mut run: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        match run().await {
            Err(e) if is_retryable(&e) && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                backoff(attempt).await;
            }
            outcome => return outcome,
        }
    }
}

/// Waits a random 0 to 2^attempt ms (at most 256 ms) before running a transaction again
/// after a deadlock, so the transactions that deadlocked do not meet again in lockstep. The
/// window keeps growing past the first few attempts: dozens of concurrent first creates of
/// one user on InnoDB deadlock in waves, and a window capped much lower let one of them lose
/// every attempt.
async fn backoff(attempt: usize) {
    use std::hash::{BuildHasher, Hasher};
    // Each `RandomState` starts from fresh random keys: randomness enough for jitter,
    // without a dependency.
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let ceiling = 1u64 << attempt.min(8);
    tokio::time::sleep(Duration::from_millis(random % (ceiling + 1))).await;
}

/// The pool `connect` builds: sqlx's defaults (10 connections), but a caller waits at most
/// 10 s for a connection, then gets `Unavailable`, rather than hanging on a dead server for
/// sqlx's 30 s.
pub(crate) fn pool_options<DB: Database>() -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new().acquire_timeout(Duration::from_secs(10))
}

/// The URL without its password, for error messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}
