//! How a [`Session`] is stored: a compact binary record, one version byte first.
//!
//! Reading a record is the whole cost of `load` once the lookup is inline, and JSON spends
//! most of it parsing the four RFC 3339 timestamps and the field names. The binary record
//! keeps the fixed fields as little-endian integers and length-prefixed strings; only the
//! attributes (any JSON, the caller's data) stay JSON.
//!
//! | bytes | field |
//! |---|---|
//! | 1 | [`BINARY_V1`] |
//! | 8 × 6 | `created_at`, `last_access_at`, `absolute_expires_at`, `expires_at` (ms, `i64`), `idle_ttl` (ms, `u64`), `version` (`u64`) |
//! | string | id |
//! | string | user id |
//! | opt. string × 4 | `created_by`, `device.device_id`, `device.ip`, `device.user_agent` |
//! | rest | the attributes as a JSON object |
//!
//! A string is its length (`u32`, little-endian) then its UTF-8 bytes; an optional string is
//! one byte (0 none, 1 some) then, if some, the string.
//!
//! Records written by earlier versions are JSON objects and start with `{` (or whitespace),
//! never with [`BINARY_V1`]: [`decode_session`] reads both, so existing data directories keep
//! working and are rewritten in the new format as their sessions are written.

use std::time::Duration;

use sessanger_core::{Attributes, Device, Session, StoreError, Timestamp, Version};

/// The first byte of a binary session record, format 1.
pub(crate) const BINARY_V1: u8 = 1;

/// The session as stored: [`BINARY_V1`] and the binary record.
pub(crate) fn encode_session(session: &Session) -> Result<Vec<u8>, StoreError> {
    // Destructured in full, so a field added to `Session` fails to compile here instead of
    // being silently dropped from the store.
    let Session {
        id,
        user_id,
        device: Device { device_id, ip, user_agent },
        created_by,
        created_at,
        last_access_at,
        idle_ttl,
        absolute_expires_at,
        expires_at,
        attributes,
        version,
    } = session;
    let mut out = Vec::with_capacity(160);
    out.push(BINARY_V1);
    for ms in [created_at, last_access_at, absolute_expires_at, expires_at] {
        out.extend_from_slice(&ms.as_millis().to_le_bytes());
    }
    let idle_ms = u64::try_from(idle_ttl.as_millis()).unwrap_or(u64::MAX);
    out.extend_from_slice(&idle_ms.to_le_bytes());
    out.extend_from_slice(&version.0.to_le_bytes());
    put_str(&mut out, id.as_ref())?;
    put_str(&mut out, user_id.as_ref())?;
    for field in [created_by.as_ref().map(AsRef::as_ref), device_id.as_deref(), ip.as_deref(), user_agent.as_deref()] {
        match field {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                put_str(&mut out, s)?;
            }
        }
    }
    serde_json::to_writer(&mut out, attributes).map_err(|e| StoreError::Encode(e.into()))?;
    Ok(out)
}

/// A stored session: a binary record, or JSON as earlier versions wrote it.
pub(crate) fn decode_session(bytes: &[u8]) -> Result<Session, StoreError> {
    match bytes.split_first() {
        Some((&BINARY_V1, rest)) => Reader(rest).session().map_err(|e| StoreError::Decode(e.into())),
        _ => serde_json::from_slice(bytes).map_err(|e| StoreError::Decode(e.into())),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), StoreError> {
    let len = u32::try_from(s.len()).map_err(|_| StoreError::Encode("a string longer than 4 GiB".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Why a binary record did not decode.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error("the session record is truncated")]
    Truncated,
    #[error("the session record holds a string that is not UTF-8")]
    Utf8,
    #[error("the session record holds an invalid identifier: {0}")]
    Id(#[from] sessanger_core::IdError),
    #[error("the session record's attributes do not decode: {0}")]
    Attributes(#[from] serde_json::Error),
}

/// Reads a binary record front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(RecordError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        self.take().map(i64::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        self.take().map(u64::from_le_bytes)
    }

    fn str(&mut self) -> Result<&'a str, RecordError> {
        let len = u32::from_le_bytes(self.take()?) as usize;
        if self.0.len() < len {
            return Err(RecordError::Truncated);
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(s).map_err(|_| RecordError::Utf8)
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>, RecordError> {
        match self.take::<1>()? {
            [0] => Ok(None),
            _ => self.str().map(Some),
        }
    }

    fn session(mut self) -> Result<Session, RecordError> {
        let created_at = Timestamp::from_millis(self.i64()?);
        let last_access_at = Timestamp::from_millis(self.i64()?);
        let absolute_expires_at = Timestamp::from_millis(self.i64()?);
        let expires_at = Timestamp::from_millis(self.i64()?);
        let idle_ttl = Duration::from_millis(self.u64()?);
        let version = Version(self.u64()?);
        let id = self.str()?.parse()?;
        let user_id = self.str()?.parse()?;
        let created_by = self.opt_str()?.map(str::parse).transpose()?;
        let device = Device {
            device_id: self.opt_str()?.map(str::to_owned),
            ip: self.opt_str()?.map(str::to_owned),
            user_agent: self.opt_str()?.map(str::to_owned),
        };
        let attributes: Attributes = serde_json::from_slice(self.0)?;
        Ok(Session {
            id,
            user_id,
            device,
            created_by,
            created_at,
            last_access_at,
            idle_ttl,
            absolute_expires_at,
            expires_at,
            attributes,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sessanger_core::{SessionId, UserId};

    use super::*;

    fn session() -> Session {
        let user: UserId = "alice@example.com".parse().unwrap();
        let mut s = Session::new(
            SessionId::generate_for(&user),
            user,
            Timestamp::from_millis(1_763_900_000_123),
            Duration::from_secs(1800),
            Duration::from_secs(30 * 24 * 3600),
        );
        s.attributes.insert("role".into(), json!("admin"));
        s.attributes.insert("cart".into(), json!({"deep": [1, 2.5, null]}));
        s.version = Version(7);
        s
    }

    #[test]
    fn binary_records_round_trip() {
        let mut s = session();
        assert_eq!(decode_session(&encode_session(&s).unwrap()).unwrap(), s);
        s.created_by = Some("web".parse().unwrap());
        s.device = Device { device_id: Some("phone".into()), ip: None, user_agent: Some("ü-agent".into()) };
        s.attributes.clear();
        assert_eq!(decode_session(&encode_session(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn json_records_of_earlier_versions_still_decode() {
        let s = session();
        assert_eq!(decode_session(&serde_json::to_vec(&s).unwrap()).unwrap(), s);
        assert_eq!(decode_session(&serde_json::to_vec_pretty(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn damaged_records_are_decode_errors() {
        let bytes = encode_session(&session()).unwrap();
        for cut in [1, 20, 60, bytes.len() - 1] {
            assert!(matches!(decode_session(&bytes[..cut]), Err(StoreError::Decode(_))), "cut at {cut}");
        }
        assert!(matches!(decode_session(b""), Err(StoreError::Decode(_))));
        assert!(matches!(decode_session(b"\xffnot json"), Err(StoreError::Decode(_))));
    }
}
