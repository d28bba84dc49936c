//! A minimal HTTP/1.1 server for three GET endpoints over a tokio `TcpListener`.
//!
//! Scrapers and kubelet probes send one small GET and read one response; a full HTTP stack
//! (hyper and friends) would be most of the agent's dependency tree for that. Requests are
//! bounded in size and time, each connection is answered once and closed.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tracing::{debug, error, warn};

use super::{Health, Metrics};

/// Larger requests are refused: every legitimate one is a short GET.
const MAX_REQUEST: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn run(listener: std::net::TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return error!(error = %e, "metrics server: cannot start its runtime"),
    };
    runtime.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return error!(error = %e, "metrics server: cannot use the listener"),
        };
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let (m, h) = (metrics.clone(), health.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(IO_TIMEOUT, handle(stream, &m, &h)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => debug!(%peer, error = %e, "metrics request failed"),
                            Err(_) => debug!(%peer, "metrics request timed out"),
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "metrics server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

fn text(status: &'static str, body: impl Into<String>) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        body: (body.into() + "\n").into_bytes(),
    }
}

fn route(method: &str, path: &str, metrics: &Metrics, health: &Health) -> Response {
    if method != "GET" && method != "HEAD" {
        return text("405 Method Not Allowed", "only GET");
    }
    match path {
        "/metrics" => Response {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics.render(),
        },
        "/healthz" => match health.alive() {
            None => text("200 OK", "ok"),
            Some(why) => text("503 Service Unavailable", why),
        },
        "/readyz" => match health.ready() {
            None => text("200 OK", "ready"),
            Some(why) => text("503 Service Unavailable", why),
        },
        "/" => text("200 OK", "escapewatch: /metrics /healthz /readyz"),
        _ => text("404 Not Found", "not found"),
    }
}

/// The method and path of a request head, if it is complete. Errors when it is not HTTP.
fn parse_head(buf: &[u8]) -> Result<Option<(String, String)>, &'static str> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "request head is not UTF-8")?;
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Err("not HTTP/1.x");
    }
    let path = target.split('?').next().unwrap_or(target);
    Ok(Some((method.to_owned(), path.to_owned())))
}

async fn handle(mut stream: TcpStream, metrics: &Metrics, health: &Health) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (method, path) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_head(&buf) {
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() < MAX_REQUEST => {}
            Ok(None) => {
                return write(
                    &mut stream,
                    text("431 Request Header Fields Too Large", "too large"),
                    false,
                )
                .await;
            }
            Err(why) => return write(&mut stream, text("400 Bad Request", why), false).await,
        }
    };
    let head_only = method == "HEAD";
    write(
        &mut stream,
        route(&method, &path, metrics, health),
        head_only,
    )
    .await
}

async fn write(stream: &mut TcpStream, r: Response, head_only: bool) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(&r.body).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Readiness;

    #[test]
    fn request_heads() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        );
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Some(("GET".into(), "/metrics".into())))
        );
        assert!(parse_head(b"\x16\x03\x01 garbage\r\n\r\n").is_err());
    }

    #[test]
    fn routes() {
        let m = Metrics::new().unwrap();
        let h = Health::new();
        h.beat();
        assert_eq!(route("GET", "/healthz", &m, &h).status, "200 OK");
        assert_eq!(
            route("GET", "/readyz", &m, &h).status,
            "503 Service Unavailable"
        );
        h.set(Readiness::Starting, None);
        assert_eq!(route("GET", "/readyz", &m, &h).status, "200 OK");
        assert_eq!(
            route("POST", "/metrics", &m, &h).status,
            "405 Method Not Allowed"
        );
        assert_eq!(route("GET", "/nope", &m, &h).status, "404 Not Found");
        let body = String::from_utf8(route("GET", "/metrics", &m, &h).body).unwrap();
        for name in [
            "escapewatch_events_total{kind=\"process_exec\"} 0",
            "escapewatch_events_lost_total{kind=\"setns\"} 0",
            "escapewatch_build_info{",
            "escapewatch_alert_latency_seconds_bucket",
            "process_resident_memory_bytes",
        ] {
            assert!(body.contains(name), "{name} missing from:\n{body}");
        }
    }
}
