//! The manager's hot paths on the embedded store (in a temporary directory), each next to the
//! same operation on the memory store in the same group, so the embedded/memory ratio comes
//! out of one run. Also the store's `load` alone, the read path `GET /v1/sessions/{id}` takes.
//!
//! `cargo bench -p sessanger-core -p sessanger-store-embedded`; see BENCHMARKS.md.

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use sessanger_core::{NewSession, SessionManager, Store, Timestamp, UserId};
use sessanger_store_embedded::EmbeddedStore;
use sessanger_store_memory::MemoryStore;

fn attributes() -> serde_json::Map<String, serde_json::Value> {
    let value = json!({"role": "admin", "theme": "dark", "visits": 42, "cart": ["sku-1", "sku-2"]});
    value.as_object().unwrap().clone()
}

fn stores(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let user: UserId = "alice@example.com".parse().unwrap();
    let new = || NewSession { attributes: attributes(), ..NewSession::default() };

    for (name, store) in [("memory", memory), ("embedded", embedded)] {
        let manager = SessionManager::new(store, "web".parse().unwrap(), Duration::from_secs(1800));
        // Some other sessions around the one read, so lookups walk a real tree.
        for _ in 0..1000 {
            runtime.block_on(manager.create_session(&user, new())).unwrap();
        }
        let id = runtime.block_on(manager.create_session(&user, new())).unwrap().id;

        c.bench_function(&format!("store_load/{name}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { manager.store().load(black_box(&id), Timestamp::now()).await.unwrap().unwrap() })
        });
        c.bench_function(&format!("get_session/{name}"), |b| {
            b.to_async(&runtime).iter(|| async { manager.get_session(black_box(&id)).await.unwrap() })
        });
        c.bench_function(&format!("set_attribute/{name}"), |b| {
            b.to_async(&runtime).iter(|| async { manager.set_attribute(&id, "theme", json!("light")).await.unwrap() })
        });
        // A fresh user per session, as logins come: the per-user index stays small.
        let mut n = 0u64;
        c.bench_function(&format!("create_session/{name}"), |b| {
            b.to_async(&runtime).iter(|| {
                n += 1;
                let user: UserId = format!("user-{n}").parse().unwrap();
                let manager = &manager;
                async move { manager.create_session(&user, new()).await.unwrap() }
            })
        });
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = stores }
criterion_main!(benches);
