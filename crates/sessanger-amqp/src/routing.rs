//! Which session manager serves which user: the routing table
//! ([`BrokerOptions::routing_keys`]), read the same way by every client and every session
//! manager.

use std::{collections::BTreeMap, fmt, str::FromStr, sync::Arc};

use sessanger_core::UserId;

use crate::BrokerOptions;

/// In a routing table, the user name standing for every user listed under no other key.
pub const WILDCARD: &str = "*";

/// A manager's routing key (`session.routing_key`): 1 to 255 bytes, no control characters
/// (AMQP routing keys are short strings).
///
/// # Examples
/// ```
/// use sessanger_amqp::RoutingKey;
///
/// let key: RoutingKey = "sessanger1".parse().unwrap();
/// assert_eq!(key.as_ref(), "sessanger1");
/// ```
///
/// # Validation
/// ```
/// use sessanger_amqp::RoutingKey;
///
/// assert!("".parse::<RoutingKey>().is_err());
/// assert!("x".repeat(256).parse::<RoutingKey>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoutingKey(String);

/// A text that is no routing key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a routing key is 1 to 255 bytes of printable text")]
pub struct InvalidRoutingKey;

impl FromStr for RoutingKey {
    type Err = InvalidRoutingKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
            return Err(InvalidRoutingKey);
        }
        Ok(RoutingKey(s.to_owned()))
    }
}

impl fmt::Display for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RoutingKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The resolver: user → the routing key of the manager that serves it. A user listed by name
/// goes to that key; every other user to the key listing `'*'`, if one does; otherwise no
/// manager serves it. Cheap to clone.
///
/// A table listing a user under two keys, or `'*'` under two, is ambiguous; `sessanger config
/// check` refuses one, so the answer never depends on the order of the table.
///
/// # Examples
/// ```
/// use sessanger_amqp::Routing;
///
/// let routing = Routing::from_table([("sessanger1", vec!["sysadm", "ok1"]), ("sessanger2", vec!["om1"])]).unwrap();
/// assert_eq!(routing.route(&"om1".parse().unwrap()).unwrap().as_ref(), "sessanger2");
/// assert!(routing.route(&"nobody".parse().unwrap()).is_none());
/// ```
#[derive(Clone, Debug)]
pub struct Routing(Arc<Table>);

#[derive(Debug)]
struct Table {
    users: BTreeMap<String, RoutingKey>,
    wildcard: Option<RoutingKey>,
    keys: Vec<RoutingKey>,
}

impl Routing {
    /// The resolver of the routing table of `options`.
    pub fn from_options(options: &BrokerOptions) -> Result<Routing, InvalidRoutingKey> {
        Routing::from_table(options.routing_keys.iter().map(|(key, users)| (key.as_str(), users.clone())))
    }

    /// A resolver from (routing key, user names) pairs; `'*'` stands for every other user.
    pub fn from_table<K, U, S>(table: impl IntoIterator<Item = (K, U)>) -> Result<Routing, InvalidRoutingKey>
    where
        K: AsRef<str>,
        U: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut routing = Table { users: BTreeMap::new(), wildcard: None, keys: Vec::new() };
        for (key, users) in table {
            let key: RoutingKey = key.as_ref().parse()?;
            for user in users {
                let user = user.into();
                if user == WILDCARD {
                    routing.wildcard = Some(key.clone());
                } else {
                    routing.users.insert(user, key.clone());
                }
            }
            routing.keys.push(key);
        }
        Ok(Routing(Arc::new(routing)))
    }

    /// The key of the manager serving `user`, `None` when no manager does.
    pub fn route(&self, user: &UserId) -> Option<&RoutingKey> {
        self.0.users.get(user.as_ref()).or(self.0.wildcard.as_ref())
    }

    /// Every routing key of the table, in table order.
    pub fn keys(&self) -> &[RoutingKey] {
        &self.0.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        name.parse().unwrap()
    }

    fn seed_example_2() -> Routing {
        Routing::from_table([("sessanger1", vec!["sysadm", "ok1"]), ("sessanger2", vec!["om1"])]).unwrap()
    }

    #[test]
    fn listed_users_go_to_the_key_that_lists_them() {
        let routing = seed_example_2();
        assert_eq!(routing.route(&user("sysadm")).unwrap().as_ref(), "sessanger1");
        assert_eq!(routing.route(&user("ok1")).unwrap().as_ref(), "sessanger1");
        assert_eq!(routing.route(&user("om1")).unwrap().as_ref(), "sessanger2");
    }

    #[test]
    fn unlisted_user_without_wildcard_has_no_manager() {
        assert_eq!(seed_example_2().route(&user("alice")), None);
    }

    #[test]
    fn wildcard_serves_everyone_not_listed_elsewhere() {
        let routing = Routing::from_table([("a", vec!["*"]), ("b", vec!["om1"])]).unwrap();
        assert_eq!(routing.route(&user("alice")).unwrap().as_ref(), "a");
        assert_eq!(routing.route(&user("om1")).unwrap().as_ref(), "b");
    }

    #[test]
    fn explicit_listing_wins_whatever_the_table_order() {
        let routing = Routing::from_table([("b", vec!["om1"]), ("a", vec!["*"])]).unwrap();
        assert_eq!(routing.route(&user("om1")).unwrap().as_ref(), "b");
    }

    #[test]
    fn empty_routing_key_is_refused() {
        assert_eq!(Routing::from_table([("", vec!["om1"])]).unwrap_err(), InvalidRoutingKey);
    }
}
