//! A minimal webhook client: one JSON POST over plain HTTP/1.1 (hyper's client connection on a
//! tokio TCP stream), with a timeout. `https://` is not supported:
//! put a local relay in front of an HTTPS endpoint.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Request};
use hyper_util::rt::TokioIo;

/// Why a webhook POST failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("`{0}` is not an http:// URL")]
    BadUrl(String),
    #[error("{url}: {message}")]
    Failed { url: String, message: String },
    #[error("{url}: answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: no answer within {millis} ms")]
    Timeout { url: String, millis: u128 },
}

/// Host (with port) and path of an `http://` URL.
fn split_url(url: &str) -> Result<(String, String), WebhookError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| WebhookError::BadUrl(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(WebhookError::BadUrl(url.to_owned()));
    }
    let host = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((host, path.to_owned()))
}

async fn post(url: &str, body: String) -> Result<u16, WebhookError> {
    let (host, path) = split_url(url)?;
    let failed = |message: String| WebhookError::Failed {
        url: url.to_owned(),
        message,
    };
    let stream = tokio::net::TcpStream::connect(&host)
        .await
        .map_err(|e| failed(format!("connect: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(format!("handshake: {e}")))?;
    let driver = tokio::spawn(connection);
    let request = Request::post(path)
        .header(header::HOST, host.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "kindred-server")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| failed(format!("request: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(format!("send: {e}")));
    driver.abort();
    let status = response?.status().as_u16();
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(WebhookError::Status {
            url: url.to_owned(),
            status,
        })
    }
}

/// POSTs `body` (JSON) to `url`; the status on a 2xx answer.
pub async fn post_json(url: &str, body: String, timeout: Duration) -> Result<u16, WebhookError> {
    match tokio::time::timeout(timeout, post(url, body)).await {
        Ok(result) => result,
        Err(_) => Err(WebhookError::Timeout {
            url: url.to_owned(),
            millis: timeout.as_millis(),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Accepts one connection, reads one request (headers + content-length body) and answers
    /// `status`; returns the raw request.
    pub(crate) async fn one_request(listener: tokio::net::TcpListener, status: &str) -> String {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if raw.len() >= end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        socket.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8(raw).unwrap()
    }

    #[test]
    fn urls_split_into_host_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9000/hooks/a?x=1").unwrap(),
            ("127.0.0.1:9000".into(), "/hooks/a?x=1".into())
        );
        assert_eq!(
            split_url("http://alerts.local").unwrap(),
            ("alerts.local:80".into(), "/".into())
        );
        assert!(split_url("https://x/").is_err());
        assert!(split_url("http:///x").is_err());
    }

    #[tokio::test]
    async fn posts_json_and_reports_failures() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(one_request(listener, "204 No Content"));
        let url = format!("http://{addr}/hook");
        let status = post_json(&url, "{\"a\":1}".into(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(status, 204);
        let raw = server.await.unwrap();
        assert!(raw.starts_with("POST /hook HTTP/1.1\r\n"), "{raw}");
        assert!(raw
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
        assert!(raw.ends_with("{\"a\":1}"), "{raw}");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(one_request(listener, "500 Internal Server Error"));
        let err = post_json(
            &format!("http://{addr}/"),
            "{}".into(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, WebhookError::Status { status: 500, .. }),
            "{err}"
        );
        server.await.unwrap();

        // Nobody answers: a listener that never accepts, so the request times out.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let err = post_json(
            &format!("http://{addr}/"),
            "{}".into(),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, WebhookError::Timeout { .. }), "{err}");
        drop(silent);
    }
}
