//! `sessanger export`, `import` and `migrate-store`: every live session and the service
//! registry, out of one store and into another.
//!
//! The format is JSON lines: a header line, then one line per service and per session.
//!
//! ```text
//! {"format":"sessanger-export","version":1,"exported_at":"2026-12-07T10:00:00.000Z"}
//! {"service":{"id":"billing","name":"Billing","permissions":["read"],"secret_sha256":"…","created_at":…}}
//! {"session":{"id":"…","user_id":"alice","device":{…},"created_at":…,"expires_at":…,"attributes":{…},"version":3,…}}
//! ```
//!
//! - Sessions are read and written below attribute encryption: a sealed value moves sealed
//!   (the destination needs the same `encryption.keys` to open it). Services carry their
//!   secret's hash only, so their tokens keep working.
//! - Export streams: a page of sessions at a time ([`SessionStore::scan`]), whatever the
//!   store holds.
//! - Import keeps what the destination has: a service or a session whose id is there already
//!   is left as it is, so running an import (or a move) again after an interruption finishes
//!   it. A session dead by the time it is written is skipped, never brought back. Each session
//!   written is a `created` event in the destination's log.
//! - A reader of version 1 refuses a file of a later version, saying so, rather than guess.

use std::{
    num::NonZeroU32,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use sessanger_core::{Created, Page, ServiceRecord, Session, Store, Timestamp, UserLimit};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::{
    settings::{Settings, redact},
    store::{self, Opened, Sealing},
};

/// What the header line names the format.
const FORMAT: &str = "sessanger-export";

/// The version this build writes, and the latest it reads.
const VERSION: u32 = 1;

/// Sessions read from a store at once.
const PAGE: NonZeroU32 = NonZeroU32::new(1000).expect("not zero");

/// Sessions written to a store at once.
const WRITES_IN_FLIGHT: usize = 64;

/// The first line of an export.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    exported_at: Timestamp,
}

/// Every line after the header.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Service(ServiceRecord),
    Session(Box<Session>),
}

/// What an import or a move did.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    services: AtomicU64,
    services_present: AtomicU64,
    sessions: AtomicU64,
    sessions_present: AtomicU64,
    sessions_dead: AtomicU64,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |count: &AtomicU64| count.load(Ordering::Relaxed);
        write!(
            f,
            "{} sessions written ({} there already, {} expired on the way), {} services written ({} there already)",
            n(&self.sessions),
            n(&self.sessions_present),
            n(&self.sessions_dead),
            n(&self.services),
            n(&self.services_present),
        )
    }
}

/// Writes every service and live session of `store` to `out`; returns how many sessions.
pub(crate) async fn export(store: &dyn Store, out: &mut (impl AsyncWrite + Unpin)) -> anyhow::Result<u64> {
    let header = Header { format: FORMAT.to_owned(), version: VERSION, exported_at: Timestamp::now() };
    write_line(out, &header).await?;
    for service in all_services(store).await? {
        write_line(out, &Line::Service(service)).await?;
    }
    let mut sessions = 0;
    let mut pages = Box::pin(session_pages(store));
    while let Some(page) = pages.try_next().await? {
        sessions += page.len() as u64;
        for session in page {
            write_line(out, &Line::Session(Box::new(session))).await?;
        }
    }
    out.flush().await?;
    Ok(sessions)
}

/// Reads an export from `input` into `store`.
pub(crate) async fn import(store: &dyn Store, input: impl tokio::io::AsyncBufRead + Unpin) -> anyhow::Result<Tally> {
    let mut lines = input.lines();
    let first = lines.next_line().await?.context("the input is empty: not a sessanger export")?;
    let header: Header = serde_json::from_str(&first)
        .ok()
        .filter(|header: &Header| header.format == FORMAT)
        .context("line 1 is not the header of a sessanger export")?;
    if header.version > VERSION {
        bail!(
            "the export is of format version {}, written by a later sessanger; this one reads version {VERSION}",
            header.version
        );
    }
    let tally = Tally::default();
    let numbered = stream::unfold((lines, 1_u64), |(mut lines, number)| async move {
        match lines.next_line().await {
            Ok(Some(line)) => Some((Ok((number + 1, line)), (lines, number + 1))),
            Ok(None) => None,
            Err(e) => Some((Err(anyhow::Error::from(e)), (lines, number))),
        }
    });
    numbered
        .map(|read| async {
            let (number, text) = read?;
            let line: Line = serde_json::from_str(&text).with_context(|| format!("line {number}"))?;
            write(store, line, &tally).await.with_context(|| format!("line {number}"))
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    Ok(tally)
}

/// Copies every service and live session of `from` into `to`, telling `progress` of each
/// session written.
pub(crate) async fn copy(from: &dyn Store, to: &dyn Store, progress: impl Fn(u64)) -> anyhow::Result<Tally> {
    let tally = Tally::default();
    for service in all_services(from).await? {
        write(to, Line::Service(service), &tally).await?;
    }
    let mut pages = Box::pin(session_pages(from));
    while let Some(page) = pages.try_next().await? {
        let count = page.len() as u64;
        stream::iter(page)
            .map(|session| write(to, Line::Session(Box::new(session)), &tally))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        progress(count);
    }
    Ok(tally)
}

/// Writes one line's service or session to `store`, unless it is there already (or dead).
async fn write(store: &dyn Store, line: Line, tally: &Tally) -> anyhow::Result<()> {
    let count = |counter: &AtomicU64| counter.fetch_add(1, Ordering::Relaxed);
    match line {
        Line::Service(service) => {
            let written = store.create_service(&service).await?;
            count(if written { &tally.services } else { &tally.services_present });
        }
        Line::Session(session) => {
            let now = Timestamp::now();
            if session.is_expired(now) {
                count(&tally.sessions_dead);
                return Ok(());
            }
            match store.create(&session, UserLimit::Unlimited, now).await? {
                Created::Created { .. } => count(&tally.sessions),
                _ => count(&tally.sessions_present),
            };
        }
    }
    Ok(())
}

/// Every registered service, page after page.
async fn all_services(store: &dyn Store) -> anyhow::Result<Vec<ServiceRecord>> {
    let mut all: Vec<ServiceRecord> = Vec::new();
    loop {
        let page = store.list_services(all.last().map(|s| &s.id), Page::MAX_LIMIT).await?;
        let full = Page::continues_after(&page, Page::MAX_LIMIT).is_some();
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// The store's live sessions, a page at a time.
fn session_pages(store: &dyn Store) -> impl futures::Stream<Item = anyhow::Result<Vec<Session>>> + '_ {
    stream::try_unfold((None, false), move |(after, done)| async move {
        if done {
            return Ok(None);
        }
        let page = store.scan(after.as_ref(), PAGE, Timestamp::now()).await?;
        let last = page.len() < PAGE.get() as usize;
        let next = page.last().map(|s| s.id.clone()).or(after);
        Ok(if page.is_empty() { None } else { Some((page, (next, last))) })
    })
}

async fn write_line(out: &mut (impl AsyncWrite + Unpin), value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_vec(value)?;
    text.push(b'\n');
    out.write_all(&text).await?;
    Ok(())
}

/// `sessanger export`: the store of `settings` to `output`, or to standard output.
pub(crate) async fn run_export(settings: &Settings, output: Option<&Path>) -> anyhow::Result<()> {
    let store = open(settings, &settings.store_url).await?;
    let sessions = match output {
        Some(path) => {
            let file =
                tokio::fs::File::create(path).await.with_context(|| format!("cannot write {}", path.display()))?;
            export(store.as_ref(), &mut tokio::io::BufWriter::new(file)).await?
        }
        None => export(store.as_ref(), &mut tokio::io::BufWriter::new(tokio::io::stdout())).await?,
    };
    eprintln!("exported {sessions} sessions from {}", settings.store_url_redacted());
    Ok(())
}

/// `sessanger import`: `input`, or standard input, into the store of `settings`.
pub(crate) async fn run_import(settings: &Settings, input: Option<&Path>) -> anyhow::Result<()> {
    let store = open(settings, &settings.store_url).await?;
    let tally = match input {
        Some(path) => {
            let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot read {}", path.display()))?;
            import(store.as_ref(), tokio::io::BufReader::new(file)).await?
        }
        None => import(store.as_ref(), tokio::io::BufReader::new(tokio::io::stdin())).await?,
    };
    println!("imported into {}: {tally}", settings.store_url_redacted());
    Ok(())
}

/// `sessanger migrate-store`: every service and live session of `from` into `to`.
pub(crate) async fn run_migrate(settings: &Settings, from: &str, to: &str) -> anyhow::Result<()> {
    let (source, destination) = (open(settings, from).await?, open(settings, to).await?);
    let total = source.count_active(Timestamp::now()).await?;
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} sessions, {per_sec}, {eta} left")
            .expect("a valid template"),
    );
    let tally = copy(source.as_ref(), destination.as_ref(), |n| bar.inc(n)).await?;
    bar.finish_and_clear();
    println!("{} → {}: {tally}", redact(from), redact(to));
    Ok(())
}

/// The store at `url`, its sealed attributes left sealed; refused while a server holds it.
async fn open(settings: &Settings, url: &str) -> anyhow::Result<Arc<dyn Store>> {
    match store::open_url(settings, url, Sealing::Keep).await? {
        Opened::Ready(store) => Ok(store),
        Opened::HeldElsewhere(path) => {
            bail!("the embedded store at {} is held by a running server: stop it first", path.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sessanger_core::{Permission, ServiceStore, SessionId, SessionStore, UserId};
    use sessanger_store_memory::MemoryStore;

    use super::*;

    async fn filled(sessions: usize) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new());
        let now = Timestamp::now();
        let (service, _) = ServiceRecord::issue("billing".parse().unwrap(), "Billing", vec![Permission::Read], now);
        store.create_service(&service).await.unwrap();
        for i in 0..sessions {
            let user: UserId = format!("user-{}", i % 7).parse().unwrap();
            let mut session = Session::new(
                SessionId::generate_for(&user),
                user,
                now,
                Duration::from_secs(600),
                Duration::from_secs(3600),
            );
            session.attributes.insert("n".into(), serde_json::json!(i));
            store.create(&session, UserLimit::Unlimited, now).await.unwrap();
        }
        store
    }

    #[tokio::test]
    async fn an_export_read_back_fills_another_store_alike_and_again_changes_nothing() {
        let source = filled(2_345).await;
        let mut out = Vec::new();
        assert_eq!(export(source.as_ref(), &mut out).await.unwrap(), 2_345);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(r#"{"format":"sessanger-export","version":1,"exported_at":"#), "{}", &text[..80]);

        let destination = MemoryStore::new();
        let tally = import(&destination, out.as_slice()).await.unwrap();
        assert_eq!(tally.sessions.load(Ordering::Relaxed), 2_345, "{tally}");
        let (now, most) = (Timestamp::now(), NonZeroU32::new(10_000).unwrap());
        let copied = destination.scan(None, most, now).await.unwrap();
        assert_eq!(copied, source.scan(None, most, now).await.unwrap(), "every field of every session");
        assert_eq!(destination.list_services(None, NonZeroU32::MIN).await.unwrap().len(), 1);
        // Again: everything is there already.
        let again = import(&destination, out.as_slice()).await.unwrap();
        assert_eq!(again.sessions.load(Ordering::Relaxed), 0, "{again}");
        assert!(again.to_string().contains("2345 there already"), "{again}");
    }

    #[tokio::test]
    async fn a_later_format_and_a_broken_line_are_refused_clearly() {
        let later = b"{\"format\":\"sessanger-export\",\"version\":2,\"exported_at\":\"2026-12-07T00:00:00Z\"}\n";
        let error = import(&MemoryStore::new(), &later[..]).await.unwrap_err();
        assert!(format!("{error:#}").contains("format version 2, written by a later sessanger"), "{error:#}");
        let error = import(&MemoryStore::new(), &b"{\"sessions\": []}\n"[..]).await.unwrap_err();
        assert!(format!("{error:#}").contains("line 1 is not the header"), "{error:#}");
        let broken = b"{\"format\":\"sessanger-export\",\"version\":1,\"exported_at\":\"2026-12-07T00:00:00Z\"}\n{\"session\":{}}\n";
        let error = import(&MemoryStore::new(), &broken[..]).await.unwrap_err();
        assert!(format!("{error:#}").starts_with("line 2"), "{error:#}");
    }
}
