//! Property-test strategies for what a client can send, shared by the parser tests of every
//! crate that reads client input.

use proptest::prelude::*;
use serde_json::Value;

/// Arbitrary JSON a few levels deep whose object keys match the regex `keys`: pass the keys
/// the parser under test reads, among random ones, so cases reach past the first check.
pub fn json(keys: &'static str) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}
