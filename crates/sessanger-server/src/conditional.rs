//! Conditional requests as RFC 9110 §13 defines them: `If-Match` on writes, `If-None-Match`
//! on reads, against a session's `ETag` (`"7"`: the strong tag of its version).
//!
//! A condition header never makes a request fail as malformed: a tag this server never sends
//! (`"abc"`, a weak tag, garbage) simply matches nothing, so `If-Match` with it answers 412 and
//! `If-None-Match` with it lets the read through, as the RFC wants for tags that do not match.

use std::future::Future;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderName, header, request::Parts},
};
use sessanger_core::{ManagerError, Session, Version};

use crate::error::ApiError;

/// One entity tag of a condition header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntityTag {
    /// `W/"…"`: equivalent content, not the same bytes; `If-Match` never matches it.
    weak: bool,
    /// The version the tag names; `None` for a tag no session of this server carries.
    version: Option<Version>,
}

/// The value of an `If-Match` or `If-None-Match` header, all of its lines taken together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Condition {
    /// No such header.
    #[default]
    Absent,
    /// `*`: any current representation.
    Any,
    /// A list of tags (possibly of tags that match nothing).
    Tags(Vec<EntityTag>),
}

impl Condition {
    fn from_headers(headers: &HeaderMap, name: &HeaderName) -> Condition {
        let mut lines = headers.get_all(name).iter().peekable();
        if lines.peek().is_none() {
            return Condition::Absent;
        }
        let mut tags = Vec::new();
        for line in lines {
            // A value that is not text names no tag of ours.
            let Ok(line) = line.to_str() else { continue };
            if line.trim() == "*" {
                return Condition::Any;
            }
            tags.extend(parse_tags(line));
        }
        Condition::Tags(tags)
    }

    /// The strong comparison of `If-Match`: weak tags never match.
    fn matches_strongly(&self, current: Version) -> bool {
        match self {
            Condition::Absent | Condition::Any => true,
            Condition::Tags(tags) => tags.iter().any(|t| !t.weak && t.version == Some(current)),
        }
    }

    /// The weak comparison of `If-None-Match`: `W/"7"` matches `"7"`.
    fn matches_weakly(&self, current: Version) -> bool {
        match self {
            Condition::Absent => false,
            Condition::Any => true,
            Condition::Tags(tags) => tags.iter().any(|t| t.version == Some(current)),
        }
    }
}

/// The entity tags of one header line: `"7", W/"8"`. Quotes may hold commas. A bare token
/// (`7`, as some clients echo an `ETag`) is read as the strong tag it lost its quotes from.
fn parse_tags(line: &str) -> Vec<EntityTag> {
    let mut tags = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return tags;
        }
        let weak = rest.starts_with("W/");
        if weak {
            rest = &rest[2..];
        }
        let version = if let Some(quoted) = rest.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((opaque, after)) => {
                    rest = after;
                    version_of(opaque)
                }
                // An unclosed quote: the rest of the line is no tag of ours.
                None => {
                    rest = "";
                    None
                }
            }
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let opaque = rest[..end].trim_end();
            rest = &rest[end..];
            version_of(opaque)
        };
        tags.push(EntityTag { weak, version });
    }
}

/// The version an opaque tag names: plain digits (`u64::from_str` would take a `+` too).
fn version_of(opaque: &str) -> Option<Version> {
    if opaque.is_empty() || !opaque.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    opaque.parse().ok().map(Version)
}

/// The `If-Match` header of a write: which versions of the session the client agrees to change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IfMatch(Condition);

/// How many times [`IfMatch::write`] follows a session that moved to another version the
/// condition still admits (only `*` and lists of several tags admit more than one).
const FOLLOW_ATTEMPTS: usize = 8;

impl IfMatch {
    /// Whether the request carries the header at all.
    pub(crate) fn is_present(&self) -> bool {
        self.0 != Condition::Absent
    }

    /// Runs a compare-and-set `write(expected)` so that it applies only to a version this
    /// condition admits. The first attempt expects the one version the client named, or
    /// version 0, which no session ever has (versions start at 1), to learn the current one
    /// from the store's answer without a separate read; the store's own compare-and-set keeps
    /// the whole step atomic. Without the header, or with `*`, any version is admitted.
    pub(crate) async fn write<F, Fut>(&self, mut write: F) -> Result<Session, ApiError>
    where
        F: FnMut(Version) -> Fut,
        Fut: Future<Output = Result<Session, ManagerError>>,
    {
        let named = match &self.0 {
            Condition::Tags(tags) => tags.iter().filter(|t| !t.weak).find_map(|t| t.version),
            Condition::Absent | Condition::Any => None,
        };
        let mut expected = named.unwrap_or(Version(0));
        for _ in 0..FOLLOW_ATTEMPTS {
            match write(expected).await {
                Err(ManagerError::VersionMismatch { current })
                    if current != expected && self.0.matches_strongly(current) =>
                {
                    expected = current;
                }
                outcome => return Ok(outcome?),
            }
        }
        Err(ApiError::VersionMismatch(expected))
    }

    /// The version to compare-and-set against when the client named exactly one strong tag,
    /// `Some(None)` when any version will do; `None` when only [`IfMatch::write`] can tell.
    pub(crate) fn single(&self) -> Option<Option<Version>> {
        match &self.0 {
            Condition::Absent | Condition::Any => Some(None),
            Condition::Tags(tags) => match tags.as_slice() {
                [EntityTag { weak: false, version: Some(version) }] => Some(Some(*version)),
                _ => None,
            },
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfMatch(Condition::from_headers(&parts.headers, &header::IF_MATCH)))
    }
}

/// The `If-None-Match` header of a read: the versions the client already holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IfNoneMatch(Condition);

impl IfNoneMatch {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        IfNoneMatch(Condition::from_headers(headers, &header::IF_NONE_MATCH))
    }

    /// Whether the client's copy is current, so `304 Not Modified` answers the read.
    pub(crate) fn holds(&self, current: Version) -> bool {
        self.0.matches_weakly(current)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn condition(lines: &[&str], name: &HeaderName) -> Condition {
        let mut request = Request::builder();
        for line in lines {
            request = request.header(name, *line);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        Condition::from_headers(&parts.headers, name)
    }

    fn if_match(lines: &[&str]) -> Condition {
        condition(lines, &header::IF_MATCH)
    }

    #[test]
    fn a_strong_tag_of_the_current_version_matches_in_every_form_clients_send() {
        for line in ["\"7\"", "7", " \"7\" ", "\"3\", \"7\"", "\"x,y\", \"7\""] {
            assert!(if_match(&[line]).matches_strongly(Version(7)), "{line}");
        }
        assert!(if_match(&["\"3\"", "\"7\""]).matches_strongly(Version(7)), "lines are one list");
        assert!(if_match(&[" * "]).matches_strongly(Version(7)));
    }

    #[test]
    fn weak_tags_and_tags_no_version_carries_never_match_if_match() {
        for line in
            ["W/\"7\"", "\"anything-not-current\"", "+7", "\"\"", "abc", "\"7", "-1", "\"99999999999999999999\""]
        {
            assert!(!if_match(&[line]).matches_strongly(Version(7)), "{line}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let holds = |line: &str| IfNoneMatch(condition(&[line], &header::IF_NONE_MATCH)).holds(Version(7));
        assert!(holds("W/\"7\""));
        assert!(holds("\"7\""));
        assert!(holds("*"));
        assert!(!holds("\"6\""));
        assert!(!IfNoneMatch::default().holds(Version(7)));
    }

    #[test]
    fn only_one_strong_version_tag_is_a_single_expected_version() {
        assert_eq!(IfMatch(if_match(&["\"7\""])).single(), Some(Some(Version(7))));
        assert_eq!(IfMatch(if_match(&["*"])).single(), Some(None));
        assert_eq!(IfMatch::default().single(), Some(None));
        assert_eq!(IfMatch(if_match(&["\"7\", \"8\""])).single(), None);
        assert_eq!(IfMatch(if_match(&["W/\"7\""])).single(), None);
    }

    #[tokio::test]
    async fn a_write_follows_the_session_only_to_versions_the_condition_admits() {
        let user: sessanger_core::UserId = "alice".parse().unwrap();
        let minute = std::time::Duration::from_secs(60);
        let mut stored = Session::new(
            sessanger_core::SessionId::generate_for(&user),
            user,
            sessanger_core::Timestamp::from_millis(0),
            minute,
            minute,
        );
        stored.version = Version(5);
        // Answers like a store's compare-and-set of a session at version 5.
        let cas = |expected: Version| {
            let stored = stored.clone();
            async move {
                if expected == stored.version {
                    Ok(stored)
                } else {
                    Err(ManagerError::VersionMismatch { current: stored.version })
                }
            }
        };
        let applied = |condition: &[&str]| {
            let condition = IfMatch(if_match(condition));
            async move { condition.write(cas).await.map(|s| s.version) }
        };
        assert_eq!(applied(&["\"4\", \"5\""]).await.unwrap(), Version(5), "followed to a listed version");
        assert_eq!(applied(&["*"]).await.unwrap(), Version(5), "any version");
        assert!(matches!(applied(&["\"4\", \"6\""]).await, Err(ApiError::VersionMismatch(Version(5)))));
        assert!(matches!(applied(&["W/\"5\""]).await, Err(ApiError::VersionMismatch(Version(5)))));
        assert!(matches!(applied(&["\"nope\""]).await, Err(ApiError::VersionMismatch(Version(5)))));
    }
}
