//! A session as the fields of a Redis hash, and back.
//!
//! Two kinds of field: `m`, the metadata packed in one value, and one field per attribute,
//! `a:<key>`, holding the value as JSON. One field per attribute is what makes a patch
//! field-level: scripts set, delete and `HINCRBY` single fields and never rewrite the others.
//! The metadata is one field because a read parses every field and value of the reply: packed,
//! a session with 4 attributes is 10 values instead of 26, and its hash is smaller.
//!
//! `m` is `e,v,l,c,i,x` — the deadline, version, last access, creation, idle TTL and absolute
//! deadline, decimal integers (ms) — then, each after a newline, the user id, the creating
//! service (empty if none) and the device as JSON. Neither a user id nor a service id holds a
//! control character, and the device is last, so the newlines are unambiguous. The scripts
//! read and write it with the same layout (`scripts.rs`, `meta` and `store_meta`).

use std::time::Duration;

use redis::Value;
use sessanger_core::{Attributes, Device, ServiceId, Session, SessionId, StoreError, Timestamp, UserId, Version};

/// The prefix of attribute fields.
pub(crate) const ATTRIBUTE: &str = "a:";

/// The metadata field.
pub(crate) const META: &str = "m";

/// The hash fields of a new session, as `field, value, field, value, ...`.
pub(crate) fn encode(session: &Session) -> Result<Vec<String>, StoreError> {
    let creator = session.created_by.as_ref().map_or("", ServiceId::as_ref);
    let meta = format!(
        "{},{},{},{},{},{}\n{}\n{creator}\n{}",
        session.expires_at.as_millis(),
        session.version.0,
        session.last_access_at.as_millis(),
        session.created_at.as_millis(),
        millis(session.idle_ttl),
        session.absolute_expires_at.as_millis(),
        session.user_id,
        json(&session.device)?,
    );
    let mut fields = vec![META.to_owned(), meta];
    fields.extend(attributes(&session.attributes)?);
    Ok(fields)
}

/// Attributes as `a:<key>, <JSON>, ...` pairs.
pub(crate) fn attributes(attributes: &Attributes) -> Result<Vec<String>, StoreError> {
    let mut fields = Vec::with_capacity(attributes.len() * 2);
    for (key, value) in attributes {
        fields.push(attribute(key));
        fields.push(json(value)?);
    }
    Ok(fields)
}

/// The hash field of attribute `key`.
pub(crate) fn attribute(key: &str) -> String {
    format!("{ATTRIBUTE}{key}")
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode(e.into()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Why a reply could not be read as what the store wrote.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Malformed {
    #[error("the stored session has no metadata field")]
    Missing,
    #[error("the metadata of the stored session is invalid: {0}")]
    Invalid(&'static str),
    #[error("unexpected reply from a script: {0:?}")]
    Reply(Value),
}

pub(crate) fn malformed(error: Malformed) -> StoreError {
    StoreError::Decode(error.into())
}

/// The text of a bulk or simple string reply.
pub(crate) fn text(value: Value) -> Result<String, StoreError> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|e| StoreError::Decode(e.into())),
        Value::SimpleString(s) => Ok(s),
        Value::Okay => Ok("OK".to_owned()),
        other => Err(malformed(Malformed::Reply(other))),
    }
}

/// The items of an array reply; `nil` counts as empty.
pub(crate) fn items(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(malformed(Malformed::Reply(other))),
    }
}

/// A script's `{status, rest...}` reply, split.
pub(crate) fn status(value: Value) -> Result<(String, std::vec::IntoIter<Value>), StoreError> {
    let mut items = items(value)?.into_iter();
    let status = text(items.next().ok_or_else(|| malformed(Malformed::Reply(Value::Nil)))?)?;
    Ok((status, items))
}

/// The session `id` from its hash fields (an `HGETALL` reply); `None` if the hash is empty.
pub(crate) fn decode(id: SessionId, value: Value) -> Result<Option<Session>, StoreError> {
    let pairs = match value {
        Value::Map(pairs) => pairs,
        other => {
            let mut flat = items(other)?.into_iter();
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            pairs
        }
    };
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut meta = None;
    let mut attributes = Attributes::new();
    for (field, value) in pairs {
        let (field, value) = (text(field)?, text(value)?);
        match field.strip_prefix(ATTRIBUTE) {
            Some(key) => {
                let value = serde_json::from_str(&value).map_err(|e| StoreError::Decode(e.into()))?;
                attributes.insert(key.to_owned(), value);
            }
            None if field == META => meta = Some(value),
            // A field this version does not know: written by a newer one, left alone.
            None => {}
        }
    }
    let meta = meta.ok_or_else(|| malformed(Malformed::Missing))?;
    session(id, &meta, attributes).map(Some)
}

/// The session from its metadata field and attributes.
fn session(id: SessionId, meta: &str, attributes: Attributes) -> Result<Session, StoreError> {
    let invalid = |what| malformed(Malformed::Invalid(what));
    let mut lines = meta.splitn(4, '\n');
    let mut numbers = lines.next().unwrap_or_default().split(',').map(|n| n.parse::<i64>().ok());
    let mut number = |what| numbers.next().flatten().ok_or_else(|| invalid(what));
    let (expires_at, version, last_access_at) = (number("deadline")?, number("version")?, number("last access")?);
    let (created_at, idle_ttl, absolute_expires_at) =
        (number("creation")?, number("idle TTL")?, number("absolute deadline")?);
    let version = u64::try_from(version).map_err(|_| invalid("version"))?;
    let idle_ttl = u64::try_from(idle_ttl).map_err(|_| invalid("idle TTL"))?;
    let user_id: UserId = lines.next().and_then(|u| u.parse().ok()).ok_or_else(|| invalid("user"))?;
    let created_by = match lines.next().ok_or_else(|| invalid("creator"))? {
        "" => None,
        b => Some(b.parse::<ServiceId>().map_err(|_| invalid("creator"))?),
    };
    let device: Device = serde_json::from_str(lines.next().ok_or_else(|| invalid("device"))?)
        .map_err(|e| StoreError::Decode(e.into()))?;
    Ok(Session {
        id,
        user_id,
        device,
        created_by,
        created_at: Timestamp::from_millis(created_at),
        last_access_at: Timestamp::from_millis(last_access_at),
        idle_ttl: Duration::from_millis(idle_ttl),
        absolute_expires_at: Timestamp::from_millis(absolute_expires_at),
        expires_at: Timestamp::from_millis(expires_at),
        version: Version(version),
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_session_survives_encoding_as_hash_fields_with_and_without_a_creator() {
        let user: UserId = "ünïcode user".parse().unwrap();
        let mut s = Session::new(
            SessionId::generate_for(&user),
            user,
            Timestamp::from_millis(1_763_900_000_123),
            Duration::from_secs(600),
            Duration::from_secs(3600),
        );
        s.created_by = Some("web".parse().unwrap());
        s.device.ip = Some("192.0.2.1".into());
        s.device.user_agent = Some("line\nbreak, comma\\n".into());
        s.attributes.insert("a:nested key".into(), json!({"x": [1, null, "y"]}));
        s.attributes.insert("n".into(), json!(-9_007_199_254_740_993_i64));
        for created_by in [Some("web".parse().unwrap()), None] {
            s.created_by = created_by;
            let fields = encode(&s).unwrap();
            assert_eq!(fields.len(), 2 + 2 * s.attributes.len());
            let reply = Value::Array(fields.iter().map(|f| bulk(f)).collect());
            assert_eq!(decode(s.id.clone(), reply).unwrap(), Some(s.clone()));
        }
    }

    #[test]
    fn an_empty_hash_is_no_session_and_a_broken_one_is_a_decode_error() {
        assert_eq!(decode(SessionId::generate(), Value::Array(vec![])).unwrap(), None);
        let good_meta = "2,1,1,1,1,3\nbob\n\n{}";
        assert!(decode(SessionId::generate(), Value::Array(vec![bulk("m"), bulk(good_meta)])).unwrap().is_some());
        for broken in [
            vec![bulk("a:k"), bulk("1")],
            vec![bulk("m"), bulk("2,1,1,1,1\nbob\n\n{}")],
            vec![bulk("m"), bulk("2,1,1,1,1,yesterday\nbob\n\n{}")],
            vec![bulk("m"), bulk("2,1,1,1,1,3\nbob\n")],
            vec![bulk("m"), bulk("2,1,1,1,1,3\nbob\nNot A Service\n{}")],
            vec![bulk("m"), bulk(good_meta), bulk("a:k"), bulk("{not json")],
        ] {
            let reply = Value::Array(broken.clone());
            assert!(matches!(decode(SessionId::generate(), reply), Err(StoreError::Decode(_))), "{broken:?}");
        }
    }
}
