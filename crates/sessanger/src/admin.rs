//! `sessanger service …` and `sessanger sessions …` (and where `sessanger events tail` reads).
//!
//! They work on the configured store directly. An embedded store is locked by the process
//! that opened it, so while `serve` runs on it the commands go through that server's API,
//! authenticated with the bootstrap admin token — nobody has to stop the service to add a
//! service account.

use std::fs;

use anyhow::{Context, bail};
use sessanger_client::Client;
use sessanger_core::{
    Page, Permission, ServiceId, SessionId, SessionManager, UserId,
    wire::{CreateService, CreatedService, ServiceBody, SessionBody, UpdateService},
};

use crate::{
    cli::{ServiceCommand, SessionsCommand},
    settings::Settings,
    store::{self, Opened},
};

/// Where admin commands act: on the store itself, or through the server that holds it.
pub(crate) enum Target {
    Direct(SessionManager),
    Remote(Client),
}

impl Target {
    pub(crate) async fn connect(settings: &Settings) -> anyhow::Result<Target> {
        match store::open(settings).await? {
            Opened::Ready(store) => Ok(Target::Direct(SessionManager::with_policy(store, settings.policy.clone()))),
            Opened::HeldElsewhere(path) => {
                let url_file = settings.server_url_file();
                let url = fs::read_to_string(&url_file).with_context(|| {
                    format!("the store at {} is locked by another process, and {} (written by a running `sessanger serve`) cannot be read", path.display(), url_file.display())
                })?;
                let token = match &settings.token {
                    Some(token) => token.clone(),
                    None => fs::read_to_string(settings.admin_token_file()).with_context(|| {
                        format!("the store is held by the server at {}; give an admin token with --token or SESSANGER_TOKEN", url.trim())
                    })?,
                };
                Ok(Target::Remote(Client::new(url.trim(), &token)?))
            }
        }
    }

    async fn add_service(&self, request: CreateService) -> anyhow::Result<CreatedService> {
        Ok(match self {
            Target::Direct(m) => {
                let name = request.name.unwrap_or_else(|| request.id.to_string());
                let (record, token) = m.register_service(request.id, name, request.permissions).await?;
                CreatedService { service: record.into(), token: token.expose() }
            }
            Target::Remote(c) => c.create_service(&request).await?,
        })
    }

    /// Every service, page after page.
    async fn list_services(&self) -> anyhow::Result<Vec<ServiceBody>> {
        let mut all: Vec<ServiceBody> = Vec::new();
        loop {
            let after = all.last().map(|s| s.id.clone());
            let page: Vec<ServiceBody> = match self {
                Target::Direct(m) => {
                    m.list_services(after.as_ref(), Page::MAX_LIMIT).await?.into_iter().map(Into::into).collect()
                }
                Target::Remote(c) => c.list_services(after.as_ref(), Page::MAX_LIMIT).await?.services,
            };
            let full = Page::continues_after(&page, Page::MAX_LIMIT).is_some();
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    async fn update_service(&self, id: &ServiceId, request: UpdateService) -> anyhow::Result<ServiceBody> {
        Ok(match self {
            Target::Direct(m) => m.change_service_permissions(id, request.permissions).await?.into(),
            Target::Remote(c) => c.update_service(id, &request).await?,
        })
    }

    async fn remove_service(&self, id: &ServiceId) -> anyhow::Result<()> {
        match self {
            Target::Direct(m) => m.remove_service(id).await?,
            Target::Remote(c) => c.delete_service(id).await?,
        }
        Ok(())
    }

    /// Every session of the user, page after page: an operator asking sees them all.
    async fn list_sessions(&self, user: &UserId) -> anyhow::Result<Vec<SessionBody>> {
        let mut all = Vec::new();
        let mut page = Some(Page::first(Page::MAX_LIMIT));
        while let Some(current) = page {
            let (sessions, next) = match self {
                Target::Direct(m) => {
                    let sessions = m.list_user_sessions(user, &current).await?;
                    let next = current.next(&sessions);
                    (sessions.into_iter().map(Into::into).collect(), next)
                }
                Target::Remote(c) => {
                    let list = c.list_user_sessions(user, &current).await?;
                    let next = list.next_cursor.map(|after| Page { after: Some(after), limit: current.limit });
                    (list.sessions, next)
                }
            };
            all.extend(sessions);
            page = next;
        }
        Ok(all)
    }

    async fn revoke_session(&self, id: &SessionId) -> anyhow::Result<()> {
        match self {
            Target::Direct(m) => {
                m.delete_session(id).await?;
            }
            Target::Remote(c) => c.delete_session(id).await?,
        }
        Ok(())
    }

    async fn revoke_user(&self, user: &UserId) -> anyhow::Result<u64> {
        Ok(match self {
            Target::Direct(m) => m.delete_user_sessions(user).await?,
            Target::Remote(c) => c.delete_user_sessions(user).await?,
        })
    }
}

/// Opening a store runs its migrations (the SQL stores embed theirs); the other stores have
/// no schema to migrate.
pub(crate) async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    match store::open(settings).await? {
        Opened::Ready(_) => println!("{}: schema is up to date", settings.store_url_redacted()),
        Opened::HeldElsewhere(path) => bail!("the embedded store at {} is held by a running server", path.display()),
    }
    Ok(())
}

pub(crate) async fn service(settings: &Settings, command: ServiceCommand) -> anyhow::Result<()> {
    let target = Target::connect(settings).await?;
    match command {
        ServiceCommand::Add { id, permissions, name, out } => {
            let permissions = parse_permissions(&permissions)?;
            let id = id.parse().context("invalid service id")?;
            let created = target.add_service(CreateService { id, name, permissions }).await?;
            if out.json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!("service {} registered with {}", created.service.id, permissions_text(&created.service));
                println!("token (shown once): {}", created.token);
            }
        }
        ServiceCommand::List { out } => {
            let services = target.list_services().await?;
            if out.json {
                println!("{}", serde_json::json!({ "services": services }));
            } else {
                println!("{:<24} {:<18} {:<26} NAME", "ID", "PERMISSIONS", "CREATED");
                for s in &services {
                    println!("{:<24} {:<18} {:<26} {}", s.id, permissions_text(s), s.created_at, s.name);
                }
            }
        }
        ServiceCommand::Update { id, permissions, out } => {
            let request = UpdateService { permissions: parse_permissions(&permissions)? };
            let service = target.update_service(&id.parse().context("invalid service id")?, request).await?;
            if out.json {
                println!("{}", serde_json::to_string(&service)?);
            } else {
                println!("service {} now has {}", service.id, permissions_text(&service));
            }
        }
        ServiceCommand::Remove { id } => {
            target.remove_service(&id.parse().context("invalid service id")?).await?;
            println!("service {id} removed");
        }
    }
    Ok(())
}

pub(crate) async fn sessions(settings: &Settings, command: SessionsCommand) -> anyhow::Result<()> {
    let target = Target::connect(settings).await?;
    match command {
        SessionsCommand::List { user, out } => {
            let user: UserId = user.parse().context("invalid user id")?;
            let sessions = target.list_sessions(&user).await?;
            if out.json {
                println!("{}", serde_json::json!({ "sessions": sessions }));
            } else {
                println!("{:<44} {:<16} {:<26} EXPIRES", "SESSION", "DEVICE", "CREATED");
                for s in &sessions {
                    let device = s.device.device_id.as_deref().unwrap_or("-");
                    println!("{:<44} {:<16} {:<26} {}", s.session_id, device, s.created_at, s.expires_at);
                }
            }
        }
        SessionsCommand::Revoke { id: Some(id), .. } => {
            target.revoke_session(&id.parse().context("invalid session id")?).await?;
            println!("session revoked");
        }
        SessionsCommand::Revoke { user: Some(user), .. } => {
            let n = target.revoke_user(&user.parse().context("invalid user id")?).await?;
            println!("{n} session(s) revoked");
        }
        SessionsCommand::Revoke { .. } => bail!("give a session id or --user"),
    }
    Ok(())
}

fn parse_permissions(names: &[String]) -> anyhow::Result<Vec<Permission>> {
    Ok(names.iter().map(|p| p.parse::<Permission>()).collect::<Result<Vec<_>, _>>()?)
}

fn permissions_text(s: &ServiceBody) -> String {
    s.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
}
