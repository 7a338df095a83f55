//! The axum ceiling: a hello-world on the same axum and Tokio as sessanger, so the harness
//! can tell what HTTP handling alone costs on this machine.

use axum::{Router, routing::get};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18099".into());
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    axum::serve(tokio::net::TcpListener::bind(&listen).await?, app).await?;
    Ok(())
}
