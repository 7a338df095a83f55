//! Time as the contract sees it: milliseconds since the Unix epoch, read from a [`Clock`].
//!
//! Every expiry check takes `now` as an argument, so tests move a [`ManualClock`] instead of
//! sleeping.

use std::{
    fmt,
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod rfc3339;

/// An instant, in whole milliseconds since the Unix epoch (UTC).
///
/// Serialized as RFC 3339 with milliseconds (`2026-11-23T12:00:00.000Z`).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sessanger_core::Timestamp;
///
/// let t = Timestamp::from_millis(0) + Duration::from_secs(90);
/// assert_eq!(t.to_string(), "1970-01-01T00:01:30.000Z");
/// assert_eq!(t.as_millis(), 90_000);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The latest representable instant; used as "never".
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// Time left until `self`, seen from `now`; zero once past.
    pub fn saturating_since(self, now: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(now.0)).unwrap_or(0))
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }
}

impl Timestamp {
    /// The RFC 3339 text, in a buffer of its own; `None` from year 10000 on.
    fn rfc3339(self) -> Option<[u8; rfc3339::LEN]> {
        let ms = u64::try_from(self.0).unwrap_or(0);
        rfc3339::format(ms / 1000, (ms % 1000) as u32)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.rfc3339().ok_or(fmt::Error)?;
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.rfc3339().ok_or_else(|| serde::ser::Error::custom("a timestamp past year 9999"))?;
        s.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let (seconds, nanos) = rfc3339::parse(&s).map_err(serde::de::Error::custom)?;
        let ms = u128::from(seconds) * 1000 + u128::from(nanos / 1_000_000);
        Ok(Timestamp(i64::try_from(ms).map_err(serde::de::Error::custom)?))
    }
}

/// A source of the current time.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to: expiry tests advance it instead of sleeping.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sessanger_core::{Clock, ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_millis(1_000));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(clock.now(), Timestamp::from_millis(2_000));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.0))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_json() {
        let t = Timestamp::from_millis(1_763_900_000_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    /// Every form written and read is the one the wire has always had (humantime's RFC 3339,
    /// which the wire format was first defined with).
    #[test]
    fn text_forms_match_humantime_exactly() {
        let mut ms: u64 = 0;
        while ms < 253_402_300_800_000 {
            let t = Timestamp::from_millis(ms as i64);
            let expected = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string();
            assert_eq!(t.to_string(), expected);
            ms += 7_777_777_777;
        }
        assert!(std::panic::catch_unwind(|| Timestamp::MAX.to_string()).is_err(), "year 10000 has no text");
        for text in [
            "2018-02-14T00:28:07Z",
            "2018-02-14 00:28:07",
            "2018-02-14T00:28:07.1234567891Z",
            "2018-02-14T00:28:07+00:00",
            "2018-02-14T00:28:07.5+05:30",
            "2018-02-14T00:28:07Zjunk",
            "2018-02-14T00:28:07Zmuch-more-junk",
            "2018-02-14T00:28:60Z",
            "2018-02-14T00:28:61Z",
            "2016-02-29T23:59:59.999Z",
            "2018-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999Z",
            "2018-13-01T00:00:00Z",
            "2018-00-01T00:00:00Z",
            "2018-02-14T24:00:00Z",
            "2018-02-14T00:60:00Z",
            "2018-02-14T00:28:07.Z",
            "2018-02-14T00:28:07.",
            "2018-02-14T00:28:07.1x",
            "2018-02-14T00:28:07.1Z1",
            "2018-02-14X00:28:07Z",
            "2018-2-14T00:28:07Z",
            "2018-02-14T00:28",
            "abcd-02-14T00:28:07Z",
            "",
            "2018-02-14T00:28:07.12+",
            "2018-02-14T00:28:07+01:00",
        ] {
            let ours = rfc3339::parse(text).map_err(|e| e.to_string());
            let theirs = humantime::parse_rfc3339_weak(text)
                .map(|t| {
                    let d = t.duration_since(UNIX_EPOCH).unwrap();
                    (d.as_secs(), d.subsec_nanos())
                })
                .map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{text}");
        }
    }
}
