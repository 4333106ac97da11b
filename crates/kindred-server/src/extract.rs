//! Request extractors that answer bad input with [`ApiError`] JSON instead of axum's plain-text
//! rejections: JSON bodies ([`ApiJson`], decoded straight into their type, large ones off the
//! async workers), path segments ([`ApiPath`]) and strict query strings
//! ([`QueryParams`]: unknown keys and malformed numbers are errors, not silently ignored).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};

use std::sync::Arc;

use crate::app_state::AppState;

use crate::error::ApiError;

/// A JSON body; rejections become JSON errors (400 malformed, 413 too large, 415 not JSON,
/// 422 wrong shape with the JSON path at fault).
///
/// The body is decoded straight into `T`, so its shape is checked as it streams through the
/// parser and no generic JSON tree is built (a tree costs many times the body's size). A body of
/// [`OFF_THREAD_BYTES`] or more is decoded on a blocking thread, so a few large bodies cannot
/// stall the async workers that answer every other request.
pub struct ApiJson<T>(pub T);

/// Bodies this large or larger are decoded off the async workers.
pub const OFF_THREAD_BYTES: usize = 64 << 10;

/// Whether the request says its body is JSON (`application/json`, or `application/...+json`).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn bytes_rejection(r: BytesRejection) -> ApiError {
    let status = r.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "body_too_large", r.body_text())
    } else {
        ApiError::bad_request("bad_body", r.body_text())
    }
}

/// Decodes `bytes` into `T`: invalid JSON is 400 `malformed_json`; valid JSON of the wrong
/// shape is 422 `invalid_body` naming the JSON path.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    decode_seeded(bytes, std::marker::PhantomData::<T>)
}

/// [`decode`] through a seed (which may stop early, as [`BatchSeed`] does).
fn decode_seeded<'de, S: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    seed: S,
) -> Result<S::Value, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let decoded = seed.deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    let decoded = decoded.map_err(|e| serde_path_to_error::Error::new(track.path(), e));
    let shape_error = match decoded {
        Ok(value) => match de.end() {
            Ok(()) => return Ok(value),
            Err(e) => {
                return Err(ApiError::bad_request(
                    "malformed_json",
                    format!("the body is not valid JSON: {e}"),
                ))
            }
        },
        Err(e) => e,
    };
    // One shape error reads as syntax: a sequence longer than its type (a pair given three
    // strings) is "trailing characters". It counts as shape when a second pass that builds
    // nothing finds the body well-formed; every other syntax error (invalid escapes and code
    // points, nesting past the parser's limit, truncation) is malformed JSON.
    let inner = shape_error.inner();
    let syntax = matches!(
        inner.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    );
    let sequence_too_long = inner.to_string().starts_with("trailing characters")
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
    if syntax && !sequence_too_long {
        return Err(ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {inner}"),
        ));
    }
    let path = shape_error.path().to_string();
    let at = if path == "." {
        String::new()
    } else {
        format!("{path}: ")
    };
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        format!(
            "the JSON body does not fit the request: {at}{}",
            shape_error.inner()
        ),
    ))
}

/// The body of a request that says it is JSON, within the body limit.
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if !is_json(req.headers()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a body with `Content-Type: application/json`",
        ));
    }
    Bytes::from_request(req, state)
        .await
        .map_err(bytes_rejection)
}

impl<S: Send + Sync, T: DeserializeOwned + Send + 'static> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        if bytes.len() < OFF_THREAD_BYTES {
            return decode(&bytes).map(ApiJson);
        }
        tokio::task::spawn_blocking(move || decode(&bytes))
            .await
            .map_err(|e| ApiError::internal(format!("decoding the body failed: {e}")))?
            .map(ApiJson)
    }
}

/// A JSON array body of at most `max_batch` records. The limit is checked as the array is
/// decoded: one record past it ends the decoding with 413 `batch_too_large`, so an oversized
/// batch costs at most `max_batch` records of memory, not the whole body's.
pub struct ApiBatch<T>(pub Vec<T>);

/// Decodes a sequence, failing at the first element past `max` (and saying so in `over`).
struct BatchSeed<'a, T> {
    max: usize,
    over: &'a std::cell::Cell<bool>,
    marker: std::marker::PhantomData<T>,
}

impl<'de, T: serde::Deserialize<'de>> DeserializeSeed<'de> for BatchSeed<'_, T> {
    type Value = Vec<T>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for BatchSeed<'_, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of at most {} records", self.max)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(1024));
        while let Some(record) = seq.next_element()? {
            if out.len() == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many records"));
            }
            out.push(record);
        }
        Ok(out)
    }
}

/// Decodes an array of at most `max` records ([`ApiBatch`]).
pub fn decode_batch<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<Vec<T>, ApiError> {
    let over = std::cell::Cell::new(false);
    let seed = BatchSeed {
        max,
        over: &over,
        marker: std::marker::PhantomData,
    };
    decode_seeded(bytes, seed).map_err(|e| {
        if over.get() {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!("more than {max} records in one request; the limit is {max} (max_batch)"),
            )
        } else {
            e
        }
    })
}

impl<T: DeserializeOwned + Send + 'static> FromRequest<Arc<AppState>> for ApiBatch<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let max = state.serving.config().max_batch;
        let bytes = json_bytes(req, state).await?;
        if bytes.len() < OFF_THREAD_BYTES {
            return decode_batch(&bytes, max).map(ApiBatch);
        }
        tokio::task::spawn_blocking(move || decode_batch(&bytes, max))
            .await
            .map_err(|e| ApiError::internal(format!("decoding the body failed: {e}")))?
            .map(ApiBatch)
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(r @ PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::bad_request("invalid_path", r.body_text()))
            }
            Err(r) => Err(ApiError::internal(r.body_text())),
        }
    }
}

/// A decoded query string that must be fully consumed: every key a handler does not ask for
/// is reported as unknown by [`QueryParams::finish`].
#[derive(Debug, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    used: Vec<bool>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(QueryParams::parse(parts.uri.query().unwrap_or("")))
    }
}

impl QueryParams {
    /// Decodes `a=1&b=x%20y` (percent-decoding, `+` as space).
    pub fn parse(query: &str) -> Self {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let used = vec![false; pairs.len()];
        Self { pairs, used }
    }

    /// Every value of `key`, comma-separated lists split, empty entries dropped.
    pub fn list(&mut self, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if k == key {
                self.used[i] = true;
                out.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
        }
        out
    }

    /// The single value of `key`; repeating a single-valued key is an error.
    pub fn single(&mut self, key: &str) -> Result<Option<String>, ApiError> {
        let mut found: Option<String> = None;
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if k == key {
                self.used[i] = true;
                if found.is_some() {
                    return Err(ApiError::bad_request(
                        "invalid_parameter",
                        format!("query parameter `{key}` is given more than once"),
                    ));
                }
                found = Some(v.clone());
            }
        }
        Ok(found)
    }

    /// A whole number in `[min, max]`, `default` when absent.
    pub fn number(
        &mut self,
        key: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ApiError> {
        let Some(text) = self.single(key)? else {
            return Ok(default);
        };
        let value: usize = text.trim().parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("query parameter `{key}`: `{text}` is not a whole number"),
            )
        })?;
        if value < min || value > max {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("query parameter `{key}`: {value} is outside [{min}, {max}]"),
            ));
        }
        Ok(value)
    }

    /// A boolean (`true`/`false`/`1`/`0`), `default` when absent.
    pub fn flag(&mut self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.single(key)?.as_deref() {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::bad_request(
                "invalid_parameter",
                format!("query parameter `{key}`: `{other}` is not true or false"),
            )),
        }
    }

    /// Fails on the first key no handler asked for.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.pairs.iter().zip(&self.used).find(|(_, used)| !**used) {
            Some(((key, _), _)) => Err(ApiError::bad_request(
                "unknown_parameter",
                format!("unknown query parameter `{key}`"),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_past_its_limit_stops_decoding_with_413() {
        let body = br#"[{"a":1},{"a":2},{"a":3}]"#;
        let ok: Vec<serde_json::Value> = decode_batch(body, 3).unwrap();
        assert_eq!(ok.len(), 3);
        let err = decode_batch::<serde_json::Value>(body, 2).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (413, "batch_too_large"));
        // Other errors keep their own codes.
        let err = decode_batch::<u32>(br#"[1,"x"]"#, 5).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (422, "invalid_body"));
        assert!(err.message.contains("[1]"), "{}", err.message);
        let err = decode_batch::<u32>(b"[1,", 5).unwrap_err();
        assert_eq!(err.code, "malformed_json");
        let err = decode_batch::<u32>(br#"{"a":1}"#, 5).unwrap_err();
        assert_eq!(err.code, "invalid_body");
    }

    #[test]
    fn query_lists_numbers_and_unknown_keys() {
        let mut q = QueryParams::parse("n=5&category=a%20b&category=c,d&exclude=&x=1");
        assert_eq!(q.number("n", 10, 1, 100).unwrap(), 5);
        assert_eq!(q.number("offset", 0, 0, 100).unwrap(), 0);
        assert_eq!(q.list("category"), vec!["a b", "c", "d"]);
        assert!(q.list("exclude").is_empty());
        let err = q.finish().unwrap_err();
        assert_eq!(err.code, "unknown_parameter");
        assert!(err.message.contains("`x`"));
    }

    #[test]
    fn bad_numbers_and_repeats_are_400() {
        let mut q = QueryParams::parse("n=abc");
        assert_eq!(q.number("n", 10, 1, 100).unwrap_err().status, 400);
        let mut q = QueryParams::parse("n=0");
        assert!(q.number("n", 10, 1, 100).is_err());
        let mut q = QueryParams::parse("n=1&n=2");
        assert!(q.number("n", 10, 1, 100).is_err());
        let mut q = QueryParams::parse("n=-1");
        assert!(q.number("n", 10, 1, 100).is_err());
    }
}
