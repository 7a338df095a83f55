//! How sessions and services are laid out as BSON documents, and how attribute keys and JSON
//! values cross into BSON and back (see the crate's `# Layout`).

use mongodb::bson::{Bson, DateTime, Document, doc};
use serde_json::{Map, Number, Value};
use sessanger_core::{
    Attributes, Device, Permission, ServiceRecord, Session, SessionId, SessionRef, StoreError, Timestamp, UserId,
    Version,
};

/// Field names of a session document. Kept in one place: filters, updates and indexes name
/// the same fields as the encoder.
pub(crate) mod field {
    pub(crate) const ID: &str = "_id";
    pub(crate) const USER_ID: &str = "user_id";
    pub(crate) const DEVICE: &str = "device";
    pub(crate) const CREATED_BY: &str = "created_by";
    pub(crate) const CREATED_AT: &str = "created_at";
    pub(crate) const LAST_ACCESS_AT: &str = "last_access_at";
    pub(crate) const IDLE_TTL_MS: &str = "idle_ttl_ms";
    pub(crate) const ABSOLUTE_EXPIRES_AT: &str = "absolute_expires_at";
    pub(crate) const EXPIRES_AT: &str = "expires_at";
    pub(crate) const ATTRIBUTES: &str = "attributes";
    pub(crate) const VERSION: &str = "version";
}

/// The marker of a JSON integer above `i64::MAX`, which BSON has no type for: stored as
/// `{"%u64": "<decimal>"}`. No escaped key can equal it: an escape is `%` and two hex digits.
const U64_MARKER: &str = "%u64";

/// An attribute key (or a key of a JSON object nested in a value) as a BSON field name.
///
/// MongoDB reads `.` in an update path as nesting and a leading `$` as an operator, and BSON
/// forbids NUL, so `%`, `.`, `$` and NUL are percent-encoded (`%25`, `%2E`, `%24`, `%00`); every
/// other character stays as it is, so stored keys stay readable. The empty key (which
/// [`Limits`](sessanger_core::Limits) already refuses) becomes a lone `%`, which no escape
/// produces, so every key round-trips.
///
/// ```text
/// theme        -> theme
/// key.0 $x 5%  -> key%2E0 %24x 5%25
/// ```
pub(crate) fn escape_key(key: &str) -> String {
    if key.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '$' => out.push_str("%24"),
            '\0' => out.push_str("%00"),
            c => out.push(c),
        }
    }
    out
}

/// The key [`escape_key`] was given; `None` for a field name it cannot have produced.
pub(crate) fn unescape_key(field: &str) -> Option<String> {
    if field == "%" {
        return Some(String::new());
    }
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3)?;
        out.push(match escape {
            "%25" => '%',
            "%2E" => '.',
            "%24" => '$',
            "%00" => '\0',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The path of one attribute inside a session document: `attributes.<escaped key>`.
pub(crate) fn attribute_path(key: &str) -> String {
    format!("{}.{}", field::ATTRIBUTES, escape_key(key))
}

/// A JSON value as BSON: integers as Int64 (so `$inc` works on them), other numbers as
/// doubles, objects with escaped keys, and integers above `i64::MAX` under [`U64_MARKER`].
pub(crate) fn to_bson(value: &Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Bson::Int64(i),
            (None, Some(u), _) => Bson::Document(doc! { U64_MARKER: u.to_string() }),
            (None, None, Some(f)) => Bson::Double(f),
            // serde_json without `arbitrary_precision` always yields one of the three.
            (None, None, None) => Bson::Null,
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(to_bson).collect()),
        Value::Object(map) => Bson::Document(object_to_document(map)),
    }
}

/// A JSON object as a document with escaped keys.
pub(crate) fn object_to_document(map: &Map<String, Value>) -> Document {
    map.iter().map(|(k, v)| (escape_key(k), to_bson(v))).collect()
}

/// The JSON value [`to_bson`] stored; refuses BSON types it never writes.
pub(crate) fn from_bson(value: &Bson) -> Result<Value, StoreError> {
    Ok(match value {
        Bson::Null => Value::Null,
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Int32(i) => Value::from(*i),
        Bson::Int64(i) => Value::from(*i),
        Bson::Double(f) => Number::from_f64(*f).map(Value::Number).ok_or_else(|| malformed("a non-finite double"))?,
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(items) => Value::Array(items.iter().map(from_bson).collect::<Result<_, _>>()?),
        Bson::Document(d) => match d.get_str(U64_MARKER) {
            Ok(digits) if d.len() == 1 => {
                Value::from(digits.parse::<u64>().map_err(|_| malformed("a bad %u64 marker"))?)
            }
            _ => Value::Object(document_to_object(d)?),
        },
        other => return Err(malformed(&format!("an attribute of BSON type {:?}", other.element_type()))),
    })
}

/// A document with escaped keys as a JSON object.
pub(crate) fn document_to_object(document: &Document) -> Result<Map<String, Value>, StoreError> {
    document
        .iter()
        .map(|(k, v)| {
            let key = unescape_key(k).ok_or_else(|| malformed(&format!("the badly escaped key `{k}`")))?;
            Ok((key, from_bson(v)?))
        })
        .collect()
}

/// A timestamp as a BSON date: both are milliseconds since the Unix epoch, so nothing is lost.
pub(crate) fn date(t: Timestamp) -> DateTime {
    DateTime::from_millis(t.as_millis())
}

/// The device as a sub-document; absent fields are left out.
pub(crate) fn device_document(device: &Device) -> Document {
    let mut d = Document::new();
    for (name, value) in [("device_id", &device.device_id), ("ip", &device.ip), ("user_agent", &device.user_agent)] {
        if let Some(value) = value {
            d.insert(name, value.clone());
        }
    }
    d
}

/// A session as the document [`decode_session`] reads back.
pub(crate) fn encode_session(session: &Session) -> Document {
    let mut d = doc! {
        field::ID: session.id.as_ref(),
        field::USER_ID: session.user_id.as_ref(),
        field::DEVICE: device_document(&session.device),
        field::CREATED_AT: date(session.created_at),
        field::LAST_ACCESS_AT: date(session.last_access_at),
        field::IDLE_TTL_MS: i64::try_from(session.idle_ttl.as_millis()).unwrap_or(i64::MAX),
        field::ABSOLUTE_EXPIRES_AT: date(session.absolute_expires_at),
        field::EXPIRES_AT: date(session.expires_at),
        field::ATTRIBUTES: object_to_document(&session.attributes),
        field::VERSION: i64::try_from(session.version.0).unwrap_or(i64::MAX),
    };
    if let Some(creator) = &session.created_by {
        d.insert(field::CREATED_BY, creator.as_ref());
    }
    d
}

/// A stored session document as a [`Session`].
pub(crate) fn decode_session(d: &Document) -> Result<Session, StoreError> {
    let text = |name: &str| d.get_str(name).map_err(|_| missing(name));
    let timestamp = |name: &str| {
        d.get_datetime(name).map(|t| Timestamp::from_millis(t.timestamp_millis())).map_err(|_| missing(name))
    };
    let device = match d.get_document(field::DEVICE) {
        Ok(device) => Device {
            device_id: device.get_str("device_id").ok().map(str::to_owned),
            ip: device.get_str("ip").ok().map(str::to_owned),
            user_agent: device.get_str("user_agent").ok().map(str::to_owned),
        },
        Err(_) => Device::default(),
    };
    let created_by = match d.get_str(field::CREATED_BY) {
        Ok(creator) => Some(creator.parse().map_err(|e| StoreError::Decode(Box::new(e)))?),
        Err(_) => None,
    };
    let attributes: Attributes = match d.get_document(field::ATTRIBUTES) {
        Ok(attributes) => document_to_object(attributes)?,
        Err(_) => Attributes::new(),
    };
    let idle_ms = integer(d, field::IDLE_TTL_MS)?;
    let version = integer(d, field::VERSION)?;
    Ok(Session {
        id: parse_id(text(field::ID)?)?,
        user_id: parse_user(text(field::USER_ID)?)?,
        device,
        created_by,
        created_at: timestamp(field::CREATED_AT)?,
        last_access_at: timestamp(field::LAST_ACCESS_AT)?,
        idle_ttl: std::time::Duration::from_millis(u64::try_from(idle_ms).map_err(|_| missing(field::IDLE_TTL_MS))?),
        absolute_expires_at: timestamp(field::ABSOLUTE_EXPIRES_AT)?,
        expires_at: timestamp(field::EXPIRES_AT)?,
        attributes,
        version: Version(u64::try_from(version).map_err(|_| missing(field::VERSION))?),
    })
}

/// The id and user of a session document (as a `delete_expired` projection returns it).
pub(crate) fn decode_ref(d: &Document) -> Result<SessionRef, StoreError> {
    Ok(SessionRef {
        id: parse_id(d.get_str(field::ID).map_err(|_| missing(field::ID))?)?,
        user_id: parse_user(d.get_str(field::USER_ID).map_err(|_| missing(field::USER_ID))?)?,
    })
}

/// A service as `{_id, name, permissions, secret_sha256, created_at}`.
pub(crate) fn encode_service(service: &ServiceRecord) -> Document {
    let permissions: Vec<&str> = service.permissions.iter().map(|p| p.as_str()).collect();
    doc! {
        "_id": service.id.as_ref(),
        "name": &service.name,
        "permissions": permissions,
        "secret_sha256": &service.secret_sha256,
        "created_at": date(service.created_at),
    }
}

/// A stored service document as a [`ServiceRecord`].
pub(crate) fn decode_service(d: &Document) -> Result<ServiceRecord, StoreError> {
    let text = |name: &str| d.get_str(name).map_err(|_| missing(name));
    let permissions = d
        .get_array("permissions")
        .map_err(|_| missing("permissions"))?
        .iter()
        .map(|p| {
            let name = p.as_str().ok_or_else(|| missing("permissions"))?;
            name.parse::<Permission>().map_err(|e| StoreError::Decode(Box::new(e)))
        })
        .collect::<Result<_, _>>()?;
    Ok(ServiceRecord {
        id: text("_id")?.parse().map_err(|e| StoreError::Decode(Box::new(e)))?,
        name: text("name")?.to_owned(),
        permissions,
        secret_sha256: text("secret_sha256")?.to_owned(),
        created_at: Timestamp::from_millis(
            d.get_datetime("created_at").map_err(|_| missing("created_at"))?.timestamp_millis(),
        ),
    })
}

/// An integer field written as Int64 (Int32 accepted too: a shell may have edited it).
fn integer(d: &Document, name: &str) -> Result<i64, StoreError> {
    match d.get(name) {
        Some(Bson::Int64(i)) => Ok(*i),
        Some(Bson::Int32(i)) => Ok(i64::from(*i)),
        _ => Err(missing(name)),
    }
}

pub(crate) fn parse_id(text: &str) -> Result<SessionId, StoreError> {
    text.parse().map_err(|e| StoreError::Decode(Box::new(e)))
}

fn parse_user(text: &str) -> Result<UserId, StoreError> {
    text.parse().map_err(|e| StoreError::Decode(Box::new(e)))
}

/// A stored document this version cannot read.
#[derive(Debug, thiserror::Error)]
#[error("malformed stored document: {0}")]
pub(crate) struct Malformed(String);

fn malformed(what: &str) -> StoreError {
    StoreError::Decode(Box::new(Malformed(what.to_owned())))
}

fn missing(name: &str) -> StoreError {
    malformed(&format!("field `{name}` is missing or of the wrong type"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn escaped_keys_hold_no_dot_dollar_or_nul_and_round_trip() {
        for key in ["theme", "key.0 with space/and:colon", "$where", "a.b.c", "100%", "%2E", "%", "nul\0byte", "", "ü✓"]
        {
            let escaped = escape_key(key);
            assert!(!escaped.contains(['.', '$', '\0']), "{escaped}");
            assert!(!escaped.is_empty());
            assert_eq!(unescape_key(&escaped).as_deref(), Some(key), "{key:?} -> {escaped}");
        }
        assert_eq!(escape_key("key.0 $x 5%"), "key%2E0 %24x 5%25");
    }

    #[test]
    fn unescaping_refuses_what_escaping_never_writes() {
        assert_eq!(unescape_key("a%2"), None);
        assert_eq!(unescape_key("a%41"), None);
        assert_eq!(unescape_key("%u64"), None);
    }

    #[test]
    fn attribute_paths_nest_exactly_one_level_under_attributes() {
        assert_eq!(attribute_path("a.b"), "attributes.a%2Eb");
        assert_eq!(attribute_path("$set"), "attributes.%24set");
    }

    #[test]
    fn any_json_value_round_trips_through_bson() {
        for value in [
            json!(null),
            json!(true),
            json!(-9_007_199_254_740_993_i64),
            json!(u64::MAX),
            json!(1.5e300),
            json!(1.0),
            json!("ünïcødé \u{1F600} \"quoted\" \\ back $notAnOperator"),
            json!([1, [2, [3]], {"a": null}]),
            json!({"nested": {"de.ep": {"$deeper": [true, false]}}, "%u64": "not a marker"}),
            json!({"%u64": "5", "other": 1}),
            json!(""),
        ] {
            assert_eq!(from_bson(&to_bson(&value)).unwrap(), value, "{value}");
        }
    }

    #[test]
    fn integers_are_stored_as_int64_so_inc_applies_to_them() {
        assert_eq!(to_bson(&json!(7)), Bson::Int64(7));
        assert_eq!(to_bson(&json!(7.5)), Bson::Double(7.5));
        assert_eq!(to_bson(&json!(u64::MAX)), Bson::Document(doc! {"%u64": "18446744073709551615"}));
    }

    #[test]
    fn bson_types_never_written_are_refused_as_decode_errors() {
        let err = from_bson(&Bson::DateTime(DateTime::from_millis(0))).unwrap_err();
        assert!(matches!(err, StoreError::Decode(_)));
        let err = document_to_object(&doc! {"bad%escape": 1}).unwrap_err();
        assert!(matches!(err, StoreError::Decode(_)));
    }

    fn sample() -> Session {
        let user: UserId = "alice".parse().unwrap();
        let mut s = Session::new(
            SessionId::generate_for(&user),
            user,
            Timestamp::from_millis(1_763_900_000_123),
            Duration::from_secs(600),
            Duration::from_secs(3600),
        );
        s.attributes.insert("role.name".into(), json!("admin"));
        s.attributes.insert("n".into(), json!(3));
        s.device.ip = Some("192.0.2.1".into());
        s.created_by = Some("web".parse().unwrap());
        s
    }

    #[test]
    fn a_session_document_has_exactly_the_documented_shape() {
        let s = sample();
        let d = encode_session(&s);
        let expected = doc! {
            "_id": s.id.as_ref(),
            "user_id": "alice",
            "device": {"ip": "192.0.2.1"},
            "created_at": DateTime::from_millis(1_763_900_000_123),
            "last_access_at": DateTime::from_millis(1_763_900_000_123),
            "idle_ttl_ms": 600_000_i64,
            "absolute_expires_at": DateTime::from_millis(1_763_903_600_123),
            "expires_at": DateTime::from_millis(1_763_900_600_123),
            "attributes": {"n": 3_i64, "role%2Ename": "admin"},
            "version": 1_i64,
            "created_by": "web",
        };
        assert_eq!(d, expected);
    }

    #[test]
    fn sessions_round_trip_through_their_document() {
        let s = sample();
        assert_eq!(decode_session(&encode_session(&s)).unwrap(), s);
    }

    #[test]
    fn a_document_missing_a_field_is_a_decode_error() {
        let mut d = encode_session(&sample());
        d.remove("expires_at");
        assert!(matches!(decode_session(&d), Err(StoreError::Decode(_))));
    }

    #[test]
    fn services_round_trip_through_their_document() {
        let (record, _) = ServiceRecord::issue(
            "billing".parse().unwrap(),
            "Billing",
            vec![Permission::Write, Permission::Read],
            Timestamp::from_millis(5),
        );
        let d = encode_service(&record);
        assert_eq!(d.get_str("_id").unwrap(), "billing");
        assert_eq!(decode_service(&d).unwrap(), record);
    }
}
