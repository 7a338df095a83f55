//! Registered services: who may use sessanger, with which permissions, proven by a secret.
//!
//! A service's token is `<service id>.<secret>`; the secret is 256 bits from the OS CSPRNG,
//! shown once when the service is registered. Only its SHA-256 is stored: a fast hash is
//! enough because the secret is high-entropy (no dictionary to try), and verification
//! compares digests in constant time.

use std::{fmt, str::FromStr};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ServiceId, Timestamp};

/// What a service may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read sessions and statistics.
    Read,
    /// Create, change and delete sessions.
    Write,
    /// Manage services.
    Admin,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 3] = [Permission::Read, Permission::Write, Permission::Admin];

    /// The permission's name as written in tokens, config and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `read`, `write` or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission `{0}` (expected read, write or admin)")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s.trim()).ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

/// A service as stored: never its secret, only the secret's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The service's id, also the first part of its token.
    pub id: ServiceId,
    /// A human-readable name.
    pub name: String,
    /// What the service may do.
    pub permissions: Vec<Permission>,
    /// SHA-256 of the secret, base64url.
    pub secret_sha256: String,
    /// When the service was registered.
    pub created_at: Timestamp,
}

impl ServiceRecord {
    /// Registers a new service: draws its secret and returns the record to store together
    /// with the token to hand out once.
    ///
    /// # Examples
    /// ```
    /// use sessanger_core::{Permission, ServiceRecord, Timestamp};
    ///
    /// let (record, token) = ServiceRecord::issue(
    ///     "billing".parse().unwrap(), "Billing", vec![Permission::Read], Timestamp::now());
    /// assert!(token.expose().starts_with("billing."));
    /// assert!(record.verify(&token));
    /// assert!(!record.secret_sha256.contains(token.expose().split('.').nth(1).unwrap()));
    /// ```
    pub fn issue(
        id: ServiceId,
        name: impl Into<String>,
        mut permissions: Vec<Permission>,
        now: Timestamp,
    ) -> (ServiceRecord, ServiceToken) {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source must be readable");
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        permissions.sort();
        permissions.dedup();
        let record = ServiceRecord {
            secret_sha256: digest(&secret),
            id: id.clone(),
            name: name.into(),
            permissions,
            created_at: now,
        };
        (record, ServiceToken { service: id, secret })
    }

    /// Whether `token` is this service's, comparing digests in constant time.
    pub fn verify(&self, token: &ServiceToken) -> bool {
        token.service == self.id && digest(&token.secret).as_bytes().ct_eq(self.secret_sha256.as_bytes()).into()
    }

    /// Whether the service holds `permission`; `admin` implies every other.
    pub fn allows(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission) || self.permissions.contains(&Permission::Admin)
    }
}

fn digest(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// The secrets that verified, by service, so a service's next request is checked by one
/// constant-time comparison instead of a SHA-256 and its encoding (more than a tenth of a
/// session read's CPU).
///
/// As safe as hashing each time: a presented secret is compared in constant time with one
/// that matched the stored digest, and only while the stored digest is still the one it
/// matched (a service registered again with a new secret starts over). The secrets kept are
/// those clients send with every request anyway; they stay in this process's memory and are
/// never written anywhere.
///
/// Found on every request by an id the client names, so hashed with a seed drawn at random
/// (foldhash, as the node cache).
#[derive(Debug, Default)]
pub(crate) struct VerifiedSecrets(
    std::sync::Mutex<std::collections::HashMap<ServiceId, Verified, foldhash::quality::RandomState>>,
);

struct Verified {
    secret: String,
    digest: String,
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verified { .. }")
    }
}

impl VerifiedSecrets {
    /// Whether `token` is `record`'s: [`ServiceRecord::verify`], remembered.
    pub(crate) fn verify(&self, record: &ServiceRecord, token: &ServiceToken) -> bool {
        if token.service != record.id {
            return false;
        }
        {
            let verified = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(known) = verified.get(&record.id)
                && known.digest == record.secret_sha256
                && bool::from(known.secret.as_bytes().ct_eq(token.secret.as_bytes()))
            {
                return true;
            }
        }
        if !record.verify(token) {
            return false;
        }
        let known = Verified { secret: token.secret.clone(), digest: record.secret_sha256.clone() };
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(record.id.clone(), known);
        true
    }
}

/// A service's bearer token, `<service id>.<secret>`. Its `Debug` hides the secret.
///
/// # Validation
/// ```
/// use sessanger_core::ServiceToken;
///
/// assert!("billing.c2VjcmV0".parse::<ServiceToken>().is_ok());
/// assert!("no-dot".parse::<ServiceToken>().is_err());
/// assert!("BAD ID.secret".parse::<ServiceToken>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceToken {
    service: ServiceId,
    secret: String,
}

impl ServiceToken {
    /// The service the token claims to be.
    pub fn service(&self) -> &ServiceId {
        &self.service
    }

    /// The whole token, to print once or send in `Authorization: Bearer`.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.service, self.secret)
    }
}

impl fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceToken").field("service", &self.service).finish_non_exhaustive()
    }
}

/// A string that is not `<service id>.<secret>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a service token is `<service id>.<secret>`")]
pub struct MalformedToken;

impl FromStr for ServiceToken {
    type Err = MalformedToken;
    fn from_str(s: &str) -> Result<Self, MalformedToken> {
        let (service, secret) = s.split_once('.').ok_or(MalformedToken)?;
        let service = service.parse().map_err(|_| MalformedToken)?;
        if secret.is_empty() || secret.len() > 128 {
            return Err(MalformedToken);
        }
        Ok(ServiceToken { service, secret: secret.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_secret_verifies_until_the_service_changes_its_secret() {
        let (record, token) =
            ServiceRecord::issue("web".parse().unwrap(), "Web", vec![Permission::Read], Timestamp::now());
        let verified = VerifiedSecrets::default();
        let wrong: ServiceToken = format!("web.{}", "x".repeat(43)).parse().unwrap();
        assert!(!verified.verify(&record, &wrong));
        assert!(verified.verify(&record, &token));
        assert!(verified.verify(&record, &token), "remembered");
        assert!(!verified.verify(&record, &wrong), "a wrong secret stays wrong once one verified");
        let (again, new_token) =
            ServiceRecord::issue("web".parse().unwrap(), "Web", vec![Permission::Read], Timestamp::now());
        assert!(!verified.verify(&again, &token), "the old secret of a service registered again");
        assert!(verified.verify(&again, &new_token));
        let (other, _) = ServiceRecord::issue("api".parse().unwrap(), "Api", vec![Permission::Read], Timestamp::now());
        assert!(!verified.verify(&other, &new_token), "another service's record");
    }

    #[test]
    fn a_wrong_secret_or_service_does_not_verify() {
        let (record, token) = ServiceRecord::issue("a".parse().unwrap(), "A", vec![Permission::Read], Timestamp::now());
        let forged: ServiceToken = format!("a.{}x", token.expose().split_once('.').unwrap().1).parse().unwrap();
        assert!(!record.verify(&forged));
        let other: ServiceToken = token.expose().replacen("a.", "b.", 1).parse().unwrap();
        assert!(!record.verify(&other));
        assert!(record.verify(&token.expose().parse().unwrap()));
    }

    #[test]
    fn admin_implies_everything() {
        let (record, _) = ServiceRecord::issue("a".parse().unwrap(), "A", vec![Permission::Admin], Timestamp::now());
        assert!(Permission::ALL.iter().all(|p| record.allows(*p)));
        let (reader, _) = ServiceRecord::issue("r".parse().unwrap(), "R", vec![Permission::Read], Timestamp::now());
        assert!(!reader.allows(Permission::Write));
    }

    #[test]
    fn debug_hides_the_secret() {
        let (_, token) = ServiceRecord::issue("a".parse().unwrap(), "A", vec![], Timestamp::now());
        let secret = token.expose().split_once('.').unwrap().1.to_owned();
        assert!(!format!("{token:?}").contains(&secret));
    }
}
