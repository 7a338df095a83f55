//! The floor of a read through Redis: axum answering every `GET /` with the bytes of one Redis
//! `GET` (redis-rs, one multiplexed connection, as sessanger's Redis store talks to Redis), as
//! they are. No authentication, no decoding, no JSON: the least an HTTP service that reads its
//! sessions from Redis spends per read on this machine, so the harness can tell how much of a
//! gap to the peer any such service could open.

use axum::{Router, extract::State, http::StatusCode, routing::get};
use redis::aio::MultiplexedConnection;

async fn read(State((mut redis, key)): State<(MultiplexedConnection, &'static str)>) -> Result<Vec<u8>, StatusCode> {
    let value: Option<Vec<u8>> =
        redis::cmd("GET").arg(key).query_async(&mut redis).await.map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    value.ok_or(StatusCode::NOT_FOUND)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(url), Some(key)) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: floor LISTEN_ADDR REDIS_URL KEY");
    };
    let redis = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let key: &'static str = key.leak();
    let app = Router::new().route("/", get(read)).with_state((redis, key));
    axum::serve(tokio::net::TcpListener::bind(&listen).await?, app).await?;
    Ok(())
}
