sessanger_testkit::store_conformance!(|| async { sessanger_store_memory::MemoryStore::new() });
