//! Login latency through an AMQP manager against a baseline that provisions with
//! `rabbitmqctl`, both with `CLIENTS` concurrent clients (default 8), each with a Linux user
//! of its own (`sessbench1`…, created here; run as root on a machine `scripts/amqp-setup`
//! prepared).
//!
//! Each cycle is a login (PAM + broker account + session) then a logout (which deletes the
//! broker account), so every login is a first login. Prints p50/p99 of the login and cycles
//! per second for both.
//!
//! Run with `cargo run --release -p sessanger-amqp --example login_latency [CYCLES] [CLIENTS]`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sessanger_amqp::{
    Account, AmqpClient, BrokerOptions, Responder, ServeOptions, broker::BrokerAdmin, pam::Authenticator, serve,
};
use sessanger_core::{SessionManager, UserId};
use sessanger_store_memory::MemoryStore;

fn ensure_linux_user(name: &str) {
    let exists = std::process::Command::new("id").arg(name).output().is_ok_and(|o| o.status.success());
    if !exists {
        let status = std::process::Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", name]).status();
        assert!(status.is_ok_and(|s| s.success()), "useradd {name} (run as root)");
    }
    let mut chpasswd = std::process::Command::new("chpasswd").stdin(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    writeln!(chpasswd.stdin.take().unwrap(), "{name}:{name}").unwrap();
    assert!(chpasswd.wait().unwrap().success(), "chpasswd {name}");
}

fn report(name: &str, mut latencies: Vec<Duration>, wall: Duration) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "{name:<28} logins {:>4}  p50 {:>7.1} ms  p99 {:>7.1} ms  {:>6.1} cycles/s",
        latencies.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.len() as f64 / wall.as_secs_f64()
    );
}

async fn rabbitmqctl(args: &[&str]) {
    let out = tokio::process::Command::new("rabbitmqctl").args(args).output().await.unwrap();
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("CYCLES and CLIENTS are numbers"));
    let cycles = args.next().unwrap_or(25);
    let clients = args.next().unwrap_or(8);
    let users: Vec<UserId> = (1..=clients).map(|i| format!("sessbench{i}").parse().unwrap()).collect();
    for user in &users {
        ensure_linux_user(user.as_ref());
    }
    let mut config = BrokerOptions::new("amqp://127.0.0.1:5672", "sessanger-bench", "sessanger-bench");
    config.client = Account::new("sessanger-bench-client", "sessanger-bench-client");
    config.routing_keys.insert("bench".into(), vec!["*".into()]);
    config.pam_service = "sessanger-test".into();
    let admin = BrokerAdmin::new(config.management_url(), "guest", "guest");
    admin.setup(&config).await.expect("management API on 127.0.0.1:15672");

    // sessanger: one manager, `clients` concurrent clients.
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), Default::default());
    let responder = Arc::new(Responder::from_options(manager, &config, "bench".parse().unwrap()).unwrap());
    let options = ServeOptions::from_options(&config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(serve(options, Arc::clone(&responder), async {
        let _ = stopped.await;
    }));
    responder.ready().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for user in users.clone() {
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let client = AmqpClient::from_options(&config).await.unwrap();
            let mut latencies = Vec::with_capacity(cycles);
            for _ in 0..cycles {
                let t = Instant::now();
                let login = client.login(&user, Some(user.as_ref()), None).await.unwrap();
                latencies.push(t.elapsed());
                client.logout(&login.session.session_id).await.unwrap();
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    report("sessanger (management API)", latencies, started.elapsed());
    let _ = stop.send(());
    running.await.unwrap();

    // Baseline: the same PAM check, then provisioning with rabbitmqctl.
    let pam = Authenticator::new("sessanger-test");
    let baseline_cycles = cycles.clamp(1, 3);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for user in users.clone() {
        let pam = pam.clone();
        tasks.push(tokio::spawn(async move {
            let name = user.to_string();
            let mut latencies = Vec::new();
            for _ in 0..baseline_cycles {
                let t = Instant::now();
                pam.authenticate(&user, &name).await.unwrap();
                rabbitmqctl(&["add_user", &name, &name]).await;
                rabbitmqctl(&["add_vhost", &name]).await;
                rabbitmqctl(&["set_permissions", "-p", &name, &name, ".*", ".*", ".*"]).await;
                latencies.push(t.elapsed());
                rabbitmqctl(&["delete_user", &name]).await;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    report("baseline (rabbitmqctl)", latencies, started.elapsed());
    for user in &users {
        let _ = admin.delete_vhost(user.as_ref()).await;
    }
}
