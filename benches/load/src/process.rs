//! The servers under test: started one at a time as child processes on 127.0.0.1, killed when
//! dropped, and their CPU time read from `/proc`.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use anyhow::Context;
use tokio::{
    net::TcpStream,
    process::{Child, Command},
    time::Instant,
};

/// A running server process.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub name: &'static str,
}

impl Server {
    /// Starts `command` (its output goes to `log`) and waits, at most 30 s, until `addr` accepts
    /// connections.
    pub async fn start(
        name: &'static str,
        mut command: Command,
        addr: SocketAddr,
        log: &Path,
    ) -> anyhow::Result<Server> {
        // Something else answering on the port would be measured in the server's place.
        std::net::TcpListener::bind(addr).with_context(|| format!("{addr} is taken: stop what listens there"))?;
        let out = std::fs::File::create(log)?;
        command.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).kill_on_drop(true);
        let mut child = command.spawn().with_context(|| format!("starting {name}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(Server { child, addr, name });
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("{name} exited with {status}: {}", std::fs::read_to_string(log).unwrap_or_default());
            }
            anyhow::ensure!(Instant::now() < deadline, "{name} did not listen on {addr} within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// CPU time (user + system, all threads) the process has used so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_time(self.child.id().context("the server has exited")?)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// `utime + stime` of `/proc/PID/stat`, in clock ticks of 1/100 s (Linux's `USER_HZ` on every
/// architecture it ships for servers).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name in parentheses may contain spaces: fields are counted after it.
    let rest = &stat[stat.rfind(')').context("a /proc stat line")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// CPU µs per request between two readings of a server's CPU time.
pub fn cpu_per_request(before: Duration, after: Duration, requests: u64) -> f64 {
    (after - before).as_secs_f64() * 1e6 / requests.max(1) as f64
}
