//! A minimal HTTP/1.1 client over one keep-alive `TcpStream`: write a pre-built request, read
//! the status line and headers, then exactly `Content-Length` body bytes. The load generator
//! and the simulator share it, so neither needs an HTTP client crate.
//!
//! Only what `kindred serve` sends is understood: bodies always carry `Content-Length`, so a
//! chunked body is an error rather than something to decode. One request at a time per
//! connection (no pipelining), which is how the load generator and the simulator use it.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response head larger than this is refused (the server's are a few hundred bytes).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A body larger than this is refused, so a broken length cannot make us allocate gigabytes.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Bytes asked of each read.
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug)]
pub enum HttpError {
    Io(io::Error),
    /// The server closed the connection before a whole response arrived.
    Closed,
    /// The response is not HTTP/1.x as we understand it.
    Malformed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "i/o error: {e}"),
            HttpError::Closed => write!(f, "connection closed before the response was complete"),
            HttpError::Malformed(m) => write!(f, "malformed response: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

/// The parts of a response head the client needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes up to and including the blank line after the headers.
    pub head_len: usize,
    pub content_length: usize,
    /// The server said `Connection: close`: reconnect before the next request.
    pub close: bool,
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn malformed(message: impl Into<String>) -> HttpError {
    HttpError::Malformed(message.into())
}

/// Parses a response head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let Some(head_len) = find_blank_line(buf) else {
        if buf.len() > MAX_HEAD_BYTES {
            return Err(malformed(format!(
                "no end of headers within {MAX_HEAD_BYTES} bytes"
            )));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..head_len - 4])
        .map_err(|_| malformed("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed(format!("status line `{status_line}`")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| malformed(format!("status line `{status_line}`")))?;
    let mut content_length = None;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed(format!("header line `{line}`")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length: usize = value
                .parse()
                .map_err(|_| malformed(format!("Content-Length `{value}`")))?;
            if length > MAX_BODY_BYTES {
                return Err(malformed(format!("Content-Length {length} is too large")));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(malformed(format!(
                "Transfer-Encoding `{value}` is not supported (expected Content-Length)"
            )));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let content_length = match (content_length, status) {
        (Some(length), _) => length,
        // These never have a body.
        (None, 100..=199 | 204 | 304) => 0,
        (None, _) => return Err(malformed(format!("status {status} without Content-Length"))),
    };
    Ok(Some(Head {
        status,
        head_len,
        content_length,
        close,
    }))
}

/// A `GET` request, ready to send as is.
pub fn get_request(path: &str) -> Vec<u8> {
    get_request_with_key(path, None)
}

/// A `POST` request with a JSON body (possibly empty), ready to send as is.
pub fn post_request(path: &str, body: &[u8]) -> Vec<u8> {
    post_request_with_key(path, body, None)
}

/// `Authorization: Bearer KEY` header line (with its CRLF), or nothing without a key.
fn auth_header(api_key: Option<&str>) -> String {
    api_key.map_or_else(String::new, |key| {
        format!("Authorization: Bearer {key}\r\n")
    })
}

/// A `GET` request sending `Authorization: Bearer KEY` when `api_key` is given.
pub fn get_request_with_key(path: &str, api_key: Option<&str>) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: kindred\r\n{}\r\n",
        auth_header(api_key)
    )
    .into_bytes()
}

/// A `POST` request with a JSON body, sending `Authorization: Bearer KEY` when `api_key` is
/// given.
pub fn post_request_with_key(path: &str, body: &[u8], api_key: Option<&str>) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: kindred\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        auth_header(api_key),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` taken by the last response; dropped before the next one is read.
    consumed: usize,
    close: bool,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(READ_CHUNK * 2),
            consumed: 0,
            close: false,
        })
    }

    /// Whether the server asked to close this connection after the last response.
    pub fn must_close(&self) -> bool {
        self.close
    }

    /// Sends `request` and reads the whole response; the body is `body()` until the next call.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Head, HttpError> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        self.stream.write_all(request).await?;
        loop {
            if let Some(head) = parse_head(&self.buf)? {
                let total = head.head_len + head.content_length;
                while self.buf.len() < total {
                    self.fill().await?;
                }
                self.consumed = total;
                self.close = head.close;
                return Ok(head);
            }
            self.fill().await?;
        }
    }

    /// The body of the last response.
    pub fn body(&self, head: &Head) -> &[u8] {
        &self.buf[head.head_len..head.head_len + head.content_length]
    }

    async fn fill(&mut self) -> Result<(), HttpError> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
        let read = self.stream.read_buf(&mut self.buf).await?;
        if read == 0 {
            return Err(HttpError::Closed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, HttpError> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn parses_status_length_and_head_size() {
        let text = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"items\": []}";
        let parsed = head(text).unwrap().unwrap();
        assert_eq!(parsed.status, 200);
        assert_eq!(parsed.content_length, 13);
        assert_eq!(parsed.head_len, text.len() - 13);
        assert!(!parsed.close);
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n")
            .unwrap()
            .is_none());
        assert!(head("").unwrap().is_none());
    }

    #[test]
    fn header_names_are_case_insensitive_and_values_trimmed() {
        let parsed = head(
            "HTTP/1.1 503 Service Unavailable\r\nCONTENT-LENGTH:   7 \r\nConnection: Close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((parsed.status, parsed.content_length), (503, 7));
        assert!(parsed.close);
    }

    #[test]
    fn no_content_statuses_need_no_length() {
        let parsed = head("HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!(parsed.content_length, 0);
    }

    #[test]
    fn http_1_0_closes_by_default() {
        let parsed = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(parsed.close);
    }

    #[test]
    fn chunked_and_missing_length_are_errors() {
        let chunked = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(chunked, Err(HttpError::Malformed(m)) if m.contains("chunked")));
        let missing = head("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
        assert!(matches!(missing, Err(HttpError::Malformed(m)) if m.contains("Content-Length")));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(head("SMTP 220 hello\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 abc OK\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n").is_err());
        let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert!(head(&endless).is_err());
    }

    #[test]
    fn requests_are_well_formed() {
        assert_eq!(
            get_request("/v1/recommend/7?n=10"),
            b"GET /v1/recommend/7?n=10 HTTP/1.1\r\nHost: kindred\r\n\r\n"
        );
        let post = post_request("/v1/feedback", b"[]");
        assert!(post.ends_with(b"Content-Length: 2\r\n\r\n[]"));
        assert_eq!(
            get_request_with_key("/v1/items", Some("k1")),
            b"GET /v1/items HTTP/1.1\r\nHost: kindred\r\nAuthorization: Bearer k1\r\n\r\n"
        );
        let post = post_request_with_key("/v1/feedback", b"[]", Some("k2"));
        assert!(post.starts_with(
            b"POST /v1/feedback HTTP/1.1\r\nHost: kindred\r\nAuthorization: Bearer k2\r\n"
        ));
        assert!(post.ends_with(b"Content-Length: 2\r\n\r\n[]"));
    }

    /// A real exchange over loopback against a scripted server: two responses on one
    /// connection, the second split across writes, the body handed back exactly.
    #[test]
    fn keep_alive_exchanges_over_a_socket() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0u8; 1024];
                let _ = socket.read(&mut request).await.unwrap();
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                    .await
                    .unwrap();
                let _ = socket.read(&mut request).await.unwrap();
                socket
                    .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Le")
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                socket.write_all(b"ngth: 3\r\n\r\nabc").await.unwrap();
                let _ = socket.read(&mut request).await.unwrap();
                // Closes mid-response.
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                    .await
                    .unwrap();
            });
            let mut connection = Connection::connect(addr).await.unwrap();
            let first = connection.exchange(&get_request("/a")).await.unwrap();
            assert_eq!(first.status, 200);
            assert_eq!(connection.body(&first), b"hello");
            let second = connection.exchange(&get_request("/b")).await.unwrap();
            assert_eq!(second.status, 404);
            assert_eq!(connection.body(&second), b"abc");
            let third = connection.exchange(&get_request("/c")).await;
            assert!(matches!(third, Err(HttpError::Closed)), "{third:?}");
            server.await.unwrap();
        });
    }
}
