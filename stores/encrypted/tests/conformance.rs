//! The whole store contract, through the decorator over the memory store, with every attribute
//! sealed except the ones the suite increments (`n`, `fresh`, `counter`) or expects a
//! non-integer increment to fail on (`name`): an increment of a sealed value is refused.

use std::sync::Arc;

use sessanger_store_encrypted::{EncryptedStore, KeyId, Keyring, Selection};
use sessanger_store_memory::MemoryStore;

fn encrypted_memory_store() -> EncryptedStore<MemoryStore> {
    let keyring = Keyring::new("conformance".parse::<KeyId>().expect("a valid key id"), &[42; 32]);
    EncryptedStore::new(Arc::new(MemoryStore::new()), keyring, Selection::all_except(["n", "fresh", "counter", "name"]))
}

sessanger_testkit::store_conformance!(|| async { encrypted_memory_store() });
sessanger_testkit::store_events_conformance!(|| async { encrypted_memory_store() });
