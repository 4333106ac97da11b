//! Bad requests, table-driven: each row is one kind of mistake a client can make (malformed or
//! mis-shaped JSON, wrong media type, oversized bodies and batches, bad ids, unknown ids, bad
//! query parameters, missing or wrong API keys, unknown routes and methods, registry misuse) with
//! the exact 4xx status and error code it must get. Every answer must be the JSON error form
//! `{"error": {"code", "message"}}`, none may be a 5xx, and the server must still answer
//! afterwards.

mod common;

use std::collections::BTreeSet;

use common::{start, Options, Response};
use serde_json::{json, Value};

const READ: &str = "read-key";
const WRITE: &str = "write-key";
const ADMIN: &str = "admin-key";
const MAX_BODY: usize = 4096;
const MAX_BATCH: usize = 5;
const MAX_N: usize = 50;

/// Who the request claims to be.
#[derive(Debug, Clone, Copy)]
enum Auth {
    /// The admin key: passes every scope, so the row tests something else.
    Admin,
    /// No `Authorization` header.
    NoKey,
    /// `Authorization: Bearer <key>`.
    Key(&'static str),
    /// A raw `Authorization` header value.
    Header(&'static str),
}

#[derive(Debug)]
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    auth: Auth,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
}

impl Case {
    fn new(name: &'static str, method: &'static str, path: impl Into<String>) -> Self {
        Self {
            name,
            method,
            path: path.into(),
            auth: Auth::Admin,
            content_type: None,
            body: None,
            status: 0,
            code: "",
        }
    }

    /// A raw body sent as `application/json`.
    fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(body.into());
        self
    }

    fn json(self, body: Value) -> Self {
        let bytes = serde_json::to_vec(&body).expect("serialise");
        self.raw(bytes)
    }

    fn content_type(mut self, value: Option<&'static str>) -> Self {
        self.content_type = value;
        self
    }

    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    fn expect(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }
}

fn get(name: &'static str, path: impl Into<String>) -> Case {
    Case::new(name, "GET", path)
}

fn post(name: &'static str, path: &str) -> Case {
    Case::new(name, "POST", path)
}

fn put(name: &'static str, path: &str) -> Case {
    Case::new(name, "PUT", path)
}

fn delete(name: &'static str, path: &str) -> Case {
    Case::new(name, "DELETE", path)
}

fn event(user: &str, item: &str) -> Value {
    json!({ "user": user, "item": item, "type": "click" })
}

fn cases(version: &str) -> Vec<Case> {
    let long_id = "x".repeat(257);
    let too_many_events: Vec<Value> = (0..=MAX_BATCH)
        .map(|i| event("u1", &format!("i{i}")))
        .collect();
    let too_many_users: Vec<Value> = (0..=MAX_BATCH)
        .map(|i| json!({ "id": format!("b{i}") }))
        .collect();
    let too_many_pairs: Vec<Value> = (0..=MAX_BATCH).map(|_| json!(["u1", "i1"])).collect();
    let too_many_interactions: Vec<String> = (0..=MAX_BATCH).map(|i| format!("i{i}")).collect();
    let huge_body = format!("[{}]", vec![event("u1", "i1").to_string(); 120].join(","));
    assert!(huge_body.len() > MAX_BODY);
    let deep = format!(
        r#"{{"features": {{"deep": {}{}}}}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    assert!(deep.len() < MAX_BODY);
    let depth = MAX_N * 10;
    vec![
        // --- JSON bodies -------------------------------------------------------------------
        post("malformed JSON", "/v1/feedback")
            .raw("[{not json")
            .expect(400, "malformed_json"),
        post("truncated JSON", "/v1/feedback")
            .raw(r#"[{"user": "u1", "item": "i1""#)
            .expect(400, "malformed_json"),
        post("trailing garbage after JSON", "/v1/feedback")
            .raw("[] []")
            .expect(400, "malformed_json"),
        post("NaN literal", "/v1/feedback")
            .raw(r#"[{"user": "u1", "item": "i1", "type": "rating", "value": NaN}]"#)
            .expect(400, "malformed_json"),
        post("invalid UTF-8 in a string", "/v1/feedback")
            .raw(b"[{\"user\": \"u\xff\", \"item\": \"i1\", \"type\": \"click\"}]".to_vec())
            .expect(400, "malformed_json"),
        put("nesting deeper than the parser allows", "/v1/users/u-deep")
            .raw(deep)
            .expect(400, "malformed_json"),
        post("empty body where one is required", "/v1/feedback")
            .raw("")
            .expect(400, "malformed_json"),
        post("object where an array is expected", "/v1/feedback")
            .json(event("u1", "i1"))
            .expect(422, "invalid_body"),
        post("string where an object is expected", "/v1/recommend")
            .json(json!("i1"))
            .expect(422, "invalid_body"),
        post("string for a number", "/v1/feedback")
            .json(json!([{ "user": "u1", "item": "i1", "type": "rating", "value": "high" }]))
            .expect(422, "invalid_body"),
        post("number for a string", "/v1/feedback")
            .json(json!([{ "user": 17, "item": "i1", "type": "click" }]))
            .expect(422, "invalid_body"),
        post("missing required field", "/v1/feedback")
            .json(json!([{ "user": "u1", "item": "i1" }]))
            .expect(422, "invalid_body"),
        post("unknown field", "/v1/feedback")
            .json(json!([{ "user": "u1", "item": "i1", "type": "click", "colour": "red" }]))
            .expect(422, "invalid_body"),
        post("timestamp of the wrong type", "/v1/feedback")
            .json(
                json!([{ "user": "u1", "item": "i1", "type": "click", "timestamp": "yesterday" }]),
            )
            .expect(422, "invalid_body"),
        post("fractional timestamp", "/v1/feedback")
            .json(json!([{ "user": "u1", "item": "i1", "type": "click", "timestamp": 1.5 }]))
            .expect(422, "invalid_body"),
        post("null body", "/v1/feedback")
            .raw("null")
            .expect(422, "invalid_body"),
        post("value beyond f32 (1e39)", "/v1/feedback")
            .raw(r#"[{"user": "u1", "item": "i1", "type": "rating", "value": 1e39}]"#)
            .expect(400, "invalid_input"),
        put("features not an object", "/v1/users/u-bad")
            .json(json!({ "features": [1, 2] }))
            .expect(422, "invalid_body"),
        put("nested object as a feature", "/v1/users/u-bad")
            .json(json!({ "features": { "address": { "city": "Oslo" } } }))
            .expect(400, "invalid_input"),
        put(
            "list mixing strings and numbers as a feature",
            "/v1/items/i-bad",
        )
        .json(json!({ "features": { "tags": ["a", 1] } }))
        .expect(400, "invalid_input"),
        put("item feature named like an item field", "/v1/items/i-bad")
            .json(json!({ "features": { "hidden": "no" } }))
            .expect(400, "invalid_input"),
        post("nested feature in a batch", "/v1/items")
            .json(json!([{ "id": "i-ok" }, { "id": "i-bad", "features": { "x": {} } }]))
            .expect(400, "invalid_input"),
        put(
            "user feature of another kind than stored",
            "/v1/users/u-bad",
        )
        .json(json!({ "features": { "segment": 5 } }))
        .expect(400, "invalid_input"),
        put(
            "item feature of another kind than stored",
            "/v1/items/i-bad",
        )
        .json(json!({ "features": { "year": "1999" } }))
        .expect(400, "invalid_input"),
        post("batch disagreeing on a new feature's kind", "/v1/users")
            .json(json!([{ "id": "a", "features": { "fresh": 1 } },
                         { "id": "b", "features": { "fresh": "one" } }]))
            .expect(400, "invalid_input"),
        post("vectors of two dimensions in one feature", "/v1/items")
            .json(json!([{ "id": "v1", "features": { "emb": [1, 2] } },
                         { "id": "v2", "features": { "emb": [1, 2, 3] } }]))
            .expect(400, "invalid_input"),
        put("categories not strings", "/v1/items/i-bad")
            .json(json!({ "categories": [1, 2] }))
            .expect(422, "invalid_body"),
        put("hidden not a boolean", "/v1/items/i-bad")
            .json(json!({ "hidden": "yes" }))
            .expect(422, "invalid_body"),
        put("empty category", "/v1/items/i-bad")
            .json(json!({ "categories": [""] }))
            .expect(400, "invalid_input"),
        post("users batch not an array", "/v1/users")
            .json(json!({ "id": "u1" }))
            .expect(422, "invalid_body"),
        post("predict pairs of three", "/v1/predict")
            .json(json!({ "pairs": [["u1", "i1", "x"]] }))
            .expect(422, "invalid_body"),
        post("predict pairs not a list", "/v1/predict")
            .json(json!({ "pairs": "u1,i1" }))
            .expect(422, "invalid_body"),
        post("predict without pairs", "/v1/predict")
            .json(json!({}))
            .expect(422, "invalid_body"),
        post("recommend n negative in body", "/v1/recommend")
            .json(json!({ "n": -1 }))
            .expect(422, "invalid_body"),
        post("recommend n beyond usize in body", "/v1/recommend")
            .raw(r#"{"n": 100000000000000000000000}"#)
            .expect(422, "invalid_body"),
        post("publish with a seed of the wrong type", "/v1/models")
            .json(json!({ "seed": "forty-two" }))
            .expect(422, "invalid_body"),
        post("publish with an unknown field", "/v1/models")
            .json(json!({ "model": "als", "epochs": 3 }))
            .expect(422, "invalid_body"),
        // --- media type and size ------------------------------------------------------------
        post("wrong Content-Type", "/v1/feedback")
            .json(json!([event("u1", "i1")]))
            .content_type(Some("text/plain"))
            .expect(415, "unsupported_media_type"),
        post("no Content-Type", "/v1/feedback")
            .json(json!([event("u1", "i1")]))
            .content_type(None)
            .expect(415, "unsupported_media_type"),
        put("form-encoded body", "/v1/users/u1")
            .raw("id=u1")
            .content_type(Some("application/x-www-form-urlencoded"))
            .expect(415, "unsupported_media_type"),
        post("body over max_body_bytes", "/v1/feedback")
            .raw(huge_body)
            .expect(413, "body_too_large"),
        post("feedback batch over max_batch", "/v1/feedback")
            .json(Value::Array(too_many_events))
            .expect(413, "batch_too_large"),
        post("users batch over max_batch", "/v1/users")
            .json(Value::Array(too_many_users))
            .expect(413, "batch_too_large"),
        post("predict pairs over max_batch", "/v1/predict")
            .json(json!({ "pairs": too_many_pairs }))
            .expect(413, "batch_too_large"),
        post("recommend interactions over max_batch", "/v1/recommend")
            .json(json!({ "interactions": too_many_interactions }))
            .expect(413, "batch_too_large"),
        // --- ids ----------------------------------------------------------------------------
        post("empty user id in feedback", "/v1/feedback")
            .json(json!([event("", "i1")]))
            .expect(400, "invalid_input"),
        post("empty event type", "/v1/feedback")
            .json(json!([{ "user": "u1", "item": "i1", "type": "" }]))
            .expect(400, "invalid_input"),
        post("event type over 64 bytes", "/v1/feedback")
            .json(json!([{ "user": "u1", "item": "i1", "type": "t".repeat(65) }]))
            .expect(400, "invalid_input"),
        post("event id over 256 bytes", "/v1/feedback")
            .json(json!([{ "user": "u1", "item": "i1", "type": "click", "event_id": long_id }]))
            .expect(400, "invalid_input"),
        put("user id over 256 bytes", &format!("/v1/users/{long_id}"))
            .json(json!({}))
            .expect(400, "invalid_input"),
        put("item id with a control character", "/v1/items/a%01b")
            .json(json!({}))
            .expect(400, "invalid_input"),
        get("path not valid UTF-8", "/v1/users/%FF%FE").expect(400, "invalid_path"),
        get(
            "recommend for a user id over 256 bytes",
            format!("/v1/recommend/{long_id}"),
        )
        .expect(400, "invalid_input"),
        get("model version with a control character", "/v1/models/v%0A1")
            .expect(400, "invalid_input"),
        put("body id differs from the path", "/v1/users/u1")
            .json(json!({ "id": "u2" }))
            .expect(400, "id_mismatch"),
        post("batch user without an id", "/v1/users")
            .json(json!([{ "features": {} }]))
            .expect(400, "missing_field"),
        post("recommend with an empty interaction id", "/v1/recommend")
            .json(json!({ "interactions": ["i1", ""] }))
            .expect(400, "invalid_input"),
        post("predict with an empty user id", "/v1/predict")
            .json(json!({ "pairs": [["", "i1"]] }))
            .expect(400, "invalid_input"),
        // --- unknown ids --------------------------------------------------------------------
        get("unknown user", "/v1/users/nobody").expect(404, "not_found"),
        delete("delete an unknown user", "/v1/users/nobody").expect(404, "not_found"),
        get("unknown item", "/v1/items/nothing").expect(404, "not_found"),
        delete("delete an unknown item", "/v1/items/nothing").expect(404, "not_found"),
        get("unknown model version", "/v1/models/als-0-0").expect(404, "not_found"),
        get(
            "similar items of an unknown item",
            "/v1/similar-items/nothing",
        )
        .expect(404, "not_found"),
        get(
            "similar users of an unknown user",
            "/v1/similar-users/nobody",
        )
        .expect(404, "not_found"),
        post("predict with an unknown item", "/v1/predict")
            .json(json!({ "pairs": [["u1", "nothing"]] }))
            .expect(404, "not_found"),
        post("activate an unknown version", "/v1/models/als-0-0/activate").expect(404, "not_found"),
        // --- query parameters ---------------------------------------------------------------
        get("n=0", "/v1/recommend/u1?n=0").expect(400, "invalid_parameter"),
        get("n over max_n", format!("/v1/recommend/u1?n={}", MAX_N + 1))
            .expect(400, "invalid_parameter"),
        get("n=abc", "/v1/recommend/u1?n=abc").expect(400, "invalid_parameter"),
        get("n=-1", "/v1/recommend/u1?n=-1").expect(400, "invalid_parameter"),
        get("n=1.5", "/v1/popular?n=1.5").expect(400, "invalid_parameter"),
        get("n empty", "/v1/trending?n=").expect(400, "invalid_parameter"),
        get("n beyond u64", "/v1/latest?n=99999999999999999999999")
            .expect(400, "invalid_parameter"),
        get("repeated n", "/v1/recommend/u1?n=1&n=2").expect(400, "invalid_parameter"),
        get(
            "repeated rank",
            "/v1/recommend/u1?rank=default&rank=default",
        )
        .expect(400, "invalid_parameter"),
        get("unknown query parameter", "/v1/recommend/u1?colour=red")
            .expect(400, "unknown_parameter"),
        get("misspelt parameter on popular", "/v1/popular?limit=5")
            .expect(400, "unknown_parameter"),
        get(
            "rank on a route without rank configs",
            "/v1/similar-items/i1?rank=default",
        )
        .expect(400, "unknown_parameter"),
        get(
            "offset too deep",
            format!("/v1/recommend/u1?n=10&offset={}", depth - 9),
        )
        .expect(400, "invalid_parameter"),
        get("offset not a number", "/v1/popular?offset=x").expect(400, "invalid_parameter"),
        get("similar items n=0", "/v1/similar-items/i1?n=0").expect(400, "invalid_parameter"),
        get(
            "similar users n over max_n",
            format!("/v1/similar-users/u1?n={}", MAX_N + 1),
        )
        .expect(400, "invalid_parameter"),
        get(
            "write_impressions not a boolean",
            "/v1/recommend/u1?write_impressions=maybe",
        )
        .expect(400, "invalid_parameter"),
        get("unknown rank config", "/v1/recommend/u1?rank=nope").expect(400, "unknown_rank_config"),
        post("unknown rank config in the body", "/v1/recommend")
            .json(json!({ "rank": "nope" }))
            .expect(400, "unknown_rank_config"),
        get("unknown category", "/v1/recommend/u1?category=NoSuchGenre")
            .expect(400, "invalid_input"),
        get(
            "unknown category on popular",
            "/v1/popular?category=NoSuchGenre",
        )
        .expect(400, "invalid_input"),
        post("unknown category in the body", "/v1/recommend")
            .json(json!({ "category": ["NoSuchGenre"] }))
            .expect(400, "invalid_input"),
        post("recommend n=0 in the body", "/v1/recommend")
            .json(json!({ "n": 0 }))
            .expect(400, "invalid_parameter"),
        post("recommend n over max_n in the body", "/v1/recommend")
            .json(json!({ "n": MAX_N + 1 }))
            .expect(400, "invalid_parameter"),
        post("recommend offset too deep in the body", "/v1/recommend")
            .json(json!({ "n": 10, "offset": depth }))
            .expect(400, "invalid_parameter"),
        post(
            "recommend offset near usize::MAX in the body",
            "/v1/recommend",
        )
        .json(json!({ "n": 10, "offset": u64::MAX }))
        .expect(400, "invalid_parameter"),
        // --- API keys -----------------------------------------------------------------------
        post("write without a key", "/v1/feedback")
            .json(json!([event("u1", "i1")]))
            .auth(Auth::NoKey)
            .expect(401, "missing_api_key"),
        get("read without a key when a read key is set", "/v1/popular")
            .auth(Auth::NoKey)
            .expect(401, "missing_api_key"),
        get("read with a wrong key", "/v1/popular")
            .auth(Auth::Key("guess"))
            .expect(401, "invalid_api_key"),
        post("write with a read key", "/v1/feedback")
            .json(json!([event("u1", "i1")]))
            .auth(Auth::Key(READ))
            .expect(403, "forbidden"),
        delete("delete with a read key", "/v1/users/u1")
            .auth(Auth::Key(READ))
            .expect(403, "forbidden"),
        post("admin route with a write key", "/v1/models/rollback")
            .auth(Auth::Key(WRITE))
            .expect(403, "forbidden"),
        post("publish with a read key", "/v1/models")
            .json(json!({}))
            .auth(Auth::Key(READ))
            .expect(403, "forbidden"),
        get("Basic instead of Bearer", "/v1/popular")
            .auth(Auth::Header("Basic YWxhZGRpbjpvcGVuc2VzYW1l"))
            .expect(401, "invalid_api_key"),
        get("Bearer without a key", "/v1/popular")
            .auth(Auth::Header("Bearer "))
            .expect(401, "invalid_api_key"),
        get("lower-case bearer", "/v1/popular")
            .auth(Auth::Header("bearer read-key"))
            .expect(401, "invalid_api_key"),
        get("key without a scheme", "/v1/popular")
            .auth(Auth::Header(READ))
            .expect(401, "invalid_api_key"),
        // --- routes and methods -------------------------------------------------------------
        get("unknown route", "/v1/nothing-here").expect(404, "no_route"),
        get("unknown version prefix", "/v2/popular").expect(404, "no_route"),
        get("recommend without a user", "/v1/recommend/").expect(404, "no_route"),
        delete("wrong method on feedback", "/v1/feedback").expect(405, "method_not_allowed"),
        Case::new("PATCH on a user", "PATCH", "/v1/users/u1")
            .json(json!({}))
            .expect(405, "method_not_allowed"),
        post("POST on popular", "/v1/popular")
            .json(json!({}))
            .expect(405, "method_not_allowed"),
        get("GET on predict", "/v1/predict").expect(405, "method_not_allowed"),
        get("GET on rollback", "/v1/models/rollback").expect(405, "method_not_allowed"),
        // --- model registry -----------------------------------------------------------------
        post("rollback with nothing to roll back", "/v1/models/rollback")
            .expect(409, "no_previous_version"),
        // --- experiments --------------------------------------------------------------------
        post("experiment with one variant", "/v1/experiments")
            .json(json!({ "name": "e1", "variants": [{ "name": "a", "weight": 1 }],
                          "success_metric": "click_any" }))
            .expect(400, "invalid_input"),
        post("experiment with a zero weight", "/v1/experiments")
            .json(json!({ "name": "e1", "success_metric": "click_any", "variants": [
                { "name": "a", "weight": 1 }, { "name": "b", "weight": 0 }] }))
            .expect(400, "invalid_input"),
        post("experiment naming an unknown version", "/v1/experiments")
            .json(json!({ "name": "e1", "success_metric": "click_any", "variants": [
                { "name": "a", "weight": 1 }, { "name": "b", "model_version": "nope", "weight": 1 }] }))
            .expect(400, "unknown_model_version"),
        post("experiment naming an unknown rank config", "/v1/experiments")
            .json(json!({ "name": "e1", "success_metric": "click_any", "variants": [
                { "name": "a", "weight": 1 }, { "name": "b", "rank": "nope", "weight": 1 }] }))
            .expect(400, "unknown_rank_config"),
        post("experiment with a bad ratio metric", "/v1/experiments")
            .json(json!({ "name": "e1", "success_metric": "ctr=click", "variants": [
                { "name": "a", "weight": 1 }, { "name": "b", "weight": 1 }] }))
            .expect(400, "invalid_input"),
        post("experiment with an unknown field", "/v1/experiments")
            .json(json!({ "name": "e1", "success_metric": "click_any", "colour": "red", "variants": [
                { "name": "a", "weight": 1 }, { "name": "b", "weight": 1 }] }))
            .expect(422, "invalid_body"),
        post("start an unknown experiment", "/v1/experiments/nope/start").expect(404, "not_found"),
        post("stop an unknown experiment", "/v1/experiments/nope/stop").expect(404, "not_found"),
        get("results of an unknown experiment", "/v1/experiments/nope/results")
            .expect(404, "not_found"),
        get("an unknown experiment", "/v1/experiments/nope").expect(404, "not_found"),
        post("canary of an unknown version", "/v1/models/nope/canary")
            .json(json!({ "percent": 5 }))
            .expect(404, "not_found"),
        post("canary of 0 percent", &format!("/v1/models/{version}/canary"))
            .json(json!({ "percent": 0 }))
            .expect(400, "invalid_parameter"),
        post("canary of 100 percent", &format!("/v1/models/{version}/canary"))
            .json(json!({ "percent": 100 }))
            .expect(400, "invalid_parameter"),
        post("canary of the live version", &format!("/v1/models/{version}/canary"))
            .json(json!({ "percent": 5 }))
            .expect(409, "already_live"),
        post("create an experiment with a read key", "/v1/experiments")
            .auth(Auth::Key(READ))
            .json(json!({}))
            .expect(403, "forbidden"),
        post("start an experiment with a write key", "/v1/experiments/e1/start")
            .auth(Auth::Key(WRITE))
            .expect(403, "forbidden"),
        post("publish an invalid model spec", "/v1/models")
            .json(json!({ "model": "no-such-model" }))
            .expect(400, "invalid_input"),
        post("publish with a bad model parameter", "/v1/models")
            .json(json!({ "model": "als:factors=zero" }))
            .expect(400, "invalid_input"),
        post(
            "publish with a non-finite positive threshold, not waiting",
            "/v1/models",
        )
        .raw(r#"{"positive": -1e39}"#)
        .expect(400, "invalid_input"),
        post("publish with a non-finite positive threshold", "/v1/models")
            .raw(r#"{"positive": 1e39, "wait": true}"#)
            .expect(400, "invalid_input"),
        post(
            "activate a version with a control character",
            "/v1/models/v%01/activate",
        )
        .expect(400, "invalid_input"),
        get(
            "unknown sub-route of a model version",
            format!("/v1/models/{version}/nothing"),
        )
        .expect(404, "no_route"),
    ]
}

async fn send(client: &common::Client, case: &Case) -> Response {
    let mut headers: Vec<(&str, String)> = Vec::new();
    match case.auth {
        Auth::Admin => headers.push(("Authorization", format!("Bearer {ADMIN}"))),
        Auth::NoKey => {}
        Auth::Key(key) => headers.push(("Authorization", format!("Bearer {key}"))),
        Auth::Header(value) => headers.push(("Authorization", value.to_owned())),
    }
    if let Some(ct) = case.content_type {
        headers.push(("Content-Type", ct.to_owned()));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    client
        .request(case.method, &case.path, &headers, case.body.as_deref())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_request_gets_its_4xx_and_a_json_error() {
    let options = Options::keys(Some(READ), Some(WRITE), Some(ADMIN)).tweak(|c| {
        c.max_body_bytes = MAX_BODY;
        c.max_batch = MAX_BATCH;
        c.max_n = MAX_N;
    });
    let server = start(options).await;
    let version = server.version.clone().expect("published");
    let client = server.client();
    let cases = cases(&version);
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "row names are unique");
    assert!(cases.len() >= 50, "{} kinds of bad request", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let r = send(&client, case).await;
        let problem = if r.status == 0 {
            Some("no answer: the connection closed (did the handler panic?)".to_owned())
        } else if r.status >= 500 {
            Some(format!("a server error {}", r.status))
        } else if r.status != case.status {
            Some(format!("status {} (expected {})", r.status, case.status))
        } else {
            match r.json.as_ref() {
                None => Some("a body that is not JSON".to_owned()),
                Some(body) => {
                    let error = body.get("error");
                    let code = error.and_then(|e| e.get("code")).and_then(Value::as_str);
                    let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
                    let shape_ok = body.as_object().is_some_and(|o| o.len() == 1)
                        && error
                            .and_then(Value::as_object)
                            .is_some_and(|e| e.len() == 2);
                    if !shape_ok {
                        Some("not exactly {\"error\": {\"code\", \"message\"}}".to_owned())
                    } else if code != Some(case.code) {
                        Some(format!("code {code:?} (expected {:?})", case.code))
                    } else if message.is_none_or(|m| m.trim().is_empty()) {
                        Some("an empty message".to_owned())
                    } else if !r
                        .header("content-type")
                        .is_some_and(|t| t.starts_with("application/json"))
                    {
                        Some(format!("content type {:?}", r.header("content-type")))
                    } else {
                        None
                    }
                }
            }
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "{}: {} {} got {problem}; body: {}",
                case.name,
                case.method,
                case.path,
                r.text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The server is still up, and nothing above was a server error.
    let live = client.get("/health/live").await;
    live.expect_status(200);
    assert_eq!(live.json()["status"], "ok");
    let admin = server.client_with_key(ADMIN);
    let metrics = admin.get("/metrics").await;
    metrics.expect_status(200);
    let server_errors: Vec<String> = metrics
        .text()
        .lines()
        .filter(|l| l.starts_with("kindred_http_requests_total") && l.contains("status=\"5"))
        .map(str::to_owned)
        .collect();
    assert!(server_errors.is_empty(), "{server_errors:?}");
    // Rejected writes wrote nothing, and the catalog still rebuilds and serves.
    let counts = server.state.serving.store().counts().await.expect("counts");
    assert_eq!(counts.feedback as usize, server.data.feedback.len());
    assert_eq!(counts.users as usize, server.data.users.len());
    assert_eq!(counts.items as usize, server.data.items.len());
    assert_eq!(counts.models, 1);
    server
        .state
        .serving
        .state
        .rebuild()
        .await
        .expect("the catalog rebuilds");
    let r = admin.get("/v1/recommend/u1?n=3").await;
    r.expect_status(200);
    assert_eq!(r.item_ids().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_routes_and_loopback_without_keys() {
    // No keys at all: reads and writes are open, but an unknown key is still refused.
    let server = start(Options::default()).await;
    let c = server.client();
    c.get("/v1/popular").await.expect_status(200);
    let r = server.client_with_key("typo").get("/v1/popular").await;
    r.expect_status(401);
    assert_eq!(r.error_code(), Some("invalid_api_key"));
    // Health and the OpenAPI document are open even with keys configured and a bad header.
    let keyed = start(Options::keys(Some(READ), Some(WRITE), Some(ADMIN))).await;
    let kc = keyed.client();
    for path in ["/health/live", "/health/ready", "/openapi.json"] {
        kc.get(path).await.expect_status(200);
        kc.request("GET", path, &[("Authorization", "Basic x")], None)
            .await
            .expect_status(200);
    }
    // Scopes nest: the admin key reads and writes, the write key reads.
    keyed
        .client_with_key(WRITE)
        .get("/v1/popular")
        .await
        .expect_status(200);
    keyed
        .client_with_key(ADMIN)
        .post("/v1/feedback", &json!([event("u1", "i1")]))
        .await
        .expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_meet_the_same_limits() {
    let server = start(Options::default().tweak(|c| c.max_body_bytes = MAX_BODY)).await;
    let client = server.client();
    let chunked = |payload: &str| {
        let mut raw = b"POST /v1/feedback HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
            Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        for chunk in payload.as_bytes().chunks(1000) {
            raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            raw.extend_from_slice(chunk);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        raw
    };
    // Within the limit: accepted.
    let small = json!([event("u1", "i1")]).to_string();
    let r = client.raw(&chunked(&small)).await;
    r.expect_status(200);
    assert_eq!(r.json()["inserted"], 1);
    // Over it: 413 with the JSON error, though no Content-Length announced the size.
    let big = format!("[{}]", vec![event("u1", "i1").to_string(); 120].join(","));
    let r = client.raw(&chunked(&big)).await;
    r.expect_status(413);
    assert_eq!(r.error_code(), Some("body_too_large"));
    client.get("/health/live").await.expect_status(200);
}
