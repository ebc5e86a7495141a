//! `c19-bench-floor <port>`: the floor of the agent benchmark. A bare axum server on
//! `127.0.0.1:<port>` that answers every `GET` with one fixed entry as the agent would
//! (same size, same headers) and every `PUT` with 204 after reading the body, without
//! parsing it. Built with the agent's allocator and runtime settings, and loaded by
//! `c19-bench` exactly as the agent is, it shows what HTTP alone costs on this machine:
//! no agent built on this stack can answer faster.

use std::process::ExitCode;

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::Request,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
    serve::ListenerExt,
};
use c19_tests::bench::client::value_text;
use tokio::net::TcpListener;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The largest body read, as the agent's default limit.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let Some(port) = std::env::args()
        .nth(1)
        .and_then(|port| port.parse::<u16>().ok())
    else {
        eprintln!("usage: c19-bench-floor <port>");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("c19-bench-floor: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        // The agent sets TCP_NODELAY too.
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let entry = format!(
            r#"{{"value":"{}","ts":1763800000000,"ttl":null}}"#,
            value_text("get", 0)
        );
        let app = Router::new().fallback(move |request: Request| answer(request, entry.clone()));
        axum::serve(listener, app).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("c19-bench-floor: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn answer(request: Request, entry: String) -> Response {
    if request.method() == Method::PUT {
        return match to_bytes(request.into_body(), BODY_LIMIT).await {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(_) => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        };
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(entry),
    )
        .into_response()
}
