//! Requests to the servers under test: wrk for load, one hyper request for set-up and checks.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, process::Command};

/// One request, sent again and again.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub method: Method,
    pub path: String,
    pub headers: Vec<(header::HeaderName, String)>,
    pub body: Bytes,
}

impl Target {
    pub fn get(addr: SocketAddr, path: impl Into<String>) -> Self {
        Target { addr, method: Method::GET, path: path.into(), headers: Vec::new(), body: Bytes::new() }
    }

    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Bytes::from(body.to_string());
        self.header(header::CONTENT_TYPE, "application/json")
    }

    /// The wrk script that sends this request.
    fn lua(&self) -> String {
        // Long brackets of level 2: JSON bodies and header values never hold `]==]`.
        let mut lua =
            format!("wrk.method = \"{}\"\nwrk.body = [==[{}]==]\n", self.method, String::from_utf8_lossy(&self.body));
        for (name, value) in &self.headers {
            lua.push_str(&format!("wrk.headers[\"{name}\"] = [==[{value}]==]\n"));
        }
        lua
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut builder =
            Request::builder().method(self.method.clone()).uri(&self.path).header(header::HOST, "127.0.0.1");
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder.body(Full::new(self.body.clone())).expect("a valid request")
    }
}

/// What wrk measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Answered requests.
    pub requests: u64,
    /// Answers that were not 2xx/3xx, and socket errors.
    pub failures: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// Loads `target` for `duration` with wrk (2 threads, `connections` connections, closed loop): a load
/// generator in C costs the shared cores far less than one on hyper would, which matters when
/// the generator, the server and Redis run on 2 cores. The request is set by a Lua script
/// written to `scratch`.
pub async fn run(target: &Target, connections: usize, duration: Duration, scratch: &Path) -> anyhow::Result<Outcome> {
    let script = scratch.join("request.lua");
    std::fs::write(&script, target.lua())?;
    let url = format!("http://{}{}", target.addr, target.path);
    let output = Command::new("wrk")
        .args(["-t2", "-c", &connections.max(2).to_string(), "-d"])
        // wrk takes whole seconds.
        .arg(format!("{}s", duration.as_secs_f64().round().max(1.0)))
        .args(["--latency", "-s"])
        .arg(&script)
        .arg(&url)
        .output()
        .await
        .context("running wrk (Debian package wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {}{}", text, String::from_utf8_lossy(&output.stderr));
    parse_wrk(&text).with_context(|| format!("reading wrk's report:\n{text}"))
}

fn parse_wrk(text: &str) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => outcome.p50_ms = milliseconds(value)?,
            ["99%", value] => outcome.p99_ms = milliseconds(value)?,
            [count, "requests", "in", seconds, ..] => {
                outcome.requests = count.parse()?;
                outcome.seconds = milliseconds(seconds.trim_end_matches(','))? / 1000.0;
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => outcome.failures += count.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                for count in rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()) {
                    outcome.failures += count;
                }
            }
            _ => {}
        }
    }
    anyhow::ensure!(outcome.seconds > 0.0 && outcome.p99_ms > 0.0, "no request count or latency");
    Ok(outcome)
}

/// wrk's `812.00us`, `1.42ms`, `2.00s` or `1.00m`, in ms.
fn milliseconds(value: &str) -> anyhow::Result<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic()).context("a unit")?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => anyhow::bail!("unknown unit {unit}"),
    })
}

/// A kept-alive HTTP/1.1 connection, for measurements that time single requests.
#[derive(Debug)]
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { sender, driver })
    }

    /// Sends `target` (whose address this connection goes to) and returns the answer's status.
    pub async fn status(&mut self, target: &Target) -> anyhow::Result<hyper::StatusCode> {
        self.sender.ready().await?;
        let response = self.sender.send_request(target.request()).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Sends `target` once and returns the answer's body; anything but 2xx is an error.
pub async fn once(target: &Target) -> anyhow::Result<(hyper::HeaderMap, Bytes)> {
    let stream = TcpStream::connect(target.addr).await.with_context(|| format!("connecting to {}", target.addr))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(target.request()).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    driver.abort();
    anyhow::ensure!(
        status.is_success(),
        "{} {} answered {status}: {}",
        target.method,
        target.path,
        String::from_utf8_lossy(&body)
    );
    Ok((headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_are_read_with_their_units() {
        let report = "Running 2s test @ http://127.0.0.1:1/\n  2 threads and 32 connections\n  Latency Distribution\n     50%  812.00us\n     75%    1.10ms\n     90%    1.90ms\n     99%    3.37ms\n  95876 requests in 2.00s, 45.20MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 12\nRequests/sec:  47938.00\n";
        let outcome = parse_wrk(report).unwrap();
        assert_eq!((outcome.requests, outcome.failures, outcome.seconds), (95876, 15, 2.0));
        assert_eq!((outcome.p50_ms, outcome.p99_ms), (0.812, 3.37));
        assert_eq!(outcome.rate(), 47938.0);
    }

    #[test]
    fn lua_strings_hold_any_body() {
        let target = Target::get("127.0.0.1:1".parse().unwrap(), "/")
            .method(Method::PATCH)
            .json(serde_json::json!({"set": {"a": "]]"}}));
        let lua = target.lua();
        assert!(lua.contains(r#"wrk.method = "PATCH""#));
        assert!(lua.contains(r#"[==[{"set":{"a":"]]"}}]==]"#));
    }
}
