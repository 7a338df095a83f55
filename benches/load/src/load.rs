//! The load generator: `connections` HTTP/1.1 keep-alive connections, each sending one
//! request after another (closed loop, as wrk does) until a deadline, every latency kept.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, time::Instant};

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

    fn request(&self) -> Request<Full<Bytes>> {
        let mut builder =
            Request::builder().method(self.method.clone()).uri(&self.path).header(header::HOST, "127.0.0.1");
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder.body(Full::new(self.body.clone())).expect("a valid request")
    }
}

/// How long to load a target: `warmup` first (not measured), then `measure`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What a run measured. Requests sent during the warm-up count in `total` (which process
/// CPU time is divided by) but not in the rate or the latencies.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Answered requests in the measured window.
    pub requests: u64,
    /// Answers that were not 2xx, or connections that failed, in the whole run.
    pub failures: u64,
    /// Every answered request, warm-up included.
    pub total: u64,
    pub seconds: f64,
    latencies_us: Vec<u32>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// The latency below which `q` of the measured requests were answered, in ms.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((self.latencies_us.len() as f64 * q).ceil() as usize).clamp(1, self.latencies_us.len());
        f64::from(self.latencies_us[rank - 1]) / 1000.0
    }

    fn merge(&mut self, other: Outcome) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.total += other.total;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Loads `target` with `plan.connections` connections. Fails if any connection cannot be
/// opened; answers other than 2xx are counted as failures, not hidden.
pub async fn run(target: &Target, plan: Plan) -> anyhow::Result<Outcome> {
    let target = Arc::new(target.clone());
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let deadline = measure_from + plan.measure;
    let workers: Vec<_> =
        (0..plan.connections).map(|_| tokio::spawn(connection(Arc::clone(&target), measure_from, deadline))).collect();
    let mut outcome = Outcome { seconds: plan.measure.as_secs_f64(), ..Outcome::default() };
    for worker in workers {
        outcome.merge(worker.await??);
    }
    outcome.latencies_us.sort_unstable();
    Ok(outcome)
}

async fn connection(target: Arc<Target>, measure_from: Instant, deadline: Instant) -> anyhow::Result<Outcome> {
    let stream = TcpStream::connect(target.addr).await.with_context(|| format!("connecting to {}", target.addr))?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let mut outcome = Outcome::default();
    while Instant::now() < deadline {
        let sent = Instant::now();
        let answer = match sender.send_request(target.request()).await {
            Ok(response) => {
                let ok = response.status().is_success();
                response.into_body().collect().await.map(|_| ok)
            }
            Err(error) => Err(error),
        };
        let ok = match answer {
            Ok(ok) => ok,
            Err(_) => {
                // The server closed the connection (it would on an error it cannot answer):
                // count it and stop this connection rather than spin on a dead socket.
                outcome.failures += 1;
                break;
            }
        };
        outcome.total += 1;
        outcome.failures += u64::from(!ok);
        if sent >= measure_from {
            outcome.requests += 1;
            outcome.latencies_us.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }
    driver.abort();
    Ok(outcome)
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
    fn percentiles_are_ranks_of_the_sorted_latencies() {
        let outcome = Outcome { latencies_us: (1..=100).map(|ms| ms * 1000).collect(), ..Outcome::default() };
        assert_eq!(outcome.percentile_ms(0.5), 50.0);
        assert_eq!(outcome.percentile_ms(0.99), 99.0);
        assert_eq!(outcome.percentile_ms(1.0), 100.0);
    }
}
