//! What the event log does the same way in both dialects: reading events and counters, and
//! the relays' leases, written once over each dialect's statements ([`LogStatements`]). How
//! committed events get their `seq`, and how the log is trimmed, differ in kind and stay in
//! each dialect's file.

use async_trait::async_trait;
use sessanger_core::{EventId, EventLog, EventRecord, RelayClaim, RelayState, Retention, StoreError, Timestamp};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use crate::{SqlStore, error::store_error, row};

/// The statements of the event log, in a dialect's syntax. Each takes its values in the order
/// its doc says.
pub(crate) trait LogStatements: Database {
    /// `seq`, `at`, `service`, `event` as text, of the events after `seq` (1), oldest first,
    /// at most (2).
    const READ_EVENTS: &'static str;
    /// The value of counter (1).
    const COUNTER: &'static str;
    /// Inserts relay (1) with an empty holder whose lease ran out long ago, if it is not there.
    const NEW_RELAY: &'static str;
    /// `holder`, `until`, `position` of relay (1), locked until the transaction ends.
    const LOCK_RELAY: &'static str;
    /// Gives relay (3) to holder (1) until (2).
    const HOLD_RELAY: &'static str;
    /// Moves relay (3) to position (1) and its lease to (2), if holder (4) holds it.
    const ADVANCE_RELAY: &'static str;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// A 64-bit event id or count as the database's signed `BIGINT`.
pub(crate) fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The events after `after` (from the oldest kept if `None`), at most `limit`, of a log whose
/// committed events are all numbered.
async fn read<DB>(pool: &Pool<DB>, after: Option<EventId>, limit: usize) -> Result<Vec<EventRecord>, StoreError>
where
    DB: LogStatements,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
    for<'r> (i64, i64, Option<String>, String): FromRow<'r, DB::Row>,
    DB::Arguments: IntoArguments<DB>,
{
    let after = after.map_or(0, |id| bigint(id.0));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows: Vec<(i64, i64, Option<String>, String)> =
        sqlx::query_as(DB::READ_EVENTS).bind(after).bind(limit).fetch_all(pool).await.map_err(store_error)?;
    rows.into_iter().map(row::event_record).collect()
}

/// The event id counter `name` holds (`last_seq`, `trimmed_through`); `None` for 0.
async fn counter<DB>(pool: &Pool<DB>, name: &str) -> Result<Option<EventId>, StoreError>
where
    DB: LogStatements,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'e> &'e str: Encode<'e, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    DB::Arguments: IntoArguments<DB>,
{
    let value: i64 = sqlx::query_scalar(DB::COUNTER).bind(name).fetch_one(pool).await.map_err(store_error)?;
    Ok(row::event_id(value))
}

/// [`EventLog::claim_relay`](sessanger_core::EventLog::claim_relay): one transaction that locks
/// the relay's row (made first if need be, so two first claimers take turns too) and applies
/// [`RelayState::claim`].
async fn claim_relay<DB>(
    pool: &Pool<DB>,
    name: &str,
    holder: &str,
    until: Timestamp,
    now: Timestamp,
) -> Result<RelayClaim, StoreError>
where
    DB: LogStatements,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'e> &'e str: Encode<'e, DB> + Type<DB>,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
    for<'r> (String, i64, Option<i64>): FromRow<'r, DB::Row>,
    DB::Arguments: IntoArguments<DB>,
{
    let mut tx = pool.begin().await.map_err(store_error)?;
    sqlx::query(DB::NEW_RELAY).bind(name).execute(&mut *tx).await.map_err(store_error)?;
    let current: (String, i64, Option<i64>) =
        sqlx::query_as(DB::LOCK_RELAY).bind(name).fetch_one(&mut *tx).await.map_err(store_error)?;
    let (claim, state) = RelayState::claim(Some(row::relay_state(current)), holder, until, now);
    if let Some(state) = state {
        let hold = sqlx::query(DB::HOLD_RELAY).bind(state.holder.as_str()).bind(state.until.as_millis()).bind(name);
        hold.execute(&mut *tx).await.map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
    }
    Ok(claim)
}

/// [`EventLog::advance_relay`](sessanger_core::EventLog::advance_relay): one conditional update.
async fn advance_relay<DB>(
    pool: &Pool<DB>,
    name: &str,
    holder: &str,
    position: Option<EventId>,
    until: Timestamp,
) -> Result<bool, StoreError>
where
    DB: LogStatements,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'e> &'e str: Encode<'e, DB> + Type<DB>,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
    for<'e> Option<i64>: Encode<'e, DB> + Type<DB>,
    DB::Arguments: IntoArguments<DB>,
{
    let position = position.map(|id| bigint(id.0));
    let advance = sqlx::query(DB::ADVANCE_RELAY).bind(position).bind(until.as_millis()).bind(name).bind(holder);
    let moved = advance.execute(pool).await.map_err(store_error)?;
    Ok(DB::rows_affected(&moved) == 1)
}

/// What each dialect does its own way: numbering committed events, trimming the log.
#[async_trait]
pub(crate) trait Numbering {
    /// Gives `seq` to the committed events that have none, in the order they were written.
    async fn sequence(&self) -> Result<(), StoreError>;

    /// Drops the numbered events `retention` no longer keeps at `now`; returns how many.
    async fn trim(&self, retention: &Retention, now: Timestamp) -> Result<u64, StoreError>;
}

#[async_trait]
impl<DB> EventLog for SqlStore<DB>
where
    DB: LogStatements,
    SqlStore<DB>: Numbering,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'e> &'e str: Encode<'e, DB> + Type<DB>,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
    for<'e> Option<i64>: Encode<'e, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (i64, i64, Option<String>, String): FromRow<'r, DB::Row>,
    for<'r> (String, i64, Option<i64>): FromRow<'r, DB::Row>,
    DB::Arguments: IntoArguments<DB>,
{
    async fn read_events(&self, after: Option<EventId>, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.sequence().await?;
        read(&self.pool, after, limit).await
    }

    async fn last_event_id(&self) -> Result<Option<EventId>, StoreError> {
        self.sequence().await?;
        counter(&self.pool, "last_seq").await
    }

    async fn trimmed_through(&self) -> Result<Option<EventId>, StoreError> {
        counter(&self.pool, "trimmed_through").await
    }

    async fn claim_relay(
        &self,
        name: &str,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<RelayClaim, StoreError> {
        claim_relay(&self.pool, name, holder, until, now).await
    }

    async fn advance_relay(
        &self,
        name: &str,
        holder: &str,
        position: Option<EventId>,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        advance_relay(&self.pool, name, holder, position, until).await
    }

    async fn trim_events(&self, retention: &Retention, now: Timestamp) -> Result<u64, StoreError> {
        // Rows waiting for their `seq` are trimmed once they have one: number them now, so a
        // log nobody reads still stays bounded.
        self.sequence().await?;
        self.trim(retention, now).await
    }
}
