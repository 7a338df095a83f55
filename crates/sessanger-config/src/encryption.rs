//! `encryption:`: which attribute values are sealed at rest, and with which keys.
//!
//! The section only describes; the binary maps it onto `sessanger-store-encrypted`'s key ring
//! (`Keyring::from_spec`, which parses `keys`) and selection, and wraps the store. The key ring
//! text is parsed there, in one place, so a malformed key is reported when the store is opened
//! (and by `sessanger config check`, which opens the key ring without opening a store).
//!
//! ```yaml
//! encryption:
//!   keys: "${SESSANGER_ENCRYPTION_KEYS}"   # kid1:<base64 of 32 bytes>,kid2:<base64 of 32 bytes>
//!   active_key: kid2                       # new values are sealed with this one
//!   attributes: [access_token, refresh_token]
//!   # or every attribute but counters, which must stay plain to be incremented:
//!   # attributes: all
//!   # except: [visits]
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, de};

use super::{de::text, validate::Failure};

/// `encryption:`: attribute encryption at rest. Debug hides the key material.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of encryption settings")]
#[non_exhaustive]
pub struct EncryptionConfig {
    /// The key ring (`keys`): comma-separated `key_id:base64_key` pairs, each key 32 bytes.
    /// A secret: write it as `"${SESSANGER_ENCRYPTION_KEYS}"` rather than in the file.
    #[serde(deserialize_with = "text")]
    pub keys: String,
    /// The id of the key new values are sealed with (`active_key`); the others still open the
    /// values they sealed, so keys rotate without rewriting sessions.
    #[serde(deserialize_with = "text")]
    pub active_key: String,
    /// Which attributes are sealed (`attributes`): `all`, or a list of attribute keys.
    pub attributes: EncryptedAttributes,
    /// Attribute keys left plain although `attributes: all` (`except`), such as counters that
    /// clients increment: an encrypted value cannot be incremented.
    #[serde(default)]
    pub except: Vec<String>,
}

impl fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionConfig")
            .field("keys", &"<redacted>")
            .field("active_key", &self.active_key)
            .field("attributes", &self.attributes)
            .field("except", &self.except)
            .finish()
    }
}

/// `encryption.attributes`: `all`, or the attribute keys to seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncryptedAttributes {
    /// Every attribute (`all`), less `encryption.except`.
    All,
    /// Only these attribute keys (`[access_token, refresh_token]`).
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for EncryptedAttributes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttributesVisitor;

        impl<'de> de::Visitor<'de> for AttributesVisitor {
            type Value = EncryptedAttributes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all` or a list of attribute keys")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "all" => Ok(EncryptedAttributes::All),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let keys = Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(EncryptedAttributes::Only(keys))
            }
        }

        deserializer.deserialize_any(AttributesVisitor)
    }
}

/// The checks `encryption:` needs beyond its types.
pub(super) fn check(encryption: &EncryptionConfig) -> Result<(), Failure> {
    let fail = |path: &str, message: &str| Err((format!("encryption.{path}"), message.to_owned()));
    if encryption.keys.trim().is_empty() {
        return fail("keys", "must list at least one key as `key_id:base64_key`");
    }
    if encryption.active_key.trim().is_empty() {
        return fail("active_key", "must name one of the key ids in encryption.keys");
    }
    if let EncryptedAttributes::Only(keys) = &encryption.attributes {
        if keys.is_empty() {
            return fail("attributes", "lists no attribute; write `all` or remove the encryption section");
        }
        if !encryption.except.is_empty() {
            return fail("except", "only applies with `attributes: all`");
        }
        if keys.iter().any(String::is_empty) {
            return fail("attributes", "an attribute key must not be empty");
        }
    }
    if encryption.except.iter().any(String::is_empty) {
        return fail("except", "an attribute key must not be empty");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ConfigError, Format};

    const KEYS: &str =
        "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,k2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    fn yaml(text: &str) -> Result<Config, ConfigError> {
        let env = |name: &str| (name == "SESSANGER_ENCRYPTION_KEYS").then(|| KEYS.to_owned());
        Config::parse_with_env(text, Format::Yaml, "config.yaml", env)
    }

    fn encryption(text: &str) -> EncryptionConfig {
        yaml(text).unwrap_or_else(|e| panic!("{e}")).encryption.expect("an encryption section")
    }

    #[test]
    fn encryption_is_off_unless_configured() {
        assert_eq!(yaml("").unwrap().encryption, None);
        assert_eq!(yaml("encryption:\n").unwrap().encryption, None);
    }

    #[test]
    fn a_list_of_attributes_reads_keys_from_the_environment() {
        let e = encryption(
            "encryption:\n  keys: \"${SESSANGER_ENCRYPTION_KEYS}\"\n  active_key: k2\n  \
             attributes: [access_token, refresh_token]\n",
        );
        assert_eq!(e.keys, KEYS);
        assert_eq!(e.active_key, "k2");
        assert_eq!(e.attributes, EncryptedAttributes::Only(vec!["access_token".into(), "refresh_token".into()]));
        assert!(e.except.is_empty());
    }

    #[test]
    fn all_attributes_may_leave_some_plain() {
        let e = encryption("encryption: {keys: 'k1:x', active_key: 1, attributes: all, except: [visits, n]}");
        assert_eq!(e.attributes, EncryptedAttributes::All);
        assert_eq!(e.except, ["visits", "n"]);
        assert_eq!(e.active_key, "1", "a key id written as a number is text");
    }

    #[test]
    fn debug_output_hides_the_key_material() {
        let e = encryption("encryption: {keys: '${SESSANGER_ENCRYPTION_KEYS}', active_key: k1, attributes: all}");
        let debug = format!("{e:?}");
        assert!(debug.contains("<redacted>") && debug.contains("k1"), "{debug}");
        assert!(!debug.contains("AAAA") && !debug.contains("AQEB"), "{debug}");
    }

    #[test]
    fn encryption_errors_name_file_line_and_key() {
        let error = |text: &str| yaml(text).unwrap_err().to_string();
        let err = error("encryption:\n  keys: k1:x\n  active_key: k1\n  attributes: some\n");
        assert!(err.starts_with("config.yaml:4:15: encryption.attributes: invalid value: string \"some\""), "{err}");
        let err = error("encryption:\n  keys: k1:x\n  active: k1\n");
        assert!(err.starts_with("config.yaml:3:3: encryption: unknown field `active`"), "{err}");
        let err = error("encryption:\n  active_key: k1\n  attributes: all\n");
        assert!(err.starts_with("config.yaml:2:3: encryption: missing field `keys`"), "{err}");
        let err = error("encryption: {keys: '${ENCRYPTION_KEYS}', active_key: k1, attributes: all}");
        assert!(err.starts_with("config.yaml:1:21: environment variable `ENCRYPTION_KEYS` is not set"), "{err}");
    }

    #[test]
    fn inconsistent_encryption_settings_are_refused() {
        let error = |text: &str| yaml(text).unwrap_err().to_string();
        assert_eq!(
            error("encryption: {keys: k1:x, active_key: k1, attributes: [a], except: [b]}"),
            "config.yaml: encryption.except: only applies with `attributes: all`"
        );
        assert_eq!(
            error("encryption: {keys: k1:x, active_key: k1, attributes: []}"),
            "config.yaml: encryption.attributes: lists no attribute; write `all` or remove the encryption section"
        );
        assert_eq!(
            error("encryption: {keys: '', active_key: k1, attributes: all}"),
            "config.yaml: encryption.keys: must list at least one key as `key_id:base64_key`"
        );
    }
}
