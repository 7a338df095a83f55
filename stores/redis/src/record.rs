//! A session as the fields of a Redis hash, and back.
//!
//! Metadata fields have one-letter names; each attribute is its own field, `a:<key>`, holding
//! the value as JSON. One field per attribute is what makes a patch field-level: scripts set,
//! delete and `HINCRBY` single fields and never rewrite the others.

use std::time::Duration;

use redis::Value;
use sessanger_core::{Attributes, Device, ServiceId, Session, SessionId, StoreError, Timestamp, UserId, Version};

/// The prefix of attribute fields; metadata field names never start with it.
pub(crate) const ATTRIBUTE: &str = "a:";

/// The hash fields of a new session, as `field, value, field, value, ...`.
pub(crate) fn encode(session: &Session) -> Result<Vec<String>, StoreError> {
    let mut fields = vec![
        "u".to_owned(),
        session.user_id.to_string(),
        "c".to_owned(),
        session.created_at.as_millis().to_string(),
        "l".to_owned(),
        session.last_access_at.as_millis().to_string(),
        "i".to_owned(),
        millis(session.idle_ttl).to_string(),
        "x".to_owned(),
        session.absolute_expires_at.as_millis().to_string(),
        "e".to_owned(),
        session.expires_at.as_millis().to_string(),
        "v".to_owned(),
        session.version.0.to_string(),
        "d".to_owned(),
        json(&session.device)?,
    ];
    if let Some(service) = &session.created_by {
        fields.extend(["b".to_owned(), service.to_string()]);
    }
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
    #[error("field `{0}` is missing from the stored session")]
    Missing(&'static str),
    #[error("field `{0}` of the stored session is invalid")]
    Invalid(String),
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
        Value::Map(pairs) => pairs.into_iter().map(|(k, v)| Ok((text(k)?, text(v)?))).collect::<Result<Vec<_>, _>>()?,
        other => {
            let flat = items(other)?;
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((text(k)?, text(v)?));
            }
            pairs
        }
    };
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut fields = Fields::default();
    for (field, value) in pairs {
        match field.strip_prefix(ATTRIBUTE) {
            Some(key) => {
                let value = serde_json::from_str(&value).map_err(|e| StoreError::Decode(e.into()))?;
                fields.attributes.insert(key.to_owned(), value);
            }
            None => fields.meta.push((field, value)),
        }
    }
    fields.into_session(id).map(Some)
}

#[derive(Default)]
struct Fields {
    meta: Vec<(String, String)>,
    attributes: Attributes,
}

impl Fields {
    fn get(&self, name: &'static str) -> Option<&str> {
        self.meta.iter().find(|(f, _)| f == name).map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &'static str) -> Result<&str, StoreError> {
        self.get(name).ok_or_else(|| malformed(Malformed::Missing(name)))
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str) -> Result<T, StoreError> {
        self.required(name)?.parse().map_err(|_| malformed(Malformed::Invalid(name.to_owned())))
    }

    fn time(&self, name: &'static str) -> Result<Timestamp, StoreError> {
        self.number(name).map(Timestamp::from_millis)
    }

    fn into_session(self, id: SessionId) -> Result<Session, StoreError> {
        let invalid = |name: &str| malformed(Malformed::Invalid(name.to_owned()));
        let user_id: UserId = self.required("u")?.parse().map_err(|_| invalid("u"))?;
        let device: Device = serde_json::from_str(self.required("d")?).map_err(|e| StoreError::Decode(e.into()))?;
        let created_by = match self.get("b") {
            Some(b) => Some(b.parse::<ServiceId>().map_err(|_| invalid("b"))?),
            None => None,
        };
        Ok(Session {
            id,
            user_id,
            device,
            created_by,
            created_at: self.time("c")?,
            last_access_at: self.time("l")?,
            idle_ttl: Duration::from_millis(self.number("i")?),
            absolute_expires_at: self.time("x")?,
            expires_at: self.time("e")?,
            version: Version(self.number("v")?),
            attributes: self.attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_session_survives_encoding_as_hash_fields() {
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
        s.attributes.insert("a:nested key".into(), json!({"x": [1, null, "y"]}));
        s.attributes.insert("n".into(), json!(-9_007_199_254_740_993_i64));
        let fields = encode(&s).unwrap();
        let reply = Value::Array(fields.iter().map(|f| bulk(f)).collect());
        assert_eq!(decode(s.id.clone(), reply).unwrap(), Some(s));
    }

    #[test]
    fn an_empty_hash_is_no_session_and_a_broken_one_is_a_decode_error() {
        assert_eq!(decode(SessionId::generate(), Value::Array(vec![])).unwrap(), None);
        let broken = Value::Array(vec![bulk("u"), bulk("bob"), bulk("c"), bulk("yesterday")]);
        assert!(matches!(decode(SessionId::generate(), broken), Err(StoreError::Decode(_))));
        let bad_json = Value::Array(vec![bulk("a:k"), bulk("{not json")]);
        assert!(matches!(decode(SessionId::generate(), bad_json), Err(StoreError::Decode(_))));
    }
}
