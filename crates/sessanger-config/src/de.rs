//! Lenient scalar readers for the config file: the forms people write by hand (`password: 123`,
//! `ttl: 30m`, `body_limit: 1MiB`) mean what they look like, whatever the format.

use std::{collections::BTreeMap, fmt, time::Duration};

use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, MapAccess, SeqAccess, Unexpected, Visitor},
};

/// Text that may have been written as a number: `password: 123` reads as `"123"`.
///
/// YAML resolves an unquoted `123` to an integer before we see it, so integers are printed back
/// in decimal. Forms YAML rewrites (`0x1F`, `+5`) cannot be recovered and must be quoted;
/// leading zeros (`0123`) stay text in YAML 1.2, so they survive. Fractions are refused rather
/// than reprinted, because `1.50` would silently become `1.5`.
#[derive(Debug)]
pub(crate) struct Text(pub(crate) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl Visitor<'_> for TextVisitor {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Err(E::custom(format_args!("the number {v} is not an integer; quote it to keep it exactly as written")))
            }
        }

        deserializer.deserialize_any(TextVisitor)
    }
}

/// A required string field that accepts numbers (see [`Text`]).
pub(crate) fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Text::deserialize(deserializer).map(|t| t.0)
}

/// An optional string field that accepts numbers; empty text counts as absent, so
/// `${VAR:-}` can leave the key unset.
pub(crate) fn optional_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Text>::deserialize(deserializer)?.map(|t| t.0).filter(|s| !s.is_empty()))
}

/// A list of lenient [`Text`]s.
pub(crate) fn texts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<Text>::deserialize(deserializer)?.into_iter().map(|t| t.0).collect())
}

/// A section written as `session:` with nothing under it (every key commented out) is the
/// default section, not a type error.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A duration: whole seconds (`90`, `"90"`) or humantime text (`30m`, `24h`, `1h 30m`).
pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration (seconds like 90, or text like 30m, 24h, 1h 30m)")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v).map(Duration::from_secs).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }
    }

    deserializer.deserialize_any(DurationVisitor)
}

/// A duration as [`duration`] reads it, or nothing.
pub(crate) fn optional_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "duration")] Duration);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(d)| d))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed.parse().map(Duration::from_secs).map_err(|_| format!("invalid duration {text:?}: too large"));
    }
    humantime::parse_duration(trimmed)
        .map_err(|e| format!("invalid duration {text:?}: {e} (write seconds like 90, or text like 30m, 24h, 1h 30m)"))
}

/// A size in bytes: an integer (`1048576`) or a number with a unit (`512KiB`, `1MiB`, `1MB`).
pub(crate) fn byte_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = usize;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size (bytes like 65536, or text like 512KiB, 1MiB, 1MB)")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
            parse_byte_size(v).map_err(E::custom)
        }
    }

    deserializer.deserialize_any(SizeVisitor)
}

fn parse_byte_size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {text:?} (write bytes like 65536, or a whole number with B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    digits.parse::<u64>().ok().and_then(|n| n.checked_mul(multiplier)).and_then(|n| usize::try_from(n).ok()).ok_or_else(
        || format!("invalid size {text:?} (write bytes like 65536, or a whole number with a unit like 1MiB)"),
    )
}

/// `broker.routing_keys`: routing key → user names, both lenient [`Text`]. A key written twice
/// is an error here, where the location of the second one is still known.
pub(crate) fn routing_keys<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    struct TableVisitor;

    impl<'de> Visitor<'de> for TableVisitor {
        type Value = BTreeMap<String, Vec<String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from routing key to a list of user names")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut table = BTreeMap::new();
            while let Some(Text(key)) = map.next_key()? {
                let users = map.next_value_seed(Users { key: &key, duplicate: table.contains_key(&key) })?;
                table.insert(key, users);
            }
            Ok(table)
        }
    }

    deserializer.deserialize_any(TableVisitor)
}

/// The user list of one routing key. A duplicate key is refused from inside the list's own
/// deserialization, because parsers attach the location of the value being read to an error:
/// raised from the map, it would point at the table's first key.
struct Users<'a> {
    key: &'a str,
    duplicate: bool,
}

impl<'de> DeserializeSeed<'de> for Users<'_> {
    type Value = Vec<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<String>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Users<'_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of user names")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        if self.duplicate {
            return Err(de::Error::custom(format_args!("routing key `{}` is written twice", self.key)));
        }
        let mut users = Vec::with_capacity(seq.size_hint().unwrap_or(1));
        while let Some(Text(user)) = seq.next_element()? {
            users.push(user);
        }
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_seconds_and_humantime_text() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30days"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("abc").unwrap_err().starts_with("invalid duration \"abc\": "));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_read_bytes_and_binary_or_decimal_units() {
        assert_eq!(parse_byte_size("65536"), Ok(65_536));
        assert_eq!(parse_byte_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_byte_size("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_byte_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_byte_size("2gib"), Ok(2 << 30));
        assert!(parse_byte_size("1.5MiB").is_err());
        assert!(parse_byte_size("MiB").is_err());
        assert!(parse_byte_size("1 parsec").is_err());
    }
}
