//! A session as the fields of a Redis hash, and back.
//!
//! Metadata fields have one-letter names: `m`, the times and version packed in one value,
//! `u` the user, then the creating service (if any) after a `\x1f`, `d` the device as JSON (if
//! it says anything). The creator takes a field of its own, `b`, only when user and creator
//! together pass the 64 bytes that keep the hash a listpack; in `u` it costs a read two values
//! fewer to parse (records written before it was folded in still read). Neither a user id nor a
//! service id holds a control character. Each attribute is its own field, `a:<key>`, holding
//! the value as JSON. One field per attribute is what makes a patch field-level: scripts set,
//! delete and `HINCRBY` single fields and never rewrite the others.
//!
//! `m` is `c,e,l,x,i,v`: the creation time, then the deadline, last access and absolute
//! deadline counted from it, the idle TTL, all in ms, and the version, in hexadecimal — so that
//! a read parses 8 values fewer than with a field each, and the value stays under Redis's
//! `hash-max-listpack-value` ([`LISTPACK_VALUE`], even for a session that lives for years): one
//! longer value turns the whole hash into a hash table, several times larger. The scripts read
//! and write it with the same layout (`scripts.rs`: `meta`, `store_meta`; `meta` also reads the
//! user from `u`).
//!
//! `s`, written by the patch script only, is `n,b` in hexadecimal: the number of attributes
//! and the sum of their sizes in compact JSON, so the session cap is checked in O(patch); a
//! record without it (a new one, or one replaced whole) is measured once by its next patch.
//! Reading a session ignores it.

use std::time::Duration;

use redis::Value;
use sessanger_core::{Attributes, Device, ServiceId, Session, SessionId, StoreError, Timestamp, UserId, Version};

/// The prefix of attribute fields.
pub(crate) const ATTRIBUTE: &str = "a:";

/// Between the user and the creator in field `u`.
const CREATOR: &str = "\x1f";

/// Redis's default `hash-max-listpack-value`: a hash with a longer value is a hash table,
/// several times the size of the listpack.
const LISTPACK_VALUE: usize = 64;

/// The hash fields of a new session, as `field, value, field, value, ...`.
pub(crate) fn encode(session: &Session) -> Result<Vec<String>, StoreError> {
    let created = session.created_at.as_millis();
    let since = |t: Timestamp| t.as_millis().saturating_sub(created);
    let numbers = [
        created,
        since(session.expires_at),
        since(session.last_access_at),
        since(session.absolute_expires_at),
        i64::try_from(millis(session.idle_ttl)).unwrap_or(i64::MAX),
        i64::try_from(session.version.0).unwrap_or(i64::MAX),
    ];
    let meta = numbers.map(hex).join(",");
    let user: &str = session.user_id.as_ref();
    let mut fields = vec!["m".to_owned(), meta];
    match &session.created_by {
        Some(service) if user.len() + CREATOR.len() + service.as_ref().len() <= LISTPACK_VALUE => {
            fields.extend(["u".to_owned(), [user, CREATOR, service.as_ref()].concat()]);
        }
        Some(service) => fields.extend(["u".to_owned(), user.to_owned(), "b".to_owned(), service.to_string()]),
        None => fields.extend(["u".to_owned(), user.to_owned()]),
    }
    // A device that says nothing is left out: an absent `d` reads as one, and every read of
    // the record then parses two values fewer (the scripts that merge device fields start from
    // `{}` when it is absent).
    if session.device != Device::default() {
        fields.extend(["d".to_owned(), json(&session.device)?]);
    }
    fields.extend(attributes(&session.attributes)?);
    Ok(fields)
}

/// `n` in hexadecimal, as the scripts' `hex` writes it.
fn hex(n: i64) -> String {
    if n < 0 { format!("-{:x}", n.unsigned_abs()) } else { format!("{n:x}") }
}

/// What [`hex`] wrote, back. Digits folded by hand up to 15 of them, which cannot overflow:
/// `from_str_radix` was about a tenth of decoding a record (callgrind), and parses the rest.
fn unhex(s: &[u8]) -> Option<i64> {
    let (sign, digits) = s.strip_prefix(b"-").map_or((1, s), |digits| (-1, digits));
    if !(1..=15).contains(&digits.len()) {
        return i64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok();
    }
    let mut n = 0_i64;
    for &digit in digits {
        n = n << 4 | i64::from(char::from(digit).to_digit(16)?);
    }
    Some(sign * n)
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

/// The field-value pairs of an `HGETALL` reply: a map in RESP3, a flat array in RESP2.
pub(crate) fn pairs(value: Value) -> Result<Vec<(Value, Value)>, StoreError> {
    Ok(match value {
        Value::Map(pairs) => pairs,
        other => {
            let mut flat = items(other)?.into_iter();
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            pairs
        }
    })
}

/// About how many bytes a reply's strings hold: what its decoded form costs in memory, for the
/// node cache's budget.
pub(crate) fn size(value: &Value) -> usize {
    match value {
        Value::BulkString(bytes) => bytes.len(),
        Value::SimpleString(text) => text.len(),
        Value::Array(items) | Value::Set(items) => items.iter().map(size).sum(),
        Value::Map(pairs) => pairs.iter().map(|(k, v)| size(k) + size(v)).sum(),
        _ => 8,
    }
}

/// A script's `{status, rest...}` reply, split.
pub(crate) fn status(value: Value) -> Result<(String, std::vec::IntoIter<Value>), StoreError> {
    let mut items = items(value)?.into_iter();
    let status = text(items.next().ok_or_else(|| malformed(Malformed::Reply(Value::Nil)))?)?;
    Ok((status, items))
}

/// The session `id` from its hash fields: an `HGETALL` reply, or a script's packed record (each
/// field and value followed by a NUL: `packed` in `scripts.rs`); `None` if there are none.
pub(crate) fn decode(id: SessionId, value: Value) -> Result<Option<Session>, StoreError> {
    // Bytes, not text, until a value is used: attribute values go to the JSON parser, which
    // checks their UTF-8 itself, and checking it first as well was a tenth of a decode.
    match value {
        Value::BulkString(packed) => {
            let packed = packed.strip_suffix(b"\0").unwrap_or(&packed);
            // `split` yields one empty part for an empty record; it has no fields.
            let mut parts = packed.split(|&b| b == 0).filter(|_| !packed.is_empty());
            let mut fields = Vec::with_capacity(16);
            while let Some(field) = parts.next() {
                let value =
                    parts.next().ok_or_else(|| malformed(Malformed::Invalid("a packed field without a value")))?;
                fields.push((field, value));
            }
            from_fields(id, fields)
        }
        // `HGETALL`: a flat array in RESP2, a map in RESP3; read in place, not copied.
        Value::Array(flat) => {
            from_fields(id, flat.chunks_exact(2).map(|pair| pair_bytes(&pair[0], &pair[1])).collect::<Result<_, _>>()?)
        }
        Value::Map(pairs) => {
            from_fields(id, pairs.iter().map(|(field, value)| pair_bytes(field, value)).collect::<Result<_, _>>()?)
        }
        Value::Nil => Ok(None),
        other => Err(malformed(Malformed::Reply(other))),
    }
}

/// A field and its value, borrowed from the reply.
fn pair_bytes<'a>(field: &'a Value, value: &'a Value) -> Result<(&'a [u8], &'a [u8]), StoreError> {
    let bytes = |value: &'a Value| match value {
        Value::BulkString(bytes) => Ok(bytes.as_slice()),
        Value::SimpleString(text) => Ok(text.as_bytes()),
        other => Err(malformed(Malformed::Reply(other.clone()))),
    };
    Ok((bytes(field)?, bytes(value)?))
}

fn from_fields(id: SessionId, fields: Vec<(&[u8], &[u8])>) -> Result<Option<Session>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let mut meta = Meta::default();
    let mut attributes = Attributes::new();
    let text = |bytes| std::str::from_utf8(bytes).map_err(|e| StoreError::Decode(e.into()));
    for (field, value) in fields {
        if let Some(key) = field.strip_prefix(ATTRIBUTE.as_bytes()) {
            let value = serde_json::from_slice(value).map_err(|e| StoreError::Decode(e.into()))?;
            attributes.insert(text(key)?.to_owned(), value);
            continue;
        }
        match field {
            b"m" => meta.times = Some(text(value)?),
            b"u" => {
                let user = text(value)?;
                match user.split_once(CREATOR) {
                    Some((user, creator)) => (meta.user, meta.creator) = (Some(user), Some(creator)),
                    None => meta.user = Some(user),
                }
            }
            b"b" => meta.creator = Some(text(value)?),
            b"d" => meta.device = Some(value),
            // A field this version does not know: written by a newer one, left alone.
            _ => {}
        }
    }
    meta.into_session(id, attributes).map(Some)
}

/// The metadata fields of a record, as read.
#[derive(Default)]
struct Meta<'a> {
    times: Option<&'a str>,
    user: Option<&'a str>,
    creator: Option<&'a str>,
    device: Option<&'a [u8]>,
}

impl Meta<'_> {
    fn into_session(self, id: SessionId, attributes: Attributes) -> Result<Session, StoreError> {
        let invalid = |what| malformed(Malformed::Invalid(what));
        let missing = |what| malformed(Malformed::Missing(what));
        let times = self.times.ok_or_else(|| missing("m"))?;
        // Split as bytes: `str::split` on a char cost a tenth of decoding a record (callgrind).
        let mut numbers = times.as_bytes().split(|&b| b == b',').map(unhex);
        let mut number = |what| numbers.next().flatten().ok_or_else(|| invalid(what));
        let created_at = number("creation")?;
        let mut since =
            |what| number(what)?.checked_add(created_at).map(Timestamp::from_millis).ok_or_else(|| invalid(what));
        let (expires_at, last_access_at, absolute_expires_at) =
            (since("deadline")?, since("last access")?, since("absolute deadline")?);
        let idle_ttl = u64::try_from(number("idle TTL")?).map_err(|_| invalid("idle TTL"))?;
        let version = u64::try_from(number("version")?).map_err(|_| invalid("version"))?;
        let user_id: UserId = self.user.ok_or_else(|| missing("u"))?.parse().map_err(|_| invalid("u"))?;
        let created_by = match self.creator {
            Some(b) => Some(b.parse::<ServiceId>().map_err(|_| invalid("b"))?),
            None => None,
        };
        let device = match self.device {
            Some(device) => serde_json::from_slice(device).map_err(|e| StoreError::Decode(e.into()))?,
            None => Device::default(),
        };
        Ok(Session {
            id,
            user_id,
            device,
            created_by,
            created_at: Timestamp::from_millis(created_at),
            last_access_at,
            idle_ttl: Duration::from_millis(idle_ttl),
            absolute_expires_at,
            expires_at,
            version: Version(version),
            attributes,
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
        let web: ServiceId = "web".parse().unwrap();
        // A user and creator that fit one listpack value share `u`; longer ones do not.
        let long: UserId = "ü".repeat(31).parse().unwrap();
        for (user, created_by, device, fields_b) in [
            (s.user_id.clone(), Some(web.clone()), s.device.clone(), 0),
            (s.user_id.clone(), None, Device::default(), 0),
            (long, Some(web), Device::default(), 1),
        ] {
            (s.user_id, s.created_by, s.device) = (user, created_by, device);
            let fields = encode(&s).unwrap();
            let metadata = 2 + fields_b + usize::from(s.device != Device::default());
            assert_eq!(fields.len(), 2 * (metadata + s.attributes.len()), "{fields:?}");
            assert!(fields.iter().all(|f| f.len() <= LISTPACK_VALUE), "{fields:?}");
            let reply = Value::Array(fields.iter().map(|f| bulk(f)).collect());
            assert_eq!(decode(s.id.clone(), reply).unwrap(), Some(s.clone()));
            // As a script packs it: each field and value followed by a NUL.
            let packed = fields.iter().map(|f| format!("{f}\0")).collect::<String>();
            assert_eq!(decode(s.id.clone(), bulk(&packed)).unwrap(), Some(s.clone()));
        }
    }

    #[test]
    fn an_empty_hash_is_no_session_and_a_broken_one_is_a_decode_error() {
        assert_eq!(decode(SessionId::generate(), Value::Array(vec![])).unwrap(), None);
        let good = || vec![bulk("m"), bulk("2,1,1,1,1,3"), bulk("u"), bulk("bob"), bulk("d"), bulk("{}")];
        assert!(decode(SessionId::generate(), Value::Array(good())).unwrap().is_some());
        // Without `d` (a device that says nothing is not written), as in RESP3's map.
        let map = Value::Map(good()[..4].chunks(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect());
        assert_eq!(decode(SessionId::generate(), map).unwrap().unwrap().device, Device::default());
        let with = |field: &str, value: &str| {
            let mut fields = good();
            match fields.iter().position(|f| *f == bulk(field)) {
                Some(at) => fields[at + 1] = bulk(value),
                None => fields.extend([bulk(field), bulk(value)]),
            }
            fields
        };
        for broken in [
            good()[2..].to_vec(),
            with("m", "2,1,1,1,1"),
            with("m", "2,1,1,1,1,yesterday"),
            with("m", "2,1,1,1,-1,3"),
            with("m", "7fffffffffffffff,1,1,1,1,3"),
            with("u", ""),
            with("d", "{not json"),
            with("b", "Not A Service"),
            with("a:k", "{not json"),
        ] {
            let reply = Value::Array(broken.clone());
            assert!(matches!(decode(SessionId::generate(), reply), Err(StoreError::Decode(_))), "{broken:?}");
        }
        let odd = "m\x002,1,1,1,1,3\0u\0bob\0d\0";
        assert!(
            matches!(decode(SessionId::generate(), bulk(odd)), Err(StoreError::Decode(_))),
            "a field without a value"
        );
    }

    #[test]
    fn the_times_field_stays_short_for_long_lived_sessions() {
        let user: UserId = "u".parse().unwrap();
        let year = Duration::from_secs(365 * 24 * 3600);
        let mut s = Session::new(SessionId::generate_for(&user), user, Timestamp::now(), year, 5 * year);
        s.touch(Timestamp::now() + year);
        s.version = Version(1_000_000_000);
        let fields = encode(&s).unwrap();
        assert!(fields[1].len() <= LISTPACK_VALUE, "{} is {} bytes", fields[1], fields[1].len());
        for n in [0, 1, -1, 255, -256, 0xfff_ffff_ffff_ffff, -0x1000_0000_0000_0000, i64::MAX, i64::MIN + 1] {
            assert_eq!(unhex(hex(n).as_bytes()), Some(n), "{n}");
            assert_eq!(i64::from_str_radix(&hex(n), 16), Ok(n), "{n}");
        }
        for bad in ["", "-", "g", "1g", "--1", "+1", " 1", "1,", "10000000000000000"] {
            assert_eq!(unhex(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
