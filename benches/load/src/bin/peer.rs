//! The peer app: what a team would write without sessanger — axum with tower-sessions and
//! tower-sessions-redis-store, set up as that crate's README shows (a fred pool of 6, sessions
//! that expire after an hour of inactivity). Bench-only.
//!
//! - `GET /login` starts a session with the same 4 attributes the harness gives sessanger's;
//! - `GET /read` reads one value from it;
//! - `POST /write` changes one value (tower-sessions loads the record, then saves it: GET + SET);
//! - `POST /incr` adds 1 to a counter the way such an app does: read, add, insert.

use axum::{
    Router,
    routing::{get, post},
};
use tower_sessions_peer::{Expiry, Session, SessionManagerLayer, cookie::time::Duration};
use tower_sessions_redis_store::{
    RedisStore,
    fred::prelude::{ClientLike, Config, Pool},
};

type Answer = Result<String, (axum::http::StatusCode, String)>;

fn failed(error: impl std::fmt::Display) -> (axum::http::StatusCode, String) {
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

async fn login(session: Session) -> Answer {
    for (key, value) in sessanger_load::attributes().as_object().expect("an object") {
        session.insert(key, value).await.map_err(failed)?;
    }
    Ok("ok".into())
}

async fn read(session: Session) -> Answer {
    let theme: Option<String> = session.get("theme").await.map_err(failed)?;
    theme.ok_or_else(|| (axum::http::StatusCode::NOT_FOUND, "no session".into()))
}

async fn write(session: Session) -> Answer {
    session.insert("theme", "light").await.map_err(failed)?;
    Ok("ok".into())
}

async fn incr(session: Session) -> Answer {
    let counter: u64 = session.get("counter").await.map_err(failed)?.unwrap_or(0);
    session.insert("counter", counter + 1).await.map_err(failed)?;
    Ok((counter + 1).to_string())
}

async fn counter(session: Session) -> Answer {
    let counter: u64 = session.get("counter").await.map_err(failed)?.unwrap_or(0);
    Ok(counter.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(redis)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: peer LISTEN_ADDR REDIS_URL");
    };
    let pool = Pool::new(Config::from_url(&redis)?, None, None, None, 6)?;
    let _connection = pool.connect();
    pool.wait_for_connect().await?;
    let layer = SessionManagerLayer::new(RedisStore::new(pool))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    let app = Router::new()
        .route("/login", get(login))
        .route("/read", get(read))
        .route("/write", post(write))
        .route("/incr", post(incr))
        .route("/counter", get(counter))
        .layer(layer);
    axum::serve(tokio::net::TcpListener::bind(&listen).await?, app).await?;
    Ok(())
}
