//! The core hot paths: id generation, the session record's JSON, patches, and the manager on
//! the memory store (the baseline `stores/embedded/benches/embedded.rs` is compared against).
//!
//! `cargo bench -p sessanger-core -p sessanger-store-embedded`; see BENCHMARKS.md.

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use sessanger_core::{Limits, NewSession, Patch, Session, SessionId, SessionManager, Timestamp, UserId};
use sessanger_store_memory::MemoryStore;

/// A session as a login creates it: four small attributes.
fn session() -> Session {
    let user: UserId = "alice@example.com".parse().unwrap();
    let mut session = Session::new(
        SessionId::generate_for(&user),
        user,
        Timestamp::from_millis(1_763_900_000_000),
        Duration::from_secs(1800),
        Duration::from_secs(30 * 24 * 3600),
    );
    session.attributes = attributes();
    session
}

fn attributes() -> serde_json::Map<String, serde_json::Value> {
    let value = json!({"role": "admin", "theme": "dark", "visits": 42, "cart": ["sku-1", "sku-2"]});
    value.as_object().unwrap().clone()
}

fn ids(c: &mut Criterion) {
    let user: UserId = "alice@example.com".parse().unwrap();
    c.bench_function("id/generate_for", |b| b.iter(|| SessionId::generate_for(black_box(&user))));
}

fn records(c: &mut Criterion) {
    let session = session();
    let bytes = serde_json::to_vec(&session).unwrap();
    let mut group = c.benchmark_group("session_json");
    group.bench_function("encode", |b| b.iter(|| serde_json::to_vec(black_box(&session)).unwrap()));
    group.bench_function("decode", |b| b.iter(|| serde_json::from_slice::<Session>(black_box(&bytes)).unwrap()));
    group.finish();
}

fn patches(c: &mut Criterion) {
    let limits = Limits::default();
    let patch = Patch::default().set("theme", json!("light")).remove("cart").incr("visits", 1);
    c.bench_function("patch/validate_apply", |b| {
        b.iter_batched_ref(
            session,
            |s| {
                black_box(&patch).validate(&limits).unwrap();
                s.apply(&patch, Some(limits.session)).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
}

fn manager(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let manager = SessionManager::new(Arc::new(MemoryStore::new()), "web".parse().unwrap(), Duration::from_secs(1800));
    let user: UserId = "alice@example.com".parse().unwrap();
    let new = || NewSession { attributes: attributes(), ..NewSession::default() };
    let id = runtime.block_on(manager.create_session(&user, new())).unwrap().id;

    let mut group = c.benchmark_group("manager/memory");
    group.bench_function("get_session", |b| {
        b.to_async(&runtime).iter(|| async { manager.get_session(black_box(&id)).await.unwrap() })
    });
    group.bench_function("set_attribute", |b| {
        b.to_async(&runtime).iter(|| async { manager.set_attribute(&id, "theme", json!("light")).await.unwrap() })
    });
    // A fresh user per session, as logins come: the per-user index stays small.
    let mut n = 0u64;
    group.bench_function("create_session", |b| {
        b.to_async(&runtime).iter(|| {
            n += 1;
            let user: UserId = format!("user-{n}").parse().unwrap();
            let manager = &manager;
            async move { manager.create_session(&user, new()).await.unwrap() }
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = ids, records, patches, manager }
criterion_main!(benches);
