//! The store contract, checked by the shared conformance suite against standalone Redis at
//! `SESSANGER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). Fails when Redis is not
//! reachable: `scripts/test` starts it.

mod common;

// With the node cache (the default), and without: every read then goes to Redis.
sessanger_testkit::store_conformance!(|| common::store(common::redis_url()));
sessanger_testkit::store_events_conformance!(|| common::store(common::redis_url()));

mod uncached {
    use super::common;

    sessanger_testkit::store_conformance!(|| common::uncached_store(common::redis_url()));
}
