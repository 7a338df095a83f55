//! The load harness of sessanger (issue 8): one run that measures sessanger on Redis and on
//! the embedded store, a tower-sessions + Redis peer app, an axum hello-world and
//! `redis-benchmark` one after another on this machine, and reports every figure as a ratio
//! to a baseline of the same run. `cargo run --release -p sessanger-load -- --help`.

pub mod load;
pub mod process;
pub mod redis_server;
pub mod report;

/// The attributes every benchmarked session holds: 4 small ones, as a web app keeps.
pub fn attributes() -> serde_json::Value {
    serde_json::json!({"theme": "dark", "lang": "en-GB", "cart_items": 3, "csrf": "q8Xl2vK1ZbQe9rT0wYh3sA"})
}

/// Bytes of `attributes()` as an app sees them: each name and its JSON value.
pub fn payload_bytes() -> usize {
    attributes().as_object().expect("an object").iter().map(|(k, v)| k.len() + v.to_string().len()).sum()
}
