//! `sessanger pam-exec`: the command `pam_exec.so` runs at each phase of a system login, so
//! the user's broker account lives exactly as long as the user is logged in (seed 000).
//!
//! - `auth` (with `expose_authtok`): logs the user in with its password, which provisions the
//!   broker account; the session then waits, *pending*, for the PAM session it belongs to.
//! - `open_session`: gives the PAM session a sessanger session: the newest one the user's
//!   `auth` phase left pending, else a new one opened without a password (a login by SSH key
//!   has none, so only a client account listed in the managers' `broker.admins` may do that).
//! - `close_session`: logs that session out; the user's last one removes its broker account.
//!
//! A PAM session is named by the process that runs it (the application calling PAM: sshd's
//! monitor for the connection, `login`, `su`, `pamtester`) together with that process's
//! start time, so a reused pid never ends another login's session, and two parallel logins of
//! one user each end their own. The `auth` phase may run in another process (sshd does it in
//! a child), which is why a pending session is claimed by user, with a rename that only one
//! `open_session` can win. Session ids are bearer secrets: the state directory is root's
//! alone.

use std::{
    fs,
    io::{ErrorKind, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use sessanger_amqp::{AmqpClient, ReplyCode};
use sessanger_core::{SessionId, UserId};

use crate::{
    amqp::{answered, broker_config, read_password},
    settings::Settings,
};

/// How long a session the `auth` phase opened waits for its `open_session`: an `auth` with no
/// session after it (a screen unlock, `sudo -v`) is logged out after this, by the next
/// `open_session` on the host.
const PENDING_FOR: Duration = Duration::from_secs(600);

/// `sessanger pam-exec [--state-dir DIR]`, by `PAM_TYPE`; other phases do nothing.
pub(crate) async fn run(settings: &Settings, state_dir: &Path) -> anyhow::Result<()> {
    let phase = std::env::var("PAM_TYPE").unwrap_or_else(|_| "auth".into());
    if !matches!(phase.as_str(), "auth" | "open_session" | "close_session") {
        return Ok(());
    }
    let user: UserId = std::env::var("PAM_USER").context("PAM_USER is not set: run this from pam_exec.so")?.parse()?;
    let state = State::at(state_dir)?;
    let client = AmqpClient::from_options(broker_config(settings)?).await?;
    let device = Some(format!("pam:{}", std::env::var("PAM_SERVICE").unwrap_or_default()));
    match phase.as_str() {
        "auth" => {
            let password = read_password("")?;
            let reply = answered(client.login(&user, Some(&password), device).await)?;
            let id = reply.session.session_id;
            state.write(&state.pending(&user, &id), &id)?;
            eprintln!("sessanger: broker account {} ready (vhost {})", reply.broker.user, reply.broker.vhost);
        }
        "open_session" => {
            state.sweep(&client).await;
            let slot = state.opened(&user, &pam_application()?);
            let adopted = match state.read(&slot)? {
                // open_session again for the same PAM session: keep its session if it lives.
                Some(id) => alive(&client, id).await?,
                None => state.claim_pending(&user, &slot, &client).await?,
            };
            if adopted.is_none() {
                let reply = answered(client.login(&user, None, device).await)?;
                state.write(&slot, &reply.session.session_id)?;
            }
        }
        _ => {
            let slot = state.opened(&user, &pam_application()?);
            if let Some(id) = state.read(&slot)? {
                logout(&client, &id).await?;
                remove(&slot)?;
            }
        }
    }
    client.close().await?;
    Ok(())
}

/// The PAM application running this phase: our parent (pam_exec forks and execs us), as
/// `<pid>.<start time>`.
fn pam_application() -> anyhow::Result<String> {
    let pid = std::os::unix::process::parent_id();
    process_key(pid).with_context(|| format!("reading /proc/{pid}/stat of the PAM application"))
}

/// `<pid>.<start time in clock ticks since boot>`, or `None` when no such process runs.
fn process_key(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last `)`.
    // The start time is field 22, the 20th after it.
    let started = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{pid}.{started}"))
}

/// The session `id` if it is still live, `None` if it ended (expired, revoked).
async fn alive(client: &AmqpClient, id: SessionId) -> anyhow::Result<Option<SessionId>> {
    match client.get(&id).await {
        Ok(_) => Ok(Some(id)),
        Err(error) if error.code() == Some(ReplyCode::SessionNotFound) => Ok(None),
        Err(error) => Ok(answered(Err(error))?),
    }
}

/// Logs `id` out; a session that already ended is no failure.
async fn logout(client: &AmqpClient, id: &SessionId) -> anyhow::Result<()> {
    match client.logout(id).await {
        Err(error) if error.code() == Some(ReplyCode::SessionNotFound) => Ok(()),
        other => answered(other).map(drop),
    }
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The state directory: `pending/` sessions by user and session, `open/` ones by user and
/// PAM application. File names start with the user name in hex (a user name may hold any
/// printable character, `/` too).
struct State {
    pending: PathBuf,
    open: PathBuf,
}

impl State {
    fn at(dir: &Path) -> anyhow::Result<State> {
        let state = State { pending: dir.join("pending"), open: dir.join("open") };
        for dir in [&state.pending, &state.open] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating the PAM state directory {}", dir.display()))?;
        }
        Ok(state)
    }

    fn pending(&self, user: &UserId, id: &SessionId) -> PathBuf {
        self.pending.join(format!("{}.{}", hex(user), id.fingerprint()))
    }

    fn opened(&self, user: &UserId, application: &str) -> PathBuf {
        self.open.join(format!("{}.{application}", hex(user)))
    }

    /// Writes `id` to `path` whole or not at all, readable by root only.
    fn write(&self, path: &Path, id: &SessionId) -> anyhow::Result<()> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
        file.write_all(id.as_ref().as_bytes())?;
        file.sync_all()?;
        fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))
    }

    fn read(&self, path: &Path) -> anyhow::Result<Option<SessionId>> {
        match fs::read_to_string(path) {
            Ok(text) => {
                Ok(Some(text.trim().parse().with_context(|| format!("{} holds no session id", path.display()))?))
            }
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Moves the newest live session the user's `auth` phase left pending to `slot`. A rename
    /// succeeds for one claimant only, so parallel logins never share a session.
    async fn claim_pending(
        &self,
        user: &UserId,
        slot: &Path,
        client: &AmqpClient,
    ) -> anyhow::Result<Option<SessionId>> {
        let prefix = format!("{}.", hex(user));
        let mut candidates: Vec<(SystemTime, PathBuf)> = entries(&self.pending)
            .filter(|(path, _)| {
                file_name(path).is_some_and(|name| name.starts_with(&prefix) && !name.ends_with(".partial"))
            })
            .map(|(path, modified)| (modified, path))
            .collect();
        candidates.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        for (_, path) in candidates {
            if fs::rename(&path, slot).is_err() {
                continue; // another open_session won it
            }
            if let Some(id) = self.read(slot)?
                && let Some(id) = alive(client, id).await?
            {
                return Ok(Some(id));
            }
            remove(slot)?;
        }
        Ok(None)
    }

    /// Ends what was left behind: sessions of PAM applications that exited without closing
    /// (killed), and pending sessions no `open_session` claimed in time. Best effort: a
    /// failure here must not fail the login that runs it.
    async fn sweep(&self, client: &AmqpClient) {
        let now = SystemTime::now();
        let stale_open = entries(&self.open).filter(|(path, _)| {
            let application = file_name(path).and_then(|name| name.split_once('.')).map(|(_, app)| app.to_owned());
            application.is_some_and(|app| {
                let pid = app.split('.').next().and_then(|pid| pid.parse().ok());
                !app.ends_with(".partial") && pid.and_then(process_key).as_deref() != Some(app.as_str())
            })
        });
        let stale_pending = entries(&self.pending)
            .filter(|(_, modified)| now.duration_since(*modified).is_ok_and(|age| age > PENDING_FOR));
        for (path, _) in stale_open.chain(stale_pending).collect::<Vec<_>>() {
            if let Ok(Some(id)) = self.read(&path)
                && let Err(error) = logout(client, &id).await
            {
                eprintln!("sessanger: ending a left-over session: {error:#}");
                continue;
            }
            let _ = fs::remove_file(&path);
        }
    }
}

/// The files of `dir` with their modification times.
fn entries(dir: &Path) -> impl Iterator<Item = (PathBuf, SystemTime)> {
    fs::read_dir(dir).into_iter().flatten().flatten().filter_map(|entry| {
        let modified = entry.metadata().ok()?.modified().ok()?;
        Some((entry.path(), modified))
    })
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()
}

fn hex(user: &UserId) -> String {
    user.as_ref().bytes().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_named_by_its_pid_and_start_time() {
        let me = std::process::id();
        let key = process_key(me).unwrap();
        assert!(key.starts_with(&format!("{me}.")), "{key}");
        assert_eq!(process_key(me), Some(key), "stable while the process lives");
        assert_eq!(process_key(u32::MAX), None);
    }

    #[test]
    fn user_names_become_file_name_safe() {
        assert_eq!(hex(&"a/b".parse().unwrap()), "612f62");
    }
}
