//! The reusable part of the load generator: a minimal HTTP/1.1 keep-alive client ([`http`]),
//! shared with `kindred-sim` so neither needs an HTTP client crate.

pub mod http;
