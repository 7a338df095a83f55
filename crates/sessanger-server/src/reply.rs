//! Session responses: the shared wire body (`sessanger_core::wire::SessionBody`) with the
//! headers that belong to it, and the answers kept as written ([`Answers`]).

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::FromRef,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sessanger_core::{
    Session, SessionId, Timestamp, UserId, Version,
    cache::{Cache, Lookup},
    wire::SessionBody,
};

use crate::{error::ApiError, extract::Prefer};

/// RFC 7240's answer to `Prefer`; the `http` crate has no constant for it.
const PREFERENCE_APPLIED: &str = "preference-applied";

/// A session response: the JSON with an `ETag` of its version, so the client can send it back
/// in `If-Match`, and a `Location` when it was just created.
#[derive(Debug)]
pub(crate) struct SessionReply {
    status: StatusCode,
    // Shared: a session read from a store that keeps it in memory arrives as the store's copy.
    session: Arc<Session>,
    minimal: bool,
    answers: Option<Arc<Answers>>,
}

impl SessionReply {
    pub(crate) fn ok(session: impl Into<Arc<Session>>) -> Self {
        SessionReply { status: StatusCode::OK, session: session.into(), minimal: false, answers: None }
    }

    pub(crate) fn created(session: Session) -> Self {
        SessionReply { status: StatusCode::CREATED, session: session.into(), minimal: false, answers: None }
    }

    /// `304 Not Modified`: the client's copy is current; only the `ETag` is sent.
    pub(crate) fn not_modified(session: impl Into<Arc<Session>>) -> Self {
        SessionReply { status: StatusCode::NOT_MODIFIED, session: session.into(), minimal: false, answers: None }
    }

    /// The changed session as the client prefers it: with `return=minimal`, `204 No Content`
    /// and its `ETag` only.
    pub(crate) fn changed(session: Session, prefer: Prefer) -> Self {
        SessionReply { status: StatusCode::OK, session: session.into(), minimal: prefer.minimal, answers: None }
    }

    /// Answers with the bytes written for this very session before, if `answers` holds them,
    /// and keeps what it writes there.
    pub(crate) fn reusing(self, answers: SharedAnswers) -> Self {
        SessionReply { answers: answers.0, ..self }
    }
}

impl IntoResponse for SessionReply {
    fn into_response(self) -> Response {
        // Headers go straight into the response: a separate `HeaderMap` merged in by axum's
        // tuple responses cost a map and a copy of every header per answer.
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag(self.session.version));
        if self.status == StatusCode::NOT_MODIFIED {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return response;
        }
        if self.minimal {
            headers.insert(PREFERENCE_APPLIED, HeaderValue::from_static("return=minimal"));
            *response.status_mut() = StatusCode::NO_CONTENT;
            return response;
        }
        if self.status == StatusCode::CREATED {
            let location = format!("/v1/sessions/{}", self.session.id);
            headers.insert(header::LOCATION, HeaderValue::try_from(location).expect("a session id is URL-safe"));
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = match &self.answers {
            Some(answers) => answers.answer(self.session),
            None => write(self.session),
        };
        match body {
            Ok(body) => {
                *response.status_mut() = self.status;
                *response.body_mut() = Body::from(body);
                response
            }
            Err(e) => ApiError::Internal(e.into()).into_response(),
        }
    }
}

/// The JSON of `session`, written once into a buffer of about the right size: a session with a
/// few attributes is ~400 bytes, which axum's `Json` reaches by growing from 128 twice.
fn write(session: Arc<Session>) -> Result<Bytes, serde_json::Error> {
    let mut body = Vec::with_capacity(BODY_CAPACITY);
    serde_json::to_writer(&mut body, &SessionBody::from(Arc::unwrap_or_clone(session)))?;
    Ok(Bytes::from(body))
}

/// Session answers as written, by session id: a session read again unchanged is answered with
/// the bytes written the first time. Writing a session's JSON was a fifth of the instructions of
/// a `GET` with four small attributes (callgrind), and grows with the attributes; a lookup costs
/// the same whatever their size.
///
/// An answer is reused only for a session with the same [`Stamp`]: every write to a session
/// bumps its version, and a renewal moves its deadlines, so equal stamps mean equal JSON. A
/// request always reads the session's current state first, so an answer is never served for a
/// session that changed or ended; it stays in memory until evicted, least recently used first,
/// under a budget (`http.json_cache_size`). Like any answer, it holds sealed attributes in
/// clear (`encryption:` seals them in the store, not in the process).
#[derive(Debug)]
pub(crate) struct Answers {
    // Behind an `Arc`: a hit clones what it finds, which is then a count, not a copy.
    cache: Cache<SessionId, Arc<Answer>>,
}

#[derive(Debug)]
struct Answer {
    stamp: Stamp,
    body: Bytes,
}

/// What tells one state of a session from another, besides its id.
#[derive(Debug)]
struct Stamp {
    user: UserId,
    version: Version,
    created_at: Timestamp,
    last_access_at: Timestamp,
    expires_at: Timestamp,
    absolute_expires_at: Timestamp,
    idle_ttl: Duration,
}

impl Stamp {
    fn of(session: &Session) -> Self {
        Stamp {
            user: session.user_id.clone(),
            version: session.version,
            created_at: session.created_at,
            last_access_at: session.last_access_at,
            expires_at: session.expires_at,
            absolute_expires_at: session.absolute_expires_at,
            idle_ttl: session.idle_ttl,
        }
    }

    /// `Stamp::of(session) == self`, without cloning the user id on every hit.
    fn matches(&self, session: &Session) -> bool {
        self.version == session.version
            && self.created_at == session.created_at
            && self.last_access_at == session.last_access_at
            && self.expires_at == session.expires_at
            && self.absolute_expires_at == session.absolute_expires_at
            && self.idle_ttl == session.idle_ttl
            && self.user == session.user_id
    }
}

impl Answers {
    /// Answers holding about `budget` bytes.
    pub(crate) fn new(budget: NonZeroUsize) -> Self {
        Answers { cache: Cache::new(budget) }
    }

    /// The JSON of `session`, as written before or written now (and kept).
    fn answer(&self, session: Arc<Session>) -> Result<Bytes, serde_json::Error> {
        let ticket = match self.cache.get(&session.id) {
            Lookup::Hit(answer) if answer.stamp.matches(&session) => return Ok(answer.body.clone()),
            Lookup::Hit(_) => self.cache.ticket(&session.id),
            Lookup::Miss(ticket) => ticket,
        };
        let (id, stamp) = (session.id.clone(), Stamp::of(&session));
        let body = write(session)?;
        // Counted for the body and the stamp; the cache adds its own bookkeeping.
        let weight = body.len() + std::mem::size_of::<Answer>() + stamp.user.as_ref().len();
        self.cache.fill(&id, ticket, Arc::new(Answer { stamp, body: body.clone() }), weight);
        Ok(body)
    }
}

/// The server's [`Answers`], if it keeps them (`http.json_cache_size` above 0): what a handler
/// takes as `State<SharedAnswers>`.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedAnswers(pub(crate) Option<Arc<Answers>>);

impl FromRef<crate::AppState> for SharedAnswers {
    fn from_ref(state: &crate::AppState) -> Self {
        state.answers.clone()
    }
}

/// The starting size of a session response body.
const BODY_CAPACITY: usize = 512;

/// The strong entity tag of a version: `"7"`.
pub(crate) fn etag(version: Version) -> HeaderValue {
    // Digits written by hand on the stack: `format!` cost an allocation and the formatting
    // machinery on every session answer (callgrind).
    let mut text = [b'"'; 22]; // a quote, the 20 digits of the largest u64, a quote
    let (mut start, mut rest) = (text.len() - 1, version.0);
    loop {
        start -= 1;
        text[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&text[start - 1..]).expect("digits and quotes are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entity_tag_is_the_version_in_quotes() {
        for (version, tag) in [(0, "\"0\""), (7, "\"7\""), (1230, "\"1230\""), (u64::MAX, "\"18446744073709551615\"")] {
            assert_eq!(etag(Version(version)), tag);
        }
    }

    fn answers() -> Answers {
        Answers::new(NonZeroUsize::new(1 << 20).unwrap())
    }

    fn session() -> Session {
        let user: UserId = "alice".parse().unwrap();
        let mut session = Session::new(
            SessionId::generate_for(&user),
            user,
            Timestamp::now(),
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        session.attributes.insert("theme".into(), serde_json::json!("dark"));
        session
    }

    fn json(body: &Bytes) -> serde_json::Value {
        serde_json::from_slice(body).unwrap()
    }

    #[test]
    fn a_session_read_again_unchanged_is_answered_with_the_same_bytes() {
        let (answers, session) = (answers(), session());
        let first = answers.answer(Arc::new(session.clone())).unwrap();
        let again = answers.answer(Arc::new(session.clone())).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr(), "the bytes written the first time, not a copy");
        assert_eq!(first, write(Arc::new(session)).unwrap());
    }

    #[test]
    fn any_change_to_a_session_is_written_anew() {
        let answers = answers();
        let session = session();
        let first = answers.answer(Arc::new(session.clone())).unwrap();

        let mut changed = session.clone();
        changed.attributes.insert("theme".into(), serde_json::json!("light"));
        changed.version = Version(session.version.0 + 1);
        assert_eq!(json(&answers.answer(Arc::new(changed.clone())).unwrap())["attributes"]["theme"], "light");

        let mut renewed = changed.clone();
        renewed.expires_at = renewed.expires_at + Duration::from_secs(5);
        renewed.last_access_at = renewed.last_access_at + Duration::from_secs(5);
        let answer = answers.answer(Arc::new(renewed.clone())).unwrap();
        assert_eq!(answer, write(Arc::new(renewed)).unwrap(), "a renewal moves the deadlines the answer shows");

        // Another session under the same id (a different user, created anew): its own answer.
        let other: UserId = "bob".parse().unwrap();
        let mut recreated = session.clone();
        recreated.user_id = other;
        assert_eq!(json(&answers.answer(Arc::new(recreated)).unwrap())["user_id"], "bob");
        assert_ne!(first, answers.answer(Arc::new(changed)).unwrap());
    }
}
