//! Rows ↔ records, the same for both dialects: the columns a statement returns, read by name
//! with [`FromRow`](sqlx::FromRow), and turned into a [`Session`] or [`ServiceRecord`]; a
//! session's values bound for an `INSERT`; and the id lists `delete_user` and
//! `delete_expired` return.
//!
//! Every statement reads JSON columns as text (`device::text`, `CAST(device AS CHAR)`), so
//! one row type serves both dialects, and a stored value this version cannot read is a
//! [`StoreError::Decode`], never a panic or a silent default.

use std::time::Duration;

use sessanger_core::{
    BoxError, EventId, EventRecord, Page, RelayState, ServiceRecord, Session, SessionId, SessionRef, StoreError,
    Timestamp, UserId, Version,
};
use sqlx::{Database, Encode, Type, query::Query};

/// A row of `sessions`, as `SELECT` and `RETURNING` list its columns.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_access_at: i64,
    pub idle_ttl_ms: i64,
    pub absolute_expires_at: i64,
    pub expires_at: i64,
    /// JSON text.
    pub device: String,
    pub created_by: Option<String>,
    /// JSON text: an object.
    pub attributes: String,
    pub version: i64,
}

impl SessionRow {
    /// The row that stores `session`.
    pub(crate) fn new(session: &Session) -> Result<Self, StoreError> {
        Ok(SessionRow {
            id: session.id.to_string(),
            user_id: session.user_id.to_string(),
            created_at: session.created_at.as_millis(),
            last_access_at: session.last_access_at.as_millis(),
            idle_ttl_ms: i64::try_from(session.idle_ttl.as_millis()).unwrap_or(i64::MAX),
            absolute_expires_at: session.absolute_expires_at.as_millis(),
            expires_at: session.expires_at.as_millis(),
            device: encode(&session.device)?,
            created_by: session.created_by.as_ref().map(ToString::to_string),
            attributes: encode(&session.attributes)?,
            version: i64::try_from(session.version.0).map_err(|e| StoreError::Encode(e.into()))?,
        })
    }

    /// Binds the row's values to `insert`, in the order of the table's columns (`id`,
    /// `user_id`, `created_at`, `last_access_at`, `idle_ttl_ms`, `absolute_expires_at`,
    /// `expires_at`, `device`, `created_by`, `attributes`, `version`).
    pub(crate) fn bind<'q, DB>(&self, insert: Query<'q, DB, DB::Arguments>) -> Query<'q, DB, DB::Arguments>
    where
        DB: Database,
        for<'e> &'e str: Encode<'e, DB> + Type<DB>,
        for<'e> Option<&'e str>: Encode<'e, DB> + Type<DB>,
        for<'e> i64: Encode<'e, DB> + Type<DB>,
    {
        insert
            .bind(self.id.as_str())
            .bind(self.user_id.as_str())
            .bind(self.created_at)
            .bind(self.last_access_at)
            .bind(self.idle_ttl_ms)
            .bind(self.absolute_expires_at)
            .bind(self.expires_at)
            .bind(self.device.as_str())
            .bind(self.created_by.as_deref())
            .bind(self.attributes.as_str())
            .bind(self.version)
    }
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        Ok(Session {
            id: parse(&row.id)?,
            user_id: parse(&row.user_id)?,
            created_at: Timestamp::from_millis(row.created_at),
            last_access_at: Timestamp::from_millis(row.last_access_at),
            idle_ttl: Duration::from_millis(unsigned(row.idle_ttl_ms, "idle_ttl_ms")?),
            absolute_expires_at: Timestamp::from_millis(row.absolute_expires_at),
            expires_at: Timestamp::from_millis(row.expires_at),
            device: json(&row.device)?,
            created_by: row.created_by.as_deref().map(parse).transpose()?,
            attributes: json(&row.attributes)?,
            version: Version(unsigned(row.version, "version")?),
        })
    }
}

/// A session row, if any, as a session.
pub(crate) fn session(row: Option<SessionRow>) -> Result<Option<Session>, StoreError> {
    row.map(Session::try_from).transpose()
}

/// Session rows as sessions, failing on the first that does not read.
pub(crate) fn sessions(rows: Vec<SessionRow>) -> Result<Vec<Session>, StoreError> {
    rows.into_iter().map(Session::try_from).collect()
}

/// A row of `services`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ServiceRow {
    pub id: String,
    pub name: String,
    /// JSON text.
    pub permissions: String,
    pub secret_sha256: String,
    pub created_at: i64,
}

impl TryFrom<ServiceRow> for ServiceRecord {
    type Error = StoreError;

    fn try_from(row: ServiceRow) -> Result<Self, StoreError> {
        Ok(ServiceRecord {
            id: parse(&row.id)?,
            name: row.name,
            permissions: json(&row.permissions)?,
            secret_sha256: row.secret_sha256,
            created_at: Timestamp::from_millis(row.created_at),
        })
    }
}

impl ServiceRow {
    /// The row that stores `service`.
    pub(crate) fn new(service: &ServiceRecord) -> Result<Self, StoreError> {
        Ok(ServiceRow {
            id: service.id.to_string(),
            name: service.name.clone(),
            permissions: encode(&service.permissions)?,
            secret_sha256: service.secret_sha256.clone(),
            created_at: service.created_at.as_millis(),
        })
    }

    /// Binds the row's values to `query`, in the order of the table's columns (`id`, `name`,
    /// `permissions`, `secret_sha256`, `created_at`).
    pub(crate) fn bind<'q, DB>(&self, query: Query<'q, DB, DB::Arguments>) -> Query<'q, DB, DB::Arguments>
    where
        DB: Database,
        for<'e> &'e str: Encode<'e, DB> + Type<DB>,
        for<'e> i64: Encode<'e, DB> + Type<DB>,
    {
        let values = [&self.id, &self.name, &self.permissions, &self.secret_sha256];
        values.into_iter().fold(query, |query, value| query.bind(value.as_str())).bind(self.created_at)
    }
}

/// The `LIKE` pattern (with `ESCAPE '!'`, which means the same in every SQL mode) of the ids
/// that start with `prefix`.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '!' | '%' | '_') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `user_id` column values as user ids.
pub(crate) fn user_ids(rows: Vec<(String,)>) -> Result<Vec<UserId>, StoreError> {
    rows.into_iter().map(|(user,)| parse(&user)).collect()
}

/// A service row, if any, as a service.
pub(crate) fn service(row: Option<ServiceRow>) -> Result<Option<ServiceRecord>, StoreError> {
    row.map(ServiceRecord::try_from).transpose()
}

/// Service rows as services.
pub(crate) fn services(rows: Vec<ServiceRow>) -> Result<Vec<ServiceRecord>, StoreError> {
    rows.into_iter().map(ServiceRecord::try_from).collect()
}

/// The ids of the rows (`id`, `expires_at`) that were live at `now`: what `delete_user`
/// reports of the rows it deleted.
pub(crate) fn live_ids(rows: Vec<(String, i64)>, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
    rows.into_iter().filter(|(_, expires_at)| *expires_at > now.as_millis()).map(|(id, _)| parse(&id)).collect()
}

/// The sessions (`id`, `user_id`) a purge deleted. A row whose ids no longer parse is gone
/// all the same; there is no one to tell.
pub(crate) fn session_refs(rows: Vec<(String, String)>) -> Vec<SessionRef> {
    rows.into_iter()
        .filter_map(|(id, user_id)| Some(SessionRef { id: id.parse().ok()?, user_id: user_id.parse().ok()? }))
        .collect()
}

fn decode_error(what: impl Into<BoxError>) -> StoreError {
    StoreError::Decode(what.into())
}

fn unsigned(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| decode_error(format!("negative {what}")))
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, StoreError>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse().map_err(decode_error)
}

fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(decode_error)
}

/// A value as JSON text, for a JSON column or parameter.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode(e.into()))
}

/// A count as returned by `COUNT(*)`.
pub(crate) fn count(value: i64) -> Result<u64, StoreError> {
    unsigned(value, "count")
}

/// Where a page of a user's sessions starts, as the `(created_at, id)` the statements compare
/// with: before every session for the first page (ids are never empty).
pub(crate) fn page_start(page: &Page) -> (i64, String) {
    page.after.as_ref().map_or((i64::MIN, String::new()), |p| (p.created_at.as_millis(), p.id.to_string()))
}

/// An event as the `events` table holds it: (`seq`, `at`, `service`, `event` as JSON text).
pub(crate) fn event_record(
    (seq, at, service, event): (i64, i64, Option<String>, String),
) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        id: EventId(unsigned(seq, "event seq")?),
        at: Timestamp::from_millis(at),
        service: service.map(|s| s.parse()).transpose().map_err(decode_error)?,
        event: serde_json::from_str(&event).map_err(decode_error)?,
    })
}

/// A counter of the event log (`last_seq`, `trimmed_through`) as an event id: `None` for 0,
/// which no event has.
pub(crate) fn event_id(value: i64) -> Option<EventId> {
    u64::try_from(value).ok().filter(|&n| n > 0).map(EventId)
}

/// A row of `event_relays` (`holder`, `until`, `position`) as the relay's state.
pub(crate) fn relay_state((holder, until, position): (String, i64, Option<i64>)) -> RelayState {
    RelayState { holder, until: Timestamp::from_millis(until), position: position.and_then(event_id) }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;
    use sessanger_core::UserId;

    use super::*;

    /// A fresh session of user `u`, created at 0.
    pub(crate) fn session() -> Session {
        let user: UserId = "u".parse().unwrap();
        Session::new(
            SessionId::generate_for(&user),
            user,
            Timestamp::from_millis(0),
            Duration::from_secs(1),
            Duration::from_secs(2),
        )
    }

    #[test]
    fn a_session_row_round_trips() {
        let mut s = session();
        s.attributes.insert("k".into(), json!([1, {"a": null}]));
        s.created_by = Some("web".parse().unwrap());
        let row = SessionRow::new(&s).unwrap();
        assert_eq!(row.created_by.as_deref(), Some("web"));
        assert_eq!(Session::try_from(row.clone()).unwrap(), s);
        let bad = SessionRow { attributes: "[1]".into(), ..row };
        assert!(matches!(Session::try_from(bad), Err(StoreError::Decode(_))));
    }
}
