//! The store contract, checked by the shared conformance suite against a Redis Cluster at
//! `SESSANGER_TEST_REDIS_CLUSTER_URL` (default
//! `redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002`; `scripts/redis-cluster start`).
//! Fails when the cluster is not reachable.

mod common;

// With the node cache (the default), and without: every read then goes to Redis.
sessanger_testkit::store_conformance!(|| common::store(common::cluster_url()));
sessanger_testkit::store_events_conformance!(|| common::store(common::cluster_url()));

mod uncached {
    use super::common;

    sessanger_testkit::store_conformance!(|| common::uncached_store(common::cluster_url()));
}
