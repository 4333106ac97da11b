//! The OpenAPI 3.1 document served at `/openapi.json`, generated from one route table
//! ([`ROUTES`]) that a test checks against the router, so the document cannot drift from what
//! the server answers.

use serde_json::{json, Map, Value};

/// One operation: method, path, scope (`open`, `read`, `write`, `admin`), summary, query
/// parameters, request body schema name.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: &'static str,
    pub summary: &'static str,
    pub query: &'static [(&'static str, &'static str, &'static str)],
    pub body: Option<&'static str>,
}

const PAGE: &[(&str, &str, &str)] = &[
    ("n", "integer", "List length (1..max_n, default 10)."),
    ("offset", "integer", "Items to skip (default 0)."),
    (
        "category",
        "string",
        "Prefer items of these categories (repeat or comma-separate).",
    ),
    (
        "exclude",
        "string",
        "Never list these item ids (repeat or comma-separate).",
    ),
];

const RECOMMEND: &[(&str, &str, &str)] = &[
    ("n", "integer", "List length (1..max_n, default 10)."),
    ("offset", "integer", "Items to skip (default 0)."),
    (
        "category",
        "string",
        "Prefer items of these categories (repeat or comma-separate).",
    ),
    (
        "exclude",
        "string",
        "Never list these item ids (repeat or comma-separate).",
    ),
    (
        "rank",
        "string",
        "A named rank config of the server (default: its `rank`).",
    ),
    (
        "write_impressions",
        "boolean",
        "Log the list to the impressions table.",
    ),
];

const N_ONLY: &[(&str, &str, &str)] = &[("n", "integer", "List length (1..max_n, default 10).")];

const ERASE: &[(&str, &str, &str)] = &[(
    "erase",
    "boolean",
    "Erase (admin scope): remove every row naming the id (record, feedback, impressions, exposures) and keep a hashed tombstone that refuses later writes naming it and keeps it out of training.",
)];

/// Every route the server answers.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "get",
        path: "/health/live",
        scope: "open",
        summary: "The process answers.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/health/ready",
        scope: "open",
        summary: "The store answers and a snapshot is loaded.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/openapi.json",
        scope: "open",
        summary: "This document.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/metrics",
        scope: "read",
        summary: "Prometheus metrics.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "put",
        path: "/v1/users/{id}",
        scope: "write",
        summary: "Insert or replace a user.",
        query: &[],
        body: Some("User"),
    },
    RouteDoc {
        method: "get",
        path: "/v1/users/{id}",
        scope: "read",
        summary: "A stored user.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "delete",
        path: "/v1/users/{id}",
        scope: "write",
        summary: "Delete a user's record (204; feedback stays). With erase=true (admin scope): erase the user, 200 with the rows removed per table.",
        query: ERASE,
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/users",
        scope: "write",
        summary: "Insert or replace users (batch).",
        query: &[],
        body: Some("UserBatch"),
    },
    RouteDoc {
        method: "put",
        path: "/v1/items/{id}",
        scope: "write",
        summary: "Insert or replace an item.",
        query: &[],
        body: Some("Item"),
    },
    RouteDoc {
        method: "get",
        path: "/v1/items/{id}",
        scope: "read",
        summary: "A stored item.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "delete",
        path: "/v1/items/{id}",
        scope: "write",
        summary: "Delete an item's record (204). With erase=true (admin scope): erase the item, 200 with the rows removed per table.",
        query: ERASE,
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/items",
        scope: "write",
        summary: "Insert or replace items (batch).",
        query: &[],
        body: Some("ItemBatch"),
    },
    RouteDoc {
        method: "post",
        path: "/v1/feedback",
        scope: "write",
        summary: "Store feedback events (batch, durable, idempotent by event_id).",
        query: &[],
        body: Some("FeedbackBatch"),
    },
    RouteDoc {
        method: "get",
        path: "/v1/recommend/{user}",
        scope: "read",
        summary: "The user's list, each item with score and source.",
        query: RECOMMEND,
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/recommend",
        scope: "read",
        summary: "A list for an anonymous or session user from interactions and features.",
        query: &[],
        body: Some("RecommendRequest"),
    },
    RouteDoc {
        method: "get",
        path: "/v1/similar-items/{item}",
        scope: "read",
        summary: "Items most similar to an item.",
        query: N_ONLY,
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/v1/similar-users/{user}",
        scope: "read",
        summary: "Users most similar to a user.",
        query: N_ONLY,
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/v1/popular",
        scope: "read",
        summary: "Most popular items.",
        query: PAGE,
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/v1/trending",
        scope: "read",
        summary: "Items trending now (decayed popularity).",
        query: PAGE,
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/v1/latest",
        scope: "read",
        summary: "Newest items.",
        query: PAGE,
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/predict",
        scope: "read",
        summary: "Scores of (user, item) pairs.",
        query: &[],
        body: Some("PredictRequest"),
    },
    RouteDoc {
        method: "get",
        path: "/v1/models",
        scope: "read",
        summary: "Registered model versions and the one being served.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/models",
        scope: "admin",
        summary: "Train a version on the store's data (and make it live).",
        query: &[],
        body: Some("PublishRequest"),
    },
    RouteDoc {
        method: "get",
        path: "/v1/models/{version}",
        scope: "read",
        summary: "One registered version.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "delete",
        path: "/v1/models/{version}",
        scope: "admin",
        summary: "Delete a version and its artifact directory (204; 409 version_live or version_in_experiment).",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/models/{version}/activate",
        scope: "admin",
        summary: "Make a version live (atomic swap).",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/models/rollback",
        scope: "admin",
        summary: "Make the previously live version live again.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/v1/monitoring",
        scope: "read",
        summary: "The latest drift/quality pass, online metrics per model version and variant, the monitoring config.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/v1/alerts",
        scope: "read",
        summary: "Recent alerts, newest first, with totals by kind and webhook delivery counts.",
        query: &[(
            "limit",
            "integer",
            "Most alerts answered (default 100, at most monitoring.alert_history).",
        )],
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/monitoring/run",
        scope: "admin",
        summary: "Run a drift/quality pass now and answer its report.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/offpolicy",
        scope: "admin",
        summary: "Estimate a configured rank config's click rate from the logs of exploring lists (IPS, SNIPS, doubly robust).",
        query: &[],
        body: Some("OffPolicyRequest"),
    },
    RouteDoc {
        method: "post",
        path: "/v1/models/{version}/canary",
        scope: "admin",
        summary: "Start experiment canary-<version>: percent % of users get the version, as many the live one.",
        query: &[],
        body: Some("CanaryRequest"),
    },
    RouteDoc {
        method: "post",
        path: "/v1/experiments",
        scope: "admin",
        summary: "Create an experiment (a draft).",
        query: &[],
        body: Some("ExperimentDefinition"),
    },
    RouteDoc {
        method: "get",
        path: "/v1/experiments",
        scope: "read",
        summary: "Every experiment with its status.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/v1/experiments/{name}",
        scope: "read",
        summary: "One experiment.",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/experiments/{name}/start",
        scope: "admin",
        summary: "Start a draft experiment (users are assigned from now on).",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "post",
        path: "/v1/experiments/{name}/stop",
        scope: "admin",
        summary: "Stop a running experiment (users get the default lists again).",
        query: &[],
        body: None,
    },
    RouteDoc {
        method: "get",
        path: "/v1/experiments/{name}/results",
        scope: "read",
        summary: "Per-variant counts and the analysis (lifts, intervals, SRM, sequential test, verdict).",
        query: &[],
        body: None,
    },
];

fn schemas() -> Value {
    let features = json!({ "type": "object", "description": "Feature name -> number, string, boolean, list of strings or list of numbers." });
    json!({
        "User": { "type": "object", "properties": { "id": { "type": "string" }, "features": features } },
        "UserBatch": { "type": "array", "items": { "$ref": "#/components/schemas/User" } },
        "Item": { "type": "object", "properties": {
            "id": { "type": "string" }, "features": features,
            "categories": { "type": "array", "items": { "type": "string" } },
            "timestamp": { "type": "integer", "description": "Unix seconds." },
            "hidden": { "type": "boolean" } } },
        "ItemBatch": { "type": "array", "items": { "$ref": "#/components/schemas/Item" } },
        "Feedback": { "type": "object", "required": ["user", "item", "type"], "properties": {
            "user": { "type": "string" }, "item": { "type": "string" },
            "type": { "type": "string", "description": "rating, view, click, purchase, or a custom name." },
            "value": { "type": "number" }, "timestamp": { "type": "integer" },
            "event_id": { "type": "string", "description": "Resending an event id is a no-op." } } },
        "FeedbackBatch": { "type": "array", "items": { "$ref": "#/components/schemas/Feedback" } },
        "RecommendRequest": { "type": "object", "properties": {
            "user": { "type": "string" },
            "interactions": { "type": "array", "items": { "type": "string" } },
            "features": features, "n": { "type": "integer" }, "offset": { "type": "integer" },
            "category": { "type": "array", "items": { "type": "string" } },
            "exclude": { "type": "array", "items": { "type": "string" } },
            "rank": { "type": "string" } } },
        "PredictRequest": { "type": "object", "required": ["pairs"], "properties": {
            "pairs": { "type": "array", "items": { "type": "array", "items": { "type": "string" }, "minItems": 2, "maxItems": 2 } } } },
        "PublishRequest": { "type": "object", "properties": {
            "model": { "type": "string" }, "positive": { "type": "number" }, "seed": { "type": "integer" },
            "like": { "type": "string", "description": "Retrain exactly as this version was trained (its model, positive, seed and cleaning pipeline); excludes model, positive and seed." },
            "activate": { "type": "boolean" }, "wait": { "type": "boolean" } } },
        "OffPolicyRequest": { "type": "object", "required": ["since"], "properties": {
            "since": { "type": "integer", "description": "Start of the window of logged lists, Unix seconds." },
            "until": { "type": "integer", "description": "End of the window (default: now)." },
            "rank": { "type": "string", "description": "A configured rank config, the candidate (default: default)." },
            "model": { "type": "string", "description": "The candidate's model version (default: the live one)." },
            "reward_events": { "type": "array", "items": { "type": "string" }, "description": "Event types that count as a click (default: click)." },
            "attribution_window_seconds": { "type": "integer" },
            "level": { "type": "number", "description": "Confidence level of the intervals (default 0.95)." } } },
        "CanaryRequest": { "type": "object", "required": ["percent"], "properties": {
            "percent": { "type": "number", "description": "Share of users (0-100, exclusive) served by the version." },
            "success_metric": { "type": "string", "description": "Default click_any." } } },
        "ExperimentDefinition": { "type": "object", "required": ["name", "variants", "success_metric"], "properties": {
            "name": { "type": "string" },
            "variants": { "type": "array", "minItems": 2, "description": "The first is the control.", "items": {
                "type": "object", "required": ["name", "weight"], "properties": {
                    "name": { "type": "string" }, "model_version": { "type": "string" },
                    "rank": { "type": "string" }, "weight": { "type": "number" } } } },
            "salt": { "type": "string", "description": "Assignment hash salt (default: the name)." },
            "traffic": { "type": "number", "description": "Share of users in the experiment, (0, 1], default 1." },
            "success_metric": { "type": "string", "description": "A column (click_any, purchase, exposures, impressions) or name=numerator/denominator." },
            "guardrail_metrics": { "type": "array", "items": { "type": "string" } },
            "attribution_window_seconds": { "type": "integer", "description": "Default 86400." },
            "pre_period_seconds": { "type": "integer", "description": "CUPED pre-period before the start." },
            "planned_users_per_variant": { "type": "integer" },
            "alpha": { "type": "number", "description": "Default 0.05." } } },
        "RecommendResponse": { "type": "object", "properties": {
            "request_id": { "type": "string" }, "model_version": { "type": ["string", "null"] },
            "experiment": { "type": "object", "description": "Present when the list was served in an experiment.", "properties": {
                "name": { "type": "string" }, "variant": { "type": "string" } } },
            "items": { "type": "array", "items": { "type": "object", "properties": {
                "item": { "type": "string" }, "score": { "type": ["number", "null"] }, "source": { "type": "string" } } } } } },
        "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": {
            "code": { "type": "string" }, "message": { "type": "string" } } } } },
    })
}

fn operation(route: &RouteDoc) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(route.query.iter().map(|(name, ty, description)| {
        json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": ty } })
    }));
    let ok = if route.path.starts_with("/v1/recommend") {
        json!({ "description": "OK", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RecommendResponse" } } } })
    } else {
        json!({ "description": "OK" })
    };
    let error = json!({ "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let mut op = json!({
        "summary": route.summary,
        "parameters": parameters,
        "responses": { "200": ok, "4XX": error.clone(), "5XX": error },
    });
    if route.scope != "open" {
        op["security"] = json!([{ "bearer": [] }]);
        op["x-kindred-scope"] = json!(route.scope);
    }
    if let Some(schema) = route.body {
        op["requestBody"] = json!({ "required": true, "content": { "application/json": {
            "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
    }
    op
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Kindred", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Recommendations, feedback and model versions. Errors are {\"error\": {\"code\", \"message\"}}." },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
    })
}
