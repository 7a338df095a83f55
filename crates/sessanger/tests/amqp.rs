//! The binary's AMQP commands end to end, on the real RabbitMQ and PAM that
//! `scripts/amqp-setup` prepares: `broker setup`, `serve` with a `broker:` section, `login`
//! and `logout`. Fails, never skips, when RabbitMQ is unreachable.

use std::{
    io::Write,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_sessanger");
const API: &str = "http://127.0.0.1:15672/api";

/// Runs `sessanger ARGS`, with `stdin` as standard input.
fn sessanger(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("SESSANGER_CONFIG")
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sessanger runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Stops the server with SIGTERM when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

async fn broker_get(path: &str) -> Option<serde_json::Value> {
    let response = reqwest::Client::new()
        .get(format!("{API}/{path}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("RabbitMQ's management API must answer on 127.0.0.1:15672 (run scripts/amqp-setup)");
    response.status().is_success().then_some(())?;
    response.json().await.ok()
}

async fn broker_delete(path: &str) {
    let _ = reqwest::Client::new().delete(format!("{API}/{path}")).basic_auth("guest", Some("guest")).send().await;
}

fn write_config(dir: &Path, login: &str) -> String {
    let path = dir.join("sessanger.yaml");
    let text = format!(
        "session:\n  routing_key: ${{BROKER_ROUTING_KEY:-sessanger1}}\nstore:\n  url: memory://\nbroker:\n  url: 127.0.0.1:5672\n  \
         sessanger:\n    login: {login}\n    password: {login}\n  routing_keys:\n    sessanger1: [sysadm, ok1]\n    \
         sessanger2: [om1]\n  pam_service: sessanger-test\n"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_broker_section_logs_users_in_and_out_over_amqp() {
    let dir = tempfile::tempdir().unwrap();
    // A manager account and vhost of this run's own: runs never share queues.
    let login = format!("sessanger-c{}", &sessanger_core::SessionId::generate().as_ref()[..10]);
    let config = write_config(dir.path(), &login);
    broker_delete("users/sysadm").await;
    broker_delete("users/ok1").await;

    for _ in 0..2 {
        let setup = sessanger(&["broker", "setup", "--config", &config, "--admin-user", "guest:guest"], "");
        assert!(setup.status.success(), "broker setup is idempotent: {}", String::from_utf8_lossy(&setup.stderr));
    }
    let tags = broker_get(&format!("users/{login}")).await.expect("the manager's account exists")["tags"].clone();
    assert!(tags.to_string().contains("administrator"), "{tags}");

    let server = Running(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config", &config, "--data-dir"])
            .arg(dir.path().join("data"))
            .env("BROKER_ROUTING_KEY", "sessanger1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queue = broker_get(&format!("queues/{login}/sessanger.sessanger1")).await;
        if queue.is_some_and(|q| q["consumers"].as_u64() >= Some(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "serve never consumed its queue");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ok = sessanger(&["login", "sysadm", "--config", &config], "sysadm\n");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(reply["routing_key"], "sessanger1");
    assert_eq!(reply["broker"]["vhost"], "sysadm");
    let session_id = reply["session"]["session_id"].as_str().unwrap().to_owned();
    assert!(broker_get("users/sysadm").await.is_some());

    let refused = sessanger(&["login", "ok1", "--config", &config], "wrong\n");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).starts_with("auth_failed"), "{refused:?}");

    let wrong = sessanger(&["login", "om1", "--config", &config, "--routing-key", "sessanger1"], "om1\n");
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.starts_with("wrong_manager") && stderr.contains("sessanger2"), "{stderr}");

    let out = sessanger(&["logout", &session_id, "--config", &config], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(broker_get("users/sysadm").await.is_none(), "the last logout removes the broker account");

    // pam_exec.so expose_authtok: PAM_USER, and the password NUL-terminated on stdin.
    let hook = Command::new(BIN)
        .args(["pam-exec", "--config", &config])
        .env("PAM_USER", "ok1")
        .env("PAM_TYPE", "auth")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    hook.stdin.as_ref().unwrap().write_all(b"ok1\0").unwrap();
    let hook = hook.wait_with_output().unwrap();
    assert!(hook.status.success(), "{}", String::from_utf8_lossy(&hook.stderr));
    assert!(broker_get("users/ok1").await.is_some(), "a system login provisions the broker account");
    broker_delete("users/ok1").await;

    drop(server);
    broker_delete(&format!("vhosts/{login}")).await;
    broker_delete(&format!("users/{login}")).await;
}
