//! Clients that hold connections without finishing requests, against the real binary on
//! 127.0.0.1: each test opens a bounded number of sockets and ends by itself.

#[allow(dead_code)] // each test binary uses the helpers it needs
mod common;

use std::{
    fs,
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use common::{Server, data_dir};

/// Short limits, so the tests wait seconds, not the defaults' minutes.
const CONFIG: &str = "\
http:
  header_read_timeout: 1s
  idle_timeout: 2s
  max_connections: 40
store:
  url: memory://
";

fn start(dir: &Path) -> (Server, String) {
    fs::create_dir_all(dir).unwrap();
    let config = dir.join("limits.yaml");
    fs::write(&config, CONFIG).unwrap();
    let server = Server::start_with(dir, &["--config", config.to_str().unwrap()], &[]);
    let address = server.url.trim_start_matches("http://").to_owned();
    (server, address)
}

/// How long until the server closes `socket`, reading (and dropping) whatever it sends.
fn closed_after(socket: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0; 1024];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(started.elapsed()),
            Err(_) => return None,
        }
    }
}

#[test]
fn half_a_request_head_is_cut_off_at_the_header_timeout() {
    let (_tmp, dir) = data_dir();
    let (server, address) = start(&dir);
    // More stalled clients than the connection cap: the ones beyond it wait for a slot.
    let mut stalled: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut socket = TcpStream::connect(&address).unwrap();
            socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
            socket
        })
        .collect();
    let started = Instant::now();
    for socket in &mut stalled {
        let closed = closed_after(socket, Duration::from_secs(10));
        assert!(closed.is_some(), "a stalled client kept its connection for 10 s");
    }
    // 100 clients through 40 slots at 1 s each: three rounds, each bounded by the timeout.
    let all_closed = started.elapsed();
    println!("100 stalled clients all disconnected after {all_closed:?} (header timeout 1 s, cap 40)");
    // Bounds with room for a loaded machine: what matters is that none stays open.
    assert!(all_closed < Duration::from_secs(9), "{all_closed:?}");

    let mut one = TcpStream::connect(&address).unwrap();
    one.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let closed = closed_after(&mut one, Duration::from_secs(5)).expect("closed");
    println!("one stalled client disconnected after {closed:?}");
    assert!(closed >= Duration::from_millis(900) && closed < Duration::from_secs(4), "{closed:?}");
    server.stop();
}

#[test]
fn an_idle_keep_alive_connection_lives_until_the_idle_timeout() {
    let (_tmp, dir) = data_dir();
    let (server, address) = start(&dir);
    let mut socket = TcpStream::connect(&address).unwrap();
    // Requests closer together than the idle timeout keep it open, even past the header one.
    for _ in 0..3 {
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = [0; 512];
        let n = socket.read(&mut answer).unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
        std::thread::sleep(Duration::from_millis(1300));
    }
    let closed = closed_after(&mut socket, Duration::from_secs(5)).expect("closed when idle");
    println!("idle keep-alive connection closed {closed:?} after the last 1.3 s pause (idle timeout 2 s)");
    assert!(closed < Duration::from_secs(3), "{closed:?}");
    server.stop();
}

#[test]
fn at_the_connection_cap_healthz_still_answers_once_a_slot_frees() {
    let (_tmp, dir) = data_dir();
    let (server, address) = start(&dir);
    let _stalled: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut socket = TcpStream::connect(&address).unwrap();
            socket.write_all(b"GET /h").unwrap();
            socket
        })
        .collect();
    let started = Instant::now();
    let mut health = TcpStream::connect(&address).unwrap();
    health.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    health.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    health.read_to_string(&mut answer).unwrap();
    let waited = started.elapsed();
    println!("/healthz answered after {waited:?} with 40 of 40 connections held by stalled clients");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    server.stop();
}

#[test]
fn a_stalled_client_does_not_hold_up_a_shutdown() {
    let (_tmp, dir) = data_dir();
    let (server, address) = start(&dir);
    let mut stalled = TcpStream::connect(&address).unwrap();
    stalled.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut idle = TcpStream::connect(&address).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = [0; 512];
    assert!(idle.read(&mut answer).unwrap() > 0);
    let started = Instant::now();
    // SIGTERM: the idle connection closes at once, the stalled one at its header timeout.
    server.stop();
    println!("stopped after {:?} with a stalled and an idle client connected", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
