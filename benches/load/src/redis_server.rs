//! The Redis server both sessanger and the peer use: its counters (`INFO`), a `MONITOR` that
//! counts the round trips of one operation, and `redis-benchmark`, the ceiling of a read.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::Command,
    sync::oneshot,
    task::JoinHandle,
};

/// The Redis databases of a run, emptied before and after it: nothing else on the server is
/// touched.
pub const SESSANGER_DB: u8 = 13;
pub const PEER_DB: u8 = 14;
pub const BENCHMARK_DB: u8 = 15;

#[derive(Debug, Clone)]
pub struct RedisServer {
    addr: String,
    connection: MultiplexedConnection,
}

impl RedisServer {
    pub async fn connect(addr: &str) -> anyhow::Result<RedisServer> {
        let client = redis::Client::open(format!("redis://{addr}"))?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to Redis at {addr}"))?;
        Ok(RedisServer { addr: addr.to_owned(), connection })
    }

    pub fn url(&self, db: u8) -> String {
        format!("redis://{}/{db}", self.addr)
    }

    pub async fn info(&self, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let text: String = redis::cmd("INFO").arg(section).query_async(&mut self.connection.clone()).await?;
        Ok(parse_info(&text))
    }

    pub async fn used_memory(&self) -> anyhow::Result<u64> {
        Ok(self.info("memory").await?.get("used_memory").context("INFO memory has used_memory")?.parse()?)
    }

    /// CPU time the server has used, user + system.
    pub async fn cpu(&self) -> anyhow::Result<Duration> {
        let info = self.info("cpu").await?;
        let seconds = ["used_cpu_user", "used_cpu_sys"]
            .iter()
            .map(|k| info.get(*k).map_or(Ok(0.0), |v| v.parse::<f64>()))
            .sum::<Result<f64, _>>()?;
        Ok(Duration::from_secs_f64(seconds))
    }

    /// A connection of its own to database `db`: a `SELECT` on the shared connection would
    /// move every other command on it to that database too.
    async fn database(&self, db: u8) -> anyhow::Result<MultiplexedConnection> {
        Ok(redis::Client::open(self.url(db))?.get_multiplexed_async_connection().await?)
    }

    /// Empties database `db`, and waits until Redis has freed what it held (at most 30 s), so
    /// that the memory and CPU measured next are not its.
    pub async fn flush(&self, db: u8) -> anyhow::Result<()> {
        // ASYNC: emptying a million keys takes longer than a reply may.
        redis::cmd("FLUSHDB").arg("ASYNC").exec_async(&mut self.database(db).await?).await?;
        for _ in 0..300 {
            if self.info("memory").await?.get("lazyfree_pending_objects").is_none_or(|n| n == "0") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// How many keys database `db` holds.
    pub async fn dbsize(&self, db: u8) -> anyhow::Result<u64> {
        Ok(redis::cmd("DBSIZE").query_async(&mut self.database(db).await?).await?)
    }

    pub async fn set(&self, db: u8, key: &str, value: &[u8]) -> anyhow::Result<()> {
        redis::cmd("SET").arg(key).arg(value).exec_async(&mut self.database(db).await?).await?;
        Ok(())
    }

    /// Starts counting the commands clients send to database `db`.
    pub async fn monitor(&self, db: u8) -> anyhow::Result<Monitor> {
        let mut stream = TcpStream::connect(&self.addr).await?;
        stream.write_all(b"MONITOR\r\n").await?;
        let mut lines = BufReader::new(stream).lines();
        let ok = lines.next_line().await?.unwrap_or_default();
        anyhow::ensure!(ok == "+OK", "MONITOR answered {ok}");
        let tag = format!("[{db} ");
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                tokio::select! {
                    line = lines.next_line() => match line {
                        Ok(Some(line)) => seen.extend(client_command(&line, &tag)),
                        _ => break,
                    },
                    _ = &mut stopped => break,
                }
            }
            seen
        });
        Ok(Monitor { task, stop })
    }
}

/// A `MONITOR` connection collecting command names.
#[derive(Debug)]
pub struct Monitor {
    task: JoinHandle<Vec<String>>,
    stop: oneshot::Sender<()>,
}

impl Monitor {
    /// The commands clients sent since the monitor started, in order (commands scripts ran
    /// inside Redis are not round trips and are left out).
    pub async fn stop(self) -> Vec<String> {
        // MONITOR shows a command once it ran: give the last ones time to arrive.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// `+1700000000.123456 [13 127.0.0.1:5000] "EVALSHA" "…"` → `EVALSHA`, for database `tag`
/// (`"[13 "`); lines of scripts (`[13 lua]`) and of other databases give `None`.
fn client_command(line: &str, tag: &str) -> Option<String> {
    let at = line.find(tag)?;
    let rest = &line[at + tag.len()..];
    let (client, command) = rest.split_once("] ")?;
    if client == "lua" {
        return None;
    }
    Some(command.split('"').nth(1)?.to_ascii_uppercase())
}

fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_owned(), v.trim().to_owned())).collect()
}

/// What `redis-benchmark` measured for GET.
#[derive(Debug, Clone, Copy)]
pub struct BenchmarkGet {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `redis-benchmark -t get` with `connections` clients, `requests` requests, reading a value of
/// `value` bytes stored first in `BENCHMARK_DB`.
pub async fn benchmark_get(
    redis: &RedisServer,
    connections: usize,
    requests: u64,
    value: &[u8],
) -> anyhow::Result<BenchmarkGet> {
    // Without -r, redis-benchmark reads this very key.
    redis.set(BENCHMARK_DB, "key:__rand_int__", value).await?;
    let (host, port) = redis.addr.rsplit_once(':').context("Redis address is HOST:PORT")?;
    let output = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "--dbnum", &BENCHMARK_DB.to_string(), "-c", &connections.to_string()])
        .args(["-n", &requests.to_string(), "-t", "get", "--csv"])
        .output()
        .await
        .context("running redis-benchmark (Debian package redis-tools)")?;
    anyhow::ensure!(output.status.success(), "redis-benchmark failed: {}", String::from_utf8_lossy(&output.stderr));
    parse_benchmark_csv(&String::from_utf8_lossy(&output.stdout))
}

fn parse_benchmark_csv(csv: &str) -> anyhow::Result<BenchmarkGet> {
    let mut lines = csv.lines().map(|l| l.split(',').map(|f| f.trim_matches('"')).collect::<Vec<_>>());
    let header = lines.next().context("redis-benchmark printed nothing")?;
    let row = lines.find(|r| r.first() == Some(&"GET")).context("redis-benchmark printed no GET row")?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let at = header.iter().position(|h| *h == name).with_context(|| format!("no {name} column"))?;
        Ok(row.get(at).context("a short row")?.parse()?)
    };
    Ok(BenchmarkGet { rate: field("rps")?, p50_ms: field("p50_latency_ms")?, p99_ms: field("p99_latency_ms")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_name_client_commands_only() {
        let tag = "[13 ";
        assert_eq!(
            client_command(r#"+1700000000.1 [13 127.0.0.1:5000] "evalsha" "abc" "1""#, tag).as_deref(),
            Some("EVALSHA")
        );
        assert_eq!(client_command(r#"+1700000000.1 [13 lua] "HGET" "k" "e""#, tag), None);
        assert_eq!(client_command(r#"+1700000000.1 [0 127.0.0.1:5000] "GET" "k""#, tag), None);
    }

    #[test]
    fn benchmark_csv_gives_rate_and_latencies() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"GET\",\"98039.22\",\"0.170\",\"0.048\",\"0.159\",\"0.255\",\"0.351\",\"1.071\"\n";
        let get = parse_benchmark_csv(csv).unwrap();
        assert_eq!((get.rate, get.p50_ms, get.p99_ms), (98039.22, 0.159, 0.351));
    }
}
