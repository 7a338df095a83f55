//! `sessanger import`, `migrate-store` and `export` through the binary, across every store the
//! machine runs: sessions go embedded → Redis → PostgreSQL → MariaDB → embedded and come out
//! with every field as they went in.

#[allow(dead_code)] // each test binary uses the helpers it needs
mod common;

use std::{collections::BTreeMap, fs, path::Path, process::Command, time::Duration};

use serde_json::{Value, json};
use sessanger_core::{Device, Permission, ServiceRecord, Session, SessionId, Timestamp, UserId, Version};

use common::{BIN, FreshStore, StoreKind, data_dir};

/// `sessanger` with `args`, none of the caller's environment; its standard output, after
/// checking it succeeded.
fn run(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("SESSANGER_CONFIG")
        .env_remove("SESSANGER_STORE")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "sessanger {args:?}: {stderr}");
    stdout.into_owned()
}

/// The sessions (by id) and services of an export.
fn read_export(path: &Path) -> (BTreeMap<String, Value>, Vec<Value>) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!((header["format"].as_str(), header["version"].as_u64()), (Some("sessanger-export"), Some(1)));
    let (mut sessions, mut services) = (BTreeMap::new(), Vec::new());
    for line in lines {
        let line: Value = serde_json::from_str(line).unwrap();
        match (line.get("session"), line.get("service")) {
            (Some(session), None) => {
                sessions.insert(session["id"].as_str().unwrap().to_owned(), session.clone());
            }
            (None, Some(service)) => services.push(service.clone()),
            _ => panic!("neither a session nor a service: {line}"),
        }
    }
    (sessions, services)
}

/// An export of `count` live sessions with every field set, one dead session, one service.
fn write_export(path: &Path, count: usize) {
    let now = Timestamp::now();
    let mut text = format!("{}\n", json!({"format": "sessanger-export", "version": 1, "exported_at": now}));
    let (service, _) = ServiceRecord::issue("billing".parse().unwrap(), "Billing", vec![Permission::Read], now);
    text.push_str(&format!("{}\n", json!({ "service": service })));
    for i in 0..=count {
        let user: UserId = format!("user-{}@example.com", i % 97).parse().unwrap();
        let created = now - Duration::from_secs(60);
        let mut session = Session::new(
            SessionId::generate_for(&user),
            user,
            created,
            Duration::from_secs(1800),
            Duration::from_secs(86_400),
        );
        session.device = Device {
            device_id: Some(format!("device-{i}")),
            ip: Some("203.0.113.7".into()),
            user_agent: Some("Firefox/140 \"quoted\"".into()),
        };
        session.created_by = Some("billing".parse().unwrap());
        session.version = Version(u64::try_from(i % 5).unwrap() + 1);
        let attributes = json!({
            "cart": {"items": [i, "two", null, 1.5], "note": "ü ✓ \\ \"q\""},
            "visits": i,
            // As the encrypted store leaves a sealed value: moved as it is, never opened.
            "token": {"$enc": "v1", "kid": "k1", "n": "bm9uY2U", "c": "Y2lwaGVydGV4dA"},
        });
        session.attributes = serde_json::from_value(attributes).unwrap();
        if i == count {
            // Dead already: skipped, never brought back.
            session.expires_at = now - Duration::from_secs(1);
        }
        text.push_str(&format!("{}\n", json!({ "session": session })));
    }
    fs::write(path, text).unwrap();
}

#[test]
fn sessions_move_through_every_store_and_come_out_as_they_went_in() {
    const COUNT: usize = 2_000;
    let (tmp, dir) = data_dir();
    let (first, last) = (tmp.path().join("first"), tmp.path().join("last"));
    let embedded = |path: &Path| format!("embedded://{}", path.display());
    let (input, output) = (tmp.path().join("in.jsonl"), tmp.path().join("out.jsonl"));
    write_export(&input, COUNT);

    let imported = run(&dir, &["import", "--store", &embedded(&first), "--input", input.to_str().unwrap()]);
    assert!(
        imported.contains(&format!("{COUNT} sessions written (0 there already, 1 expired on the way)")),
        "{imported}"
    );

    let redis = FreshStore::new(StoreKind::Redis);
    let (postgres, mariadb) = (FreshStore::new(StoreKind::Postgres), FreshStore::new(StoreKind::MariaDb));
    let prefix = ["--key-prefix", redis.args[3].as_str()];
    let chain =
        [embedded(&first), redis.args[1].clone(), postgres.args[1].clone(), mariadb.args[1].clone(), embedded(&last)];
    for pair in chain.windows(2) {
        let moved = run(&dir, &[&prefix[..], &["migrate-store", "--from", &pair[0], "--to", &pair[1]]].concat());
        assert!(moved.contains(&format!("{COUNT} sessions written (0 there already")), "{pair:?}: {moved}");
        assert!(moved.contains("1 services written"), "{pair:?}: {moved}");
    }
    // Again, as after an interruption: everything is there already.
    let again = run(&dir, &[&prefix[..], &["migrate-store", "--from", &chain[0], "--to", &chain[1]]].concat());
    assert!(again.contains(&format!("0 sessions written ({COUNT} there already")), "{again}");

    run(&dir, &["export", "--store", &embedded(&last), "--output", output.to_str().unwrap()]);
    let (went_in, came_out) = (read_export(&input), read_export(&output));
    let mut expected = went_in.0;
    expected.retain(|_, session| session["device"]["device_id"] != format!("device-{COUNT}"));
    assert_eq!(came_out.0.len(), COUNT);
    assert_eq!(came_out.0, expected, "every field of every session");
    assert_eq!(came_out.1, went_in.1, "the service, its secret's hash with it");
}
