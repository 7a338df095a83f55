async fn store() -> sessanger_store_memory::MemoryStore {
    sessanger_store_memory::MemoryStore::new()
}

sessanger_testkit::store_conformance!(store);
sessanger_testkit::store_events_conformance!(store);
