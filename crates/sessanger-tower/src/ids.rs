//! How a tower-sessions [`Id`] (the 128 bits in the cookie) names a sessanger [`SessionId`].
//!
//! sessanger stores need every session id to start with its user's shard tag
//! ([`SessionId::generate_for`]), but the cookie holds only a tower-sessions `Id`, and loading a
//! session must work from the cookie alone. So the adapter mints the tower `Id` itself, in
//! [`SessionStore::create`](tower_sessions::SessionStore::create):
//!
//! - its first 12 bits are the user's shard tag, the other 116 bits come from the OS CSPRNG
//!   (OWASP asks for at least 64 bits of entropy);
//! - the sessanger id is that tag followed by 41 characters of the SHA-256 of the `Id`: the
//!   [`SessionId::LONG_LEN`] of earlier sessanger ids rather than today's shorter ids, so that
//!   every cookie ever issued keeps naming its session (the derivation can never change).
//!
//! No mapping is stored, and the derivation is one-way: a sessanger id shown by
//! `/v1/users/{user_id}/sessions` or on a "your devices" page cannot be turned back into a
//! cookie.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sessanger_core::{SessionId, UserId};
use sha2::{Digest, Sha256};
use tower_sessions::session::Id;

/// Separates this hash from any other SHA-256 of 16 bytes.
const DOMAIN: &[u8] = b"sessanger-tower/v1 session id\0";

/// The prefix of the users that hold sessions nobody has logged in to. A real user id with
/// this prefix is refused, so the two can never be confused.
pub const ANONYMOUS_PREFIX: &str = "~anonymous/";

/// A fresh tower-sessions id whose sessanger id lands on `user`'s shard.
pub(crate) fn generate_for(user: &UserId) -> Id {
    let tag = tag_bits(&user.shard_tag());
    let mut bytes = random_bytes();
    bytes[0] = (tag >> 4) as u8;
    bytes[1] = ((tag as u8 & 0x0f) << 4) | (bytes[1] & 0x0f);
    Id(i128::from_be_bytes(bytes))
}

/// The sessanger id a tower-sessions id stands for. Any `Id` maps to a valid `SessionId`,
/// so a forged cookie simply names no session.
///
/// # Examples
/// ```
/// use sessanger_tower::session_id_of;
/// use tower_sessions::session::Id;
///
/// let id = Id(42);
/// assert_eq!(session_id_of(&id), session_id_of(&id));
/// assert_ne!(session_id_of(&id), session_id_of(&Id(43)));
/// assert_eq!(session_id_of(&id).as_ref().len(), sessanger_core::SessionId::LONG_LEN);
/// ```
pub fn session_id_of(id: &Id) -> SessionId {
    let bytes = id.0.to_be_bytes();
    let tag = (u16::from(bytes[0]) << 4) | u16::from(bytes[1] >> 4);
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(bytes);
    let digest = URL_SAFE_NO_PAD.encode(hasher.finalize());
    let encoded = format!("{}{}", tag_chars(tag), &digest[..SessionId::LONG_LEN - SessionId::TAG_LEN]);
    encoded.parse().expect("a shard tag and 41 base64url characters are a valid session id")
}

/// A user of its own for one session nobody has logged in to: anonymous sessions never share
/// an index entry, so no user index grows with every visitor.
pub(crate) fn anonymous_user() -> UserId {
    let name = format!("{ANONYMOUS_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes()));
    name.parse().expect("the anonymous prefix and base64url are a valid user id")
}

/// Whether `user` is one of the adapter's anonymous users.
pub(crate) fn is_anonymous(user: &UserId) -> bool {
    user.as_ref().starts_with(ANONYMOUS_PREFIX)
}

fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source must be readable");
    bytes
}

/// The 12 bits two base64url characters stand for.
fn tag_bits(tag: &str) -> u16 {
    let decoded = URL_SAFE_NO_PAD.decode(format!("{tag}AA")).expect("a shard tag is two base64url characters");
    (u16::from(decoded[0]) << 4) | u16::from(decoded[1] >> 4)
}

/// The two base64url characters of 12 bits.
fn tag_chars(bits: u16) -> String {
    let bytes = [(bits >> 4) as u8, ((bits & 0x0f) << 4) as u8, 0];
    URL_SAFE_NO_PAD.encode(bytes)[..SessionId::TAG_LEN].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_carry_the_users_shard_tag() {
        for name in ["alice", "bob", "carol@example.com", "~anonymous/x"] {
            let user: UserId = name.parse().unwrap();
            let id = generate_for(&user);
            assert_eq!(session_id_of(&id).shard_tag(), user.shard_tag(), "user {name}");
        }
    }

    /// The same vector is in `clients/typescript/test/express.test.ts`: an Express app and an
    /// axum app must read one cookie as one session.
    #[test]
    fn a_cookie_names_the_session_the_typescript_store_names() {
        let cookie: Id = "AAECAwQFBgcICQoLDA0ODw".parse().unwrap();
        assert_eq!(session_id_of(&cookie).as_ref(), "DwFSVumkvBJpBexbDEu9yHoNfvpRl5MOhM6wytyReSZ");
    }

    #[test]
    fn every_twelve_bit_tag_survives_the_round_trip() {
        for bits in 0..4096u16 {
            assert_eq!(tag_bits(&tag_chars(bits)), bits);
        }
    }

    #[test]
    fn anonymous_users_are_distinct_and_recognised() {
        let (a, b) = (anonymous_user(), anonymous_user());
        assert_ne!(a, b);
        assert!(is_anonymous(&a));
        assert!(!is_anonymous(&"alice".parse().unwrap()));
    }
}
