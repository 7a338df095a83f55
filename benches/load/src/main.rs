//! `cargo run --release -p sessanger-load [-- --quick]`: builds sessanger, the peer app and the
//! axum hello-world, runs them one after another against the local Redis, prints one table
//! and writes it, with a chart, to BENCHMARKS.md (`--quick`: to target/load-quick/).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use hyper::{Method, StatusCode, header};
use indicatif::{ProgressBar, ProgressStyle};
use sessanger_core::{NewSession, SessionManager};
use sessanger_load::{
    attributes,
    load::{self, Target},
    payload_bytes,
    process::{Server, cpu_per_request},
    redis_server::{BENCHMARK_DB, BenchmarkGet, PEER_DB, RedisServer, SESSANGER_DB, benchmark_get},
    report::{Figure, Report, Run, splice},
};
use tokio::process::Command;

#[derive(Debug, Parser)]
#[command(about = "Measures sessanger against tower-sessions + Redis, redis-benchmark and axum in one run")]
struct Args {
    /// A short run (under a minute once built): 2 s phases, 10³ vs 10⁴ stored sessions, the
    /// report under target/load-quick/. It fails on any error or lost increment, as CI wants.
    #[arg(long)]
    quick: bool,
    /// Concurrent connections of the read and write phases (and of redis-benchmark).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds each phase measures (default 6, --quick 2), after 1 s of warm-up.
    #[arg(long)]
    seconds: Option<u64>,
    /// Rounds of the sessanger-vs-peer GET and write phases, alternating; the median round
    /// counts (default 5, --quick 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// Sessions stored for the large half of the list-scaling figure (default 10⁶, --quick 10⁴).
    #[arg(long)]
    stored: Option<u64>,
    /// The Redis server (databases 13, 14 and 15 are emptied and used).
    #[arg(long, default_value = "127.0.0.1:6379")]
    redis: String,
    /// Use the binaries already built (in the target directory's `release`) instead of building them.
    #[arg(long)]
    no_build: bool,
}

const SMALL_STORE: u64 = 1_000;

/// The key the floor server reads, in `BENCHMARK_DB`.
const FLOOR_KEY: &str = "floor";

/// How long to load a target: `warmup` first (a run of its own, not measured), then `measure`.
#[derive(Debug, Clone, Copy)]
struct Plan {
    connections: usize,
    warmup: Duration,
    measure: Duration,
}

impl Plan {
    /// 64 clients on one counter, without warm-up: every increment must be counted.
    fn for_increments(self) -> Plan {
        Plan { connections: 64, warmup: Duration::ZERO, ..self }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    std::env::set_current_dir(&root)?;
    if !args.no_build {
        build().await?;
    }
    let seconds = args.seconds.unwrap_or(if args.quick { 2 } else { 6 });
    let plan =
        Plan { connections: args.connections, warmup: Duration::from_secs(1), measure: Duration::from_secs(seconds) };
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    let stored = args.stored.unwrap_or(if args.quick { 10_000 } else { 1_000_000 });
    anyhow::ensure!(stored > SMALL_STORE, "--stored must be above {SMALL_STORE}");
    let out_dir = if args.quick { root.join("target/load-quick") } else { root.clone() };
    std::fs::create_dir_all(&out_dir)?;

    let redis = RedisServer::connect(&args.redis).await?;
    for db in [SESSANGER_DB, PEER_DB, BENCHMARK_DB] {
        redis.flush(db).await?;
    }
    // The binaries are where cargo builds them: under CARGO_TARGET_DIR when it is set (a
    // target directory shared by several worktrees), relative to the workspace root.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir));
    let bench = Bench {
        redis,
        bin: target_dir.join("release"),
        work: tempfile::tempdir()?,
        plan,
        rounds,
        progress: progress(9 + 12 * rounds as u64),
    };
    let result = bench.run(stored, args.quick).await;
    for db in [SESSANGER_DB, PEER_DB, BENCHMARK_DB] {
        bench.redis.flush(db).await?;
    }
    bench.progress.finish_and_clear();
    let mut report = result?;
    report.header = header(&args, seconds, rounds, stored).await;

    println!("{}\n{}", report.figures_table(), report.runs_table());
    for note in &report.notes {
        println!("- {note}");
    }
    let chart = if args.quick { out_dir.join("load.svg") } else { root.join("benches/load/load.svg") };
    report.chart(&chart)?;
    let markdown = out_dir.join("BENCHMARKS.md");
    let chart_link = if args.quick { "load.svg" } else { "benches/load/load.svg" };
    let existing = std::fs::read_to_string(&markdown).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&markdown, splice(&existing, &report.markdown(chart_link)))?;
    println!("written to {} and {}", markdown.display(), chart.display());

    if args.quick {
        let failed: Vec<_> = report.runs.iter().filter(|r| r.failures > 0).map(|r| (r.system, r.operation)).collect();
        anyhow::ensure!(failed.is_empty(), "requests failed in {failed:?}");
        let broken: Vec<_> =
            report.figures.iter().filter(|f| f.met == Some(false) && f.name.starts_with("correct:")).collect();
        anyhow::ensure!(broken.is_empty(), "correctness figures failed: {broken:?}");
    }
    Ok(())
}

async fn build() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for args in [
        &["build", "--release", "-q", "-p", "sessanger", "--no-default-features", "--features", "redis"][..],
        &["build", "--release", "-q", "-p", "sessanger-load", "--bin", "peer", "--bin", "hello", "--bin", "floor"][..],
    ] {
        eprintln!("building: cargo {}", args.join(" "));
        let status = Command::new(&cargo).args(args).status().await?;
        anyhow::ensure!(status.success(), "cargo {} failed", args.join(" "));
    }
    Ok(())
}

fn progress(steps: u64) -> ProgressBar {
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} {msg}").expect("a template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

struct Bench {
    redis: RedisServer,
    bin: PathBuf,
    work: tempfile::TempDir,
    plan: Plan,
    rounds: usize,
    progress: ProgressBar,
}

/// A sessanger server and what a client needs to talk to it.
struct Sessanger {
    server: Server,
    token: String,
}

impl Sessanger {
    fn target(&self, method: Method, path: impl Into<String>) -> Target {
        Target::get(self.server.addr, path)
            .method(method)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
    }

    async fn create(&self, user: &str) -> anyhow::Result<String> {
        let target = self
            .target(Method::POST, "/v1/sessions")
            .json(serde_json::json!({"user_id": user, "attributes": attributes()}));
        let (_, body) = load::once(&target).await?;
        let reply: serde_json::Value = serde_json::from_slice(&body)?;
        Ok(reply["session_id"].as_str().context("a session_id in the reply")?.to_owned())
    }
}

impl Bench {
    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Starts the bench binary `bin` listening on `port` (its first argument), then `args`.
    async fn start(&self, name: &'static str, bin: &str, port: u16, args: &[String]) -> anyhow::Result<Server> {
        let mut command = Command::new(self.bin.join(bin));
        command.arg(Self::addr(port).to_string()).args(args);
        Server::start(name, command, Self::addr(port), &self.work.path().join(format!("{bin}.log"))).await
    }

    async fn sessanger(&self, name: &'static str, port: u16, store: &str) -> anyhow::Result<Sessanger> {
        self.sessanger_with(name, port, store, "store:\n  key_prefix: bench\n", None).await
    }

    /// sessanger on `store` with the rest of its config as `config` (YAML). It registers an
    /// admin service in a new store and writes its token; a node joining a store already in
    /// use is given the token of the node that did (`joining`).
    async fn sessanger_with(
        &self,
        name: &'static str,
        port: u16,
        store: &str,
        config: &str,
        joining: Option<&Sessanger>,
    ) -> anyhow::Result<Sessanger> {
        let dir = self.work.path().join(name);
        std::fs::create_dir_all(&dir)?;
        let config = config.replacen("store:\n", &format!("store:\n  url: \"{store}\"\n"), 1);
        let (config_text, config) = (config, dir.join("config.yaml"));
        std::fs::write(&config, config_text)?;
        let addr = Self::addr(port);
        let mut command = Command::new(self.bin.join("sessanger"));
        command.arg("serve").arg("--config").arg(&config).arg("--data-dir").arg(&dir);
        command.arg("--listen").arg(addr.to_string()).env("RUST_LOG", "warn");
        let server = Server::start(name, command, addr, &dir.join("log")).await?;
        let token = match joining {
            Some(first) => first.token.clone(),
            None => std::fs::read_to_string(dir.join("admin.token"))?.trim().to_owned(),
        };
        Ok(Sessanger { server, token })
    }

    /// Loads `target` served by `server` and reads both processes' CPU time around it.
    async fn measure(
        &self,
        server: &Server,
        redis_too: bool,
        operation: &'static str,
        target: &Target,
        plan: Plan,
    ) -> anyhow::Result<(Run, load::Outcome)> {
        self.progress.set_message(format!("{}: {operation}", server.name));
        let scratch = self.work.path();
        if !plan.warmup.is_zero() {
            load::run(target, plan.connections, plan.warmup, scratch).await?;
        }
        let (cpu, redis_cpu) = (server.cpu()?, self.redis.cpu().await?);
        let outcome = load::run(target, plan.connections, plan.measure, scratch).await?;
        let (cpu_after, redis_after) = (server.cpu()?, self.redis.cpu().await?);
        self.progress.inc(1);
        let run = Run {
            system: server.name,
            operation,
            rate: outcome.rate(),
            p50_ms: outcome.p50_ms,
            p99_ms: outcome.p99_ms,
            cpu_us: Some(cpu_per_request(cpu, cpu_after, outcome.requests)),
            redis_cpu_us: redis_too.then(|| cpu_per_request(redis_cpu, redis_after, outcome.requests)),
            failures: outcome.failures,
        };
        Ok((run, outcome))
    }

    /// Measures every phase, then turns the measurements into the report.
    async fn run(&self, stored: u64, quick: bool) -> anyhow::Result<Report> {
        let measured = self.measure_all(stored).await?;
        Ok(measured.report(self, stored, quick))
    }

    /// Every phase in turn; each system stops once its last phase is done, so it does not
    /// share the cores with the systems measured after it.
    async fn measure_all(&self, stored: u64) -> anyhow::Result<Measured> {
        let hello = self.hello_world().await?;

        let on_redis = self.start_on_redis().await?;
        let floor = self.start_floor(&on_redis.body).await?;
        let compared = self.compare(&on_redis, &floor).await?;
        floor.stop().await?;
        let staleness = self.staleness(&on_redis).await?;
        let increments = self.increments(&on_redis).await?;
        let events = self.event_cost(&on_redis.sessanger).await?;
        let peer_bytes = self.peer_memory(&on_redis.peer.server, self.plan).await?;
        let OnRedis { sessanger, sid, peer, body, node_b, uncached } = on_redis;
        peer.server.stop().await?;
        node_b.server.stop().await?;
        uncached.server.stop().await?;

        self.progress.set_message("sessanger (Redis): round trips");
        let trips = self.round_trips(&sessanger, &sid).await?;
        self.progress.inc(1);
        let scaling = self.list_scaling(&sessanger, stored).await?;
        sessanger.server.stop().await?;

        let [embedded, memory, healthz] = self.local_stores().await?;
        let ceiling = self.redis_ceiling(&body).await?;
        Ok(Measured {
            hello,
            compared,
            staleness,
            increments,
            events,
            peer_bytes,
            trips,
            scaling,
            embedded,
            memory,
            healthz,
            ceiling,
        })
    }

    /// The axum ceiling: a hello-world, alone.
    async fn hello_world(&self) -> anyhow::Result<Run> {
        let hello = self.start("axum hello-world", "hello", 18093, &[]).await?;
        let (run, _) = self.measure(&hello, false, "GET /", &Target::get(hello.addr, "/"), self.plan).await?;
        hello.stop().await?;
        Ok(run)
    }

    /// Starts sessanger on Redis with one session (and a second node beside it, and a node
    /// without a cache, on the same keys) and the peer with one logged-in session, and reads
    /// sessanger's answer for that session.
    async fn start_on_redis(&self) -> anyhow::Result<OnRedis> {
        let url = self.redis.url(SESSANGER_DB);
        let sessanger = self.sessanger("sessanger (Redis)", 18091, &url).await?;
        let config = "store:\n  key_prefix: bench\n";
        let node_b = self.sessanger_with("sessanger (Redis, node B)", 18099, &url, config, Some(&sessanger)).await?;
        let config = "store:\n  key_prefix: bench\n  cache: false\n";
        let uncached =
            self.sessanger_with("sessanger (Redis, cache off)", 18100, &url, config, Some(&sessanger)).await?;
        let sid = sessanger.create("bench-user").await?;
        let server = self.start("tower-sessions (Redis)", "peer", 18092, &[self.redis.url(PEER_DB)]).await?;
        let (headers, _) = load::once(&Target::get(server.addr, "/login")).await?;
        let cookie = headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("the peer set its session cookie")?
            .to_owned();
        let (_, body) = load::once(&sessanger.target(Method::GET, format!("/v1/sessions/{sid}"))).await?;
        Ok(OnRedis { sessanger, sid, peer: Peer { server, cookie }, body, node_b, uncached })
    }

    /// Starts the floor, which reads sessanger's answer for the session, as stored bytes,
    /// from Redis.
    async fn start_floor(&self, body: &[u8]) -> anyhow::Result<Server> {
        self.redis.set(BENCHMARK_DB, FLOOR_KEY, body).await?;
        self.start("floor: axum + 1 Redis GET", "floor", 18096, &[self.redis.url(BENCHMARK_DB), FLOOR_KEY.into()]).await
    }

    /// sessanger's reads and writes against the peer's and the floor's, taking turns round
    /// after round: the machine's speed drifts, and a comparison of two runs minutes apart
    /// would measure the drift.
    async fn compare(&self, on_redis: &OnRedis, floor: &Server) -> anyhow::Result<Compared> {
        let OnRedis { sessanger: s, sid, peer, uncached, .. } = on_redis;
        let path = format!("/v1/sessions/{sid}/attributes");
        let compared = [
            (&s.server, "GET session", s.target(Method::GET, format!("/v1/sessions/{sid}"))),
            (&uncached.server, "GET session", uncached.target(Method::GET, format!("/v1/sessions/{sid}"))),
            (&peer.server, "GET session", peer.target(Method::GET, "/read")),
            (floor, "GET /", Target::get(floor.addr, "/")),
            // Like the peer's `ok`, the answer carries no session: the client asks for none.
            (
                &s.server,
                "PATCH set 1 attribute",
                s.target(Method::PATCH, &path)
                    .header(header::HeaderName::from_static("prefer"), "return=minimal")
                    .json(serde_json::json!({"set": {"theme": "light"}})),
            ),
            (&peer.server, "update-and-save 1 value", peer.target(Method::POST, "/write")),
        ];
        let mut rounds: Vec<Vec<Run>> = vec![Vec::new(); compared.len()];
        for _ in 0..self.rounds {
            for ((server, operation, target), runs) in compared.iter().zip(&mut rounds) {
                runs.push(self.measure(server, true, operation, target, self.plan).await?.0);
            }
        }
        let by_round = compared
            .iter()
            .zip(&rounds)
            .map(|((server, operation, _), runs)| {
                let rates: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.rate)).collect();
                format!("{} {operation}, req/s by round: {}", server.name, rates.join(", "))
            })
            .collect();
        let [get, uncached_get, peer_get, floor_get, patch, peer_write]: [Run; 6] =
            rounds.into_iter().map(median).collect::<Vec<_>>().try_into().expect("six comparisons");
        Ok(Compared { get, uncached_get, peer_get, floor_get, patch, peer_write, by_round })
    }

    /// How long node B keeps answering for a session node A revoked: each trial creates a
    /// session on A, reads it twice on B (so B holds it in memory), revokes it on A, and from
    /// A's answer on, reads it on B until B answers 404 — one kept-alive connection per node.
    async fn staleness(&self, on_redis: &OnRedis) -> anyhow::Result<Staleness> {
        let OnRedis { sessanger: a, node_b: b, .. } = on_redis;
        self.progress.set_message("revoke on node A, 404 on node B");
        let trials = if self.rounds > 1 { STALENESS_TRIALS } else { STALENESS_TRIALS / 5 };
        let (mut on_a, mut on_b) =
            (load::Connection::open(a.server.addr).await?, load::Connection::open(b.server.addr).await?);
        let mut delays = Vec::with_capacity(trials);
        for _ in 0..trials {
            let sid = a.create("bench-staleness").await?;
            let read = b.target(Method::GET, format!("/v1/sessions/{sid}"));
            for _ in 0..2 {
                anyhow::ensure!(on_b.status(&read).await? == StatusCode::OK, "node B reads the new session");
            }
            let revoke = a.target(Method::DELETE, format!("/v1/sessions/{sid}"));
            anyhow::ensure!(on_a.status(&revoke).await?.is_success(), "node A revokes");
            let revoked = std::time::Instant::now();
            loop {
                match on_b.status(&read).await? {
                    StatusCode::NOT_FOUND => break,
                    StatusCode::OK => {
                        anyhow::ensure!(revoked.elapsed() < Duration::from_secs(5), "node B never saw the revoke")
                    }
                    other => anyhow::bail!("node B answered {other}"),
                }
            }
            delays.push(revoked.elapsed());
        }
        self.progress.inc(1);
        delays.sort();
        let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
        Ok(Staleness { trials, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1.0) })
    }

    /// 64 clients increment one counter, in sessanger's session and then in the peer's; the
    /// counters are read back to count lost increments.
    async fn increments(&self, on_redis: &OnRedis) -> anyhow::Result<Increments> {
        let OnRedis { sessanger: s, sid, peer, .. } = on_redis;
        let plan = self.plan.for_increments();
        let incr = s
            .target(Method::PATCH, format!("/v1/sessions/{sid}/attributes"))
            .json(serde_json::json!({"incr": {"counter": 1}}));
        let (sessanger, outcome) = self.measure(&s.server, true, "PATCH incr (64 clients)", &incr, plan).await?;
        let (_, after) = load::once(&s.target(Method::GET, format!("/v1/sessions/{sid}"))).await?;
        let counter =
            serde_json::from_slice::<serde_json::Value>(&after)?["attributes"]["counter"].as_u64().unwrap_or(0);
        let (peer_run, peer_outcome) = self
            .measure(&peer.server, true, "read-add-insert (64 clients)", &peer.target(Method::POST, "/incr"), plan)
            .await?;
        let (_, peer_counter) = load::once(&peer.target(Method::GET, "/counter")).await?;
        let peer_counter: u64 = String::from_utf8_lossy(&peer_counter).trim().parse()?;
        Ok(Increments {
            sessanger,
            answered: outcome.requests - outcome.failures,
            counter,
            peer: peer_run,
            peer_answered: peer_outcome.requests - peer_outcome.failures,
            peer_counter,
        })
    }

    /// What recording events costs: PATCH and create on `recording` (events on, the default)
    /// and on the same build with `events.record: false`, under a prefix of its own in the
    /// same Redis, taking turns round after round.
    async fn event_cost(&self, recording: &Sessanger) -> anyhow::Result<EventCost> {
        let config = "store:\n  key_prefix: bench-quiet\nevents:\n  record: false\n";
        let quiet = self
            .sessanger_with("sessanger (Redis, events off)", 18098, &self.redis.url(SESSANGER_DB), config, None)
            .await?;
        let mut targets = Vec::new();
        for s in [recording, &quiet] {
            let sid = s.create("bench-events").await?;
            let patch = s
                .target(Method::PATCH, format!("/v1/sessions/{sid}/attributes"))
                .header(header::HeaderName::from_static("prefer"), "return=minimal")
                .json(serde_json::json!({"set": {"theme": "light"}}));
            let create = s
                .target(Method::POST, "/v1/sessions")
                .json(serde_json::json!({"user_id": "bench-created", "attributes": attributes()}));
            targets.push((s, "PATCH set 1 attribute", patch));
            targets.push((s, "create (POST /v1/sessions)", create));
        }
        // Recording and quiet alternate within each operation: on, off, on, off.
        targets.swap(1, 2);
        let mut rounds: Vec<Vec<Run>> = vec![Vec::new(); targets.len()];
        for _ in 0..self.rounds {
            for ((s, operation, target), runs) in targets.iter().zip(&mut rounds) {
                runs.push(self.measure(&s.server, true, operation, target, self.plan).await?.0);
            }
        }
        quiet.server.stop().await?;
        let [patch, quiet_patch, create, quiet_create]: [Run; 4] =
            rounds.into_iter().map(median).collect::<Vec<_>>().try_into().expect("four phases");
        Ok(EventCost { patch, quiet_patch, create, quiet_create })
    }

    /// sessanger's GET on the embedded store, then on the memory store, then its `/healthz`
    /// (the memory store's server: a probe touches no store).
    async fn local_stores(&self) -> anyhow::Result<[Run; 3]> {
        let mut local = Vec::new();
        for (name, port, store) in [
            (
                "sessanger (embedded)",
                18094,
                format!("embedded://{}", self.work.path().join("embedded-store").display()),
            ),
            ("sessanger (memory)", 18095, "memory://".to_owned()),
        ] {
            let s = self.sessanger(name, port, &store).await?;
            let sid = s.create("bench-user").await?;
            let (run, _) = self
                .measure(
                    &s.server,
                    false,
                    "GET session",
                    &s.target(Method::GET, format!("/v1/sessions/{sid}")),
                    self.plan,
                )
                .await?;
            local.push(run);
            if store == "memory://" {
                let probe = Target::get(s.server.addr, "/healthz");
                local.push(self.measure(&s.server, false, "GET /healthz", &probe, self.plan).await?.0);
            }
            s.server.stop().await?;
        }
        Ok(local.try_into().expect("two local stores and a probe"))
    }

    /// The ceiling of a read: Redis alone, reading a value of the size sessanger answers.
    async fn redis_ceiling(&self, body: &[u8]) -> anyhow::Result<BenchmarkGet> {
        self.progress.set_message("redis-benchmark GET");
        let requests = (self.plan.measure.as_secs_f64() * 60_000.0) as u64;
        let ceiling = benchmark_get(&self.redis, self.plan.connections, requests, body).await?;
        self.progress.inc(1);
        Ok(ceiling)
    }

    /// Redis memory per session of the peer: `used_memory` before and after its `/login` (each
    /// request without a cookie starts a session) is loaded for one phase, over the keys added.
    async fn peer_memory(&self, peer: &Server, plan: Plan) -> anyhow::Result<f64> {
        self.progress.set_message("tower-sessions (Redis): memory per session");
        let (keys, before) = (self.redis.dbsize(PEER_DB).await?, self.redis.used_memory().await?);
        load::run(&Target::get(peer.addr, "/login"), plan.connections, plan.measure, self.work.path()).await?;
        let (keys_after, after) = (self.redis.dbsize(PEER_DB).await?, self.redis.used_memory().await?);
        anyhow::ensure!(keys_after > keys, "the peer stored no sessions on /login");
        Ok(after.saturating_sub(before) as f64 / (keys_after - keys) as f64)
    }

    /// Redis commands per operation, as `(operation, round trips, commands seen)`.
    async fn round_trips(&self, s: &Sessanger, sid: &str) -> anyhow::Result<Vec<(&'static str, usize, String)>> {
        let user = "round-trips";
        let attributes_path = format!("/v1/sessions/{sid}/attributes");
        let list_path = format!("/v1/users/{user}/sessions");
        let mut trips = Vec::new();
        // A first request fills the service cache, so no operation below pays for it.
        load::once(&s.target(Method::GET, format!("/v1/sessions/{sid}"))).await?;
        for (operation, target) in [
            ("get", s.target(Method::GET, format!("/v1/sessions/{sid}"))),
            (
                "set attribute",
                s.target(Method::PATCH, attributes_path.as_str()).json(serde_json::json!({"set": {"lang": "fr"}})),
            ),
            (
                "create",
                s.target(Method::POST, "/v1/sessions")
                    .json(serde_json::json!({"user_id": user, "attributes": attributes()})),
            ),
            ("list user", s.target(Method::GET, list_path.as_str())),
            ("revoke all", s.target(Method::DELETE, list_path.as_str())),
        ] {
            // The reaper's pass (a ZCOUNT per shard tag, every gc_interval) is not part of any
            // operation, nor is loading a script into a Redis that lost it or never had it (a
            // restarted one), nor reading the caller's service record again when its cache
            // entry aged out (an HGET, twice a second at most), nor the event feed's poll of
            // the log (an XRANGE, or a GET of its counter while nobody subscribes, twice a
            // second): a window any fell into is measured again.
            let mut seen = Vec::new();
            for _ in 0..5 {
                let monitor = self.redis.monitor(SESSANGER_DB).await?;
                for _ in 0..3 {
                    load::once(&target).await?;
                }
                seen = monitor.stop().await;
                // The node cache's heartbeat (a PING every 200 ms) is nobody's operation, and a
                // read it fills sends `CLIENT CACHING YES` in the same write as the read.
                seen.retain(|c| c != "PING" && c != "CLIENT");
                // The event feed keeps its place with a GET of the log's counter twice a second.
                if !seen.iter().any(|c| ["ZCOUNT", "SCRIPT", "HGET", "XRANGE", "GET"].contains(&c.as_str())) {
                    break;
                }
            }
            let mut names = seen.clone();
            names.dedup();
            trips.push((operation, seen.len().div_ceil(3), names.join(", ")));
        }
        Ok(trips)
    }

    /// Lists a user's 10 sessions with `SMALL_STORE` sessions in one store and `stored` in
    /// another (`s`'s), taking turns like the other comparisons, and measures Redis memory per
    /// session while filling the large one.
    async fn list_scaling(&self, s: &Sessanger, stored: u64) -> anyhow::Result<Scaling> {
        // The small store has a database of its own, so each store is its own keyspace.
        let small = self.sessanger("sessanger (Redis, small store)", 18097, &self.redis.url(BENCHMARK_DB)).await?;
        let user = "list-user";
        for server in [s, &small] {
            for _ in 0..10 {
                server.create(user).await?;
            }
        }
        Filler::connect(&self.redis.url(BENCHMARK_DB)).await?.fill(0, SMALL_STORE, &self.progress).await?;
        let bytes_per_session = self.fill_memory(SESSANGER_DB, stored).await?;
        let plan = Plan { connections: 8, ..self.plan };
        let (mut small_runs, mut large_runs) = (Vec::new(), Vec::new());
        for _ in 0..self.rounds {
            for (server, runs) in [(&small, &mut small_runs), (s, &mut large_runs)] {
                let list = server.target(Method::GET, format!("/v1/users/{user}/sessions"));
                runs.push(self.measure(&server.server, true, "list 10 of a user", &list, plan).await?.0);
            }
        }
        small.server.stop().await?;
        Ok(Scaling { small_rate: median(small_runs).rate, large_rate: median(large_runs).rate, bytes_per_session })
    }

    /// Redis memory per session: `used_memory` before and after storing `stored` sessions in
    /// database `db`, over their number.
    async fn fill_memory(&self, db: u8, stored: u64) -> anyhow::Result<f64> {
        let before = self.redis.used_memory().await?;
        Filler::connect(&self.redis.url(db)).await?.fill(0, stored, &self.progress).await?;
        Ok(self.redis.used_memory().await?.saturating_sub(before) as f64 / stored as f64)
    }
}

/// Trials of the staleness phase (a fifth of it in a one-round run).
const STALENESS_TRIALS: usize = 500;

/// Revoke on node A → 404 on node B, over the trials.
struct Staleness {
    trials: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// What every phase measured, for the report.
struct Measured {
    hello: Run,
    compared: Compared,
    staleness: Staleness,
    increments: Increments,
    events: EventCost,
    /// The peer's Redis memory per session, in bytes.
    peer_bytes: f64,
    /// `(operation, round trips, commands seen)`.
    trips: Vec<(&'static str, usize, String)>,
    scaling: Scaling,
    embedded: Run,
    memory: Run,
    /// `/healthz` on the memory store's server.
    healthz: Run,
    ceiling: BenchmarkGet,
}

/// The systems on Redis, up together so that their phases can alternate: sessanger and the
/// peer (tower-sessions + tower-sessions-redis-store), each with one session.
struct OnRedis {
    sessanger: Sessanger,
    /// The id of sessanger's session.
    sid: String,
    peer: Peer,
    /// sessanger's answer for its session: the value the floor and redis-benchmark read.
    body: bytes::Bytes,
    /// A second sessanger node on the same keys, with its own node cache.
    node_b: Sessanger,
    /// A sessanger node on the same keys with `store.cache: false`.
    uncached: Sessanger,
}

/// The peer app and the cookie of its session.
struct Peer {
    server: Server,
    /// `name=value`, as a request sends it back.
    cookie: String,
}

impl Peer {
    fn target(&self, method: Method, path: &str) -> Target {
        Target::get(self.server.addr, path).method(method).header(header::COOKIE, self.cookie.clone())
    }
}

/// The median round of each sessanger-vs-peer phase.
struct Compared {
    get: Run,
    /// The same GET on the node without a cache.
    uncached_get: Run,
    peer_get: Run,
    floor_get: Run,
    patch: Run,
    peer_write: Run,
    /// Each phase's rate in every round, as notes.
    by_round: Vec<String>,
}

/// Writes with events recorded and with recording off (`quiet_`), median rounds.
struct EventCost {
    patch: Run,
    quiet_patch: Run,
    create: Run,
    quiet_create: Run,
}

/// The increments on one counter: the runs, the requests answered and what the counters say.
struct Increments {
    sessanger: Run,
    answered: u64,
    counter: u64,
    peer: Run,
    peer_answered: u64,
    peer_counter: u64,
}

impl Increments {
    /// Increments sessanger answered but its counter lacks. wrk counts answered requests; a
    /// request still in flight when it stops is applied but not counted, so the counter may
    /// exceed the count, and falls short only by lost ones.
    fn lost(&self) -> u64 {
        self.answered.saturating_sub(self.counter)
    }

    fn peer_lost(&self) -> u64 {
        self.peer_answered.saturating_sub(self.peer_counter)
    }
}

impl Measured {
    /// The runs table, the figures against their targets and the notes on how they were measured.
    fn report(self, bench: &Bench, stored: u64, quick: bool) -> Report {
        let (runs, figures) = (self.runs(), self.figures(stored));
        let mut notes = self.compared.by_round;
        notes.extend(bench.method_notes(stored, quick));
        Report { runs, figures, notes, ..Report::default() }
    }

    fn runs(&self) -> Vec<Run> {
        let Compared { get, uncached_get, peer_get, floor_get, patch, peer_write, .. } = &self.compared;
        vec![
            get.clone(),
            uncached_get.clone(),
            patch.clone(),
            self.increments.sessanger.clone(),
            peer_get.clone(),
            peer_write.clone(),
            self.increments.peer.clone(),
            self.events.patch.clone(),
            self.events.quiet_patch.clone(),
            self.events.create.clone(),
            self.events.quiet_create.clone(),
            floor_get.clone(),
            self.embedded.clone(),
            self.memory.clone(),
            self.healthz.clone(),
            self.hello.clone(),
            Run {
                system: "redis-benchmark",
                operation: "GET (same value size)",
                rate: self.ceiling.rate,
                p50_ms: self.ceiling.p50_ms,
                p99_ms: self.ceiling.p99_ms,
                cpu_us: None,
                redis_cpu_us: None,
                failures: 0,
            },
        ]
    }

    fn figures(&self, stored: u64) -> Vec<Figure> {
        let Compared { get, uncached_get, peer_get, floor_get, patch, peer_write, .. } = &self.compared;
        let (Scaling { small_rate, large_rate, bytes_per_session }, ceiling) = (&self.scaling, &self.ceiling);
        let Increments { answered, counter, peer_answered, .. } = &self.increments;
        let (lost, peer_lost) = (self.increments.lost(), self.increments.peer_lost());
        let cpu = |run: &Run| run.cpu_us.unwrap_or(f64::NAN);
        let redis_cpu = |run: &Run| run.redis_cpu_us.unwrap_or(f64::NAN);
        let EventCost { patch: recorded_patch, quiet_patch, create, quiet_create } = &self.events;
        let list_name = format!("time to list a user's 10 sessions, {stored} vs {SMALL_STORE} stored");
        // (figure, sessanger, its baseline, target, unit); a list's time is the inverse of
        // its rate at the same concurrency.
        let ratios = [
            ("GET req/s, sessanger (Redis, node cache) vs peer", get.rate, peer_get.rate, AtLeast(2.0), "req/s"),
            ("GET p99, sessanger (Redis, node cache) vs peer", get.p99_ms, peer_get.p99_ms, AtMost(1.2), "ms"),
            ("server CPU per read, node cache, vs peer", cpu(get), cpu(peer_get), AtMost(0.5), "µs"),
            ("GET req/s, cache off, vs peer", uncached_get.rate, peer_get.rate, AtLeast(1.3), "req/s"),
            ("attribute PATCH req/s vs peer's update-and-save", patch.rate, peer_write.rate, AtLeast(2.0), "req/s"),
            (
                "attribute increment req/s vs peer's read-add-insert",
                self.increments.sessanger.rate,
                self.increments.peer.rate,
                AtLeast(1.5),
                "req/s",
            ),
            ("GET req/s vs redis-benchmark GET (the ceiling)", get.rate, ceiling.rate, AtLeast(0.5), "req/s"),
            (list_name.as_str(), 1e6 / large_rate, 1e6 / small_rate, AtMost(1.2), "µs"),
            ("embedded store GET req/s vs memory store", self.embedded.rate, self.memory.rate, AtLeast(0.7), "req/s"),
            (
                "events recorded: server CPU per PATCH vs events off",
                cpu(recorded_patch),
                cpu(quiet_patch),
                AtMost(1.15),
                "µs",
            ),
            (
                "events recorded: Redis CPU per PATCH vs events off",
                redis_cpu(recorded_patch),
                redis_cpu(quiet_patch),
                AtMost(1.3),
                "µs",
            ),
            (
                "events recorded: server CPU per create vs events off",
                cpu(create),
                cpu(quiet_create),
                AtMost(1.15),
                "µs",
            ),
            (
                "events recorded: Redis CPU per create vs events off",
                redis_cpu(create),
                redis_cpu(quiet_create),
                AtMost(1.3),
                "µs",
            ),
        ];
        let mut figures: Vec<Figure> = ratios
            .into_iter()
            .map(|(name, ours, theirs, bound, unit)| bound.figure(name, ours, theirs, unit))
            .collect();
        figures.push(Figure {
            name: "correct: increments lost, 64 clients on one counter".into(),
            measured: format!(
                "sessanger {lost} of {answered} ({counter} counted); peer {peer_lost} of {peer_answered} ({:.0} %)",
                100.0 * peer_lost as f64 / (*peer_answered).max(1) as f64
            ),
            target: "0".into(),
            met: Some(lost == 0 && *counter > 0),
        });
        figures.push(Figure {
            name: "correct: Redis round trips per operation".into(),
            measured: self
                .trips
                .iter()
                .map(|(op, n, cmds)| format!("{op} {n} ({cmds})"))
                .collect::<Vec<_>>()
                .join("; "),
            target: "≤ 1 each (0: from the node cache)".into(),
            met: Some(self.trips.iter().all(|(_, n, _)| *n <= 1)),
        });
        let hot_path = cpu(&self.memory) - cpu(&self.hello);
        figures.push(Figure {
            name: "memory-store GET server CPU − axum hello-world's".into(),
            measured: format!("**{hot_path:.1} µs** ({:.1} vs {:.1} µs)", cpu(&self.memory), cpu(&self.hello)),
            target: "≤ 4 µs".into(),
            met: Some(hot_path <= 4.0),
        });
        let probe = cpu(&self.healthz) / cpu(&self.hello);
        figures.push(Figure {
            name: "`/healthz` server CPU vs axum hello-world's".into(),
            measured: format!("**{probe:.2}×** ({:.1} vs {:.1} µs)", cpu(&self.healthz), cpu(&self.hello)),
            target: "≤ 1.2×".into(),
            met: Some(probe <= 1.2),
        });
        let Staleness { trials, p50_ms, p99_ms, max_ms } = self.staleness;
        figures.push(Figure {
            name: format!("revoke on node A → 404 on node B, p99 of {trials} trials"),
            measured: format!("**{p99_ms:.2} ms** (p50 {p50_ms:.2} ms, max {max_ms:.2} ms)"),
            target: "≤ 10 ms".into(),
            met: Some(p99_ms <= 10.0),
        });
        let payload = payload_bytes();
        figures.push(Figure {
            name: format!("Redis memory per session ({payload} B of attributes, with index, expiry and events)"),
            measured: format!("{bytes_per_session:.0} B"),
            target: "≤ 400 B".into(),
            met: Some(*bytes_per_session <= 400.0),
        });
        figures.push(Figure {
            name: "context: the peer's Redis memory per session (one string each, no index)".into(),
            measured: format!("{:.0} B", self.peer_bytes),
            target: String::new(),
            met: None,
        });
        figures.push(Figure {
            name: "context: the floor (axum + 1 Redis GET, no session logic) vs peer".into(),
            measured: format!(
                "GET req/s {:.2}×, server CPU per read {:.2}× ({:.1} vs {:.1} µs)",
                floor_get.rate / peer_get.rate,
                cpu(floor_get) / cpu(peer_get),
                cpu(floor_get),
                cpu(peer_get)
            ),
            target: String::new(),
            met: None,
        });
        figures.push(Figure {
            name: "context: sessanger (Redis) GET vs axum hello-world".into(),
            measured: format!("{:.2}× ({:.0} vs {:.0})", get.rate / self.hello.rate, get.rate, self.hello.rate),
            target: String::new(),
            met: None,
        });
        figures
    }
}

impl Bench {
    /// How the run measured: the notes under the tables.
    fn method_notes(&self, stored: u64, quick: bool) -> Vec<String> {
        let mut notes = Vec::new();
        notes.push(format!(
            "{} connections per phase ({} for the increments), {:.0} s warm-up then {:.0} s measured; wrk with 2 threads, closed loop (each connection sends its next request when the answer arrives), HTTP/1.1 keep-alive; wrk, the server and Redis share the machine's cores. sessanger (Redis) and the peer run side by side and take turns, GET and write phases alternating for {} rounds; the tables show each one's median round.",
            self.plan.connections,
            self.plan.for_increments().connections,
            self.plan.warmup.as_secs_f64(),
            self.plan.measure.as_secs_f64(),
            self.rounds
        ));
        notes.push("sessanger's PATCH asks `Prefer: return=minimal` (204 with the new version's ETag, no body), as the peer answers `ok`; its GET answers the whole session (~400 bytes), the peer's one value. The floor answers the same ~400 bytes, read with one Redis `GET`.".into());
        notes.push("Events: sessanger (Redis) as above, which records events, against a second process of the same build with `events.record: false` under another key prefix of the same Redis; PATCH and create (a new session of one user, 4 attributes) alternate between the two, round after round (median).".into());
        notes.push("Node cache: sessanger (Redis) and node B serve reads from memory, kept coherent by Redis (`CLIENT TRACKING`); `cache off` is a third node on the same keys with `store.cache: false`, in the same rounds. Staleness: a session created on A is read twice on B, revoked on A, then read on B over a kept-alive connection until B answers 404; the delay counts from A's answer.".into());
        notes.push("CPU µs/req: the process's user + system time (`/proc/PID/stat`) and Redis's (`INFO cpu`) over the measured run, divided by the requests answered in it.".into());
        notes.push(format!("Round trips: commands sessanger sent to Redis while doing each operation 3 times, seen by `MONITOR` (commands a script runs inside Redis are not round trips), divided by 3. The list-scaling stores are filled with sessions of {FILL_PER_USER} per user, 4 attributes each; the two stores take turns for {} rounds (median); memory per session is `INFO memory` `used_memory` before and after storing {stored} sessions in the large one, divided by their number.", self.rounds));
        if quick {
            notes.push(
                "Quick mode: short phases and a small store — a check that the harness works, not a measurement."
                    .into(),
            );
        }
        notes
    }
}

const FILL_PER_USER: u64 = 1;

struct Scaling {
    small_rate: f64,
    large_rate: f64,
    /// Redis memory per session of the large store.
    bytes_per_session: f64,
}

/// Stores sessions straight through sessanger's Redis store (the server's own code, without
/// HTTP in between), `FILL_PER_USER` per user, 64 at a time.
struct Filler {
    manager: SessionManager,
}

impl Filler {
    async fn connect(url: &str) -> anyhow::Result<Filler> {
        // No event log: the fill measures what a session costs Redis; the log's own memory is
        // bounded by `events.max_events` whatever the number of sessions.
        let store = sessanger_store_redis::RedisStore::connect(url, "bench".parse()?).await?.with_event_log(None);
        let manager = SessionManager::new(std::sync::Arc::new(store), "bench".parse()?, Duration::from_secs(3600));
        Ok(Filler { manager })
    }

    async fn fill(&self, from: u64, to: u64, progress: &ProgressBar) -> anyhow::Result<()> {
        let attributes = match attributes() {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("attributes() is an object"),
        };
        progress.set_message(format!("storing sessions {from}..{to}"));
        let mut created = futures::stream::iter(from..to)
            .map(|i| {
                let manager = &self.manager;
                let new = NewSession { attributes: attributes.clone(), ..NewSession::default() };
                async move {
                    let user = format!("fill-{}", i / FILL_PER_USER).parse()?;
                    manager.create_session(&user, new).await.map(|_| ()).map_err(anyhow::Error::from)
                }
            })
            .buffer_unordered(64);
        while let Some(result) = created.next().await {
            result?;
        }
        Ok(())
    }
}

/// The round with the median rate (its latencies and CPU come with it).
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs.swap_remove(runs.len() / 2)
}

/// A target on a ratio.
#[derive(Debug, Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

use Bound::{AtLeast, AtMost};

impl Bound {
    fn figure(self, name: &str, ours: f64, theirs: f64, unit: &str) -> Figure {
        let ratio = ours / theirs;
        let (met, target) = match self {
            AtLeast(bound) => (ratio >= bound, format!("≥ {bound}×")),
            AtMost(bound) => (ratio <= bound, format!("≤ {bound}×")),
        };
        let digits = if unit == "req/s" { 0 } else { 2 };
        Figure {
            name: name.into(),
            measured: format!("**{ratio:.2}×** ({ours:.digits$} vs {theirs:.digits$} {unit})"),
            target,
            met: Some(met),
        }
    }
}

async fn header(args: &Args, seconds: u64, rounds: usize, stored: u64) -> Vec<String> {
    let run = |program: &'static str, args: &'static [&'static str]| async move {
        Command::new(program)
            .args(args)
            .output()
            .await
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().trim().to_owned())
            .unwrap_or_else(|| format!("{program}: not found"))
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let command = if args.quick {
        "cargo run --release -p sessanger-load -- --quick".to_owned()
    } else {
        format!(
            "cargo run --release -p sessanger-load -- --connections {} --seconds {seconds} --rounds {} --stored {stored}",
            args.connections, rounds
        )
    };
    vec![
        "## Load harness: sessanger against tower-sessions + Redis, redis-benchmark and axum".into(),
        String::new(),
        format!("Measured {} with `{command}`.", run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).await),
        String::new(),
        format!(
            "Machine: {cores} cores ({cpu}), Linux {}; {}; {}; peer: tower-sessions 0.14 + tower-sessions-redis-store 0.16 (fred 10), sessanger and the hello-world on axum 0.8.",
            std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            run("rustc", &["--version"]).await,
            run("redis-server", &["--version"]).await,
        ),
    ]
}
