//! The store contract and the event log, checked by the shared conformance suites.

async fn store() -> sessanger_store_embedded::EmbeddedStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = sessanger_store_embedded::EmbeddedStore::open(dir.path()).expect("the store opens");
    // The store holds the database file open, so removing the directory now costs the test
    // nothing (on Unix the file lives on until the store drops it) and leaves nothing behind.
    drop(dir);
    store
}

sessanger_testkit::store_conformance!(store);
sessanger_testkit::store_events_conformance!(store);
