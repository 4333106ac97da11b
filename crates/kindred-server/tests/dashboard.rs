//! The dashboard over HTTP: pages render from the live state, the login exchanges a key for a
//! session cookie, cookies and Bearer keys get their scopes (401 / 403 otherwise), and the
//! admin form activates a version and rolls back.

mod common;

use common::{start, Options, TestServer};
use kindred_serving::TrainSpec;

const READ: &str = "read-key";
const WRITE: &str = "write-key";
const ADMIN: &str = "admin-key";

fn keyed() -> Options {
    Options::keys(Some(READ), Some(WRITE), Some(ADMIN))
}

/// Logs in with `key` through the form and returns the session cookie (`name=token`).
async fn login(server: &TestServer, key: &str) -> String {
    let body = format!("key={key}");
    let r = server
        .client()
        .request(
            "POST",
            "/dashboard/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/dashboard"));
    let cookie = r.header("set-cookie").expect("a session cookie").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains(key),
        "the key itself must not be in the cookie"
    );
    cookie.split(';').next().unwrap().to_owned()
}

async fn get_with_cookie(server: &TestServer, path: &str, cookie: &str) -> common::Response {
    server
        .client()
        .request("GET", path, &[("Cookie", cookie)], None)
        .await
}

/// Posts a dashboard form as a browser would: with the token a page seen with the same cookie
/// (or none) carries.
async fn post_with_cookie(server: &TestServer, path: &str, cookie: &str) -> common::Response {
    let headers: &[(&str, &str)] = if cookie.is_empty() {
        &[]
    } else {
        &[("Cookie", cookie)]
    };
    let page = server
        .client()
        .request("GET", "/dashboard/login", headers, None)
        .await
        .text();
    let marker = "name=\"csrf\" value=\"";
    let token = page.find(marker).map_or("", |at| {
        let rest = &page[at + marker.len()..];
        &rest[..rest.find('"').unwrap_or(0)]
    });
    let body = format!("csrf={token}");
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    server
        .client()
        .request("POST", path, &headers, Some(body.as_bytes()))
        .await
}

/// Pages must load nothing from elsewhere and run no script.
fn assert_self_contained(html: &str) {
    for needle in ["<script", "src=", "<link", "url(", "@import", "href=\"http"] {
        assert!(!html.contains(needle), "page holds `{needle}`");
    }
}

#[tokio::test]
async fn pages_show_the_live_state_without_keys_configured() {
    let server = start(Options::default()).await;
    let version = server.version.clone().unwrap();
    let client = server.client();
    // Traffic for the metrics tables.
    let user = server.data.active_users()[0].clone();
    client
        .get(&format!("/v1/recommend/{user}?n=5"))
        .await
        .expect_status(200);

    let r = client.get("/dashboard").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    assert_self_contained(&html);
    let counts = server.state.serving.store().counts().await.unwrap();
    assert!(html.contains("Store (SQLite)"));
    assert!(html.contains(&format!("feedback events<b>{}</b>", counts.feedback)));
    assert!(html.contains(&format!("users<b>{}</b>", counts.users)));
    assert!(html.contains(&version), "live version shown");
    assert!(
        html.contains("/v1/recommend/{user}"),
        "request metrics by route"
    );
    assert!(html.contains("id=\"feedback-per-day\""), "{html}");
    assert!(html.contains("<svg"));

    let html = client.get("/dashboard/models").await.text();
    assert_self_contained(&html);
    assert!(html.contains(&format!("<code>{version}</code>")));
    assert!(html.contains("<td class=\"live\">live</td>"));

    let r = client.get(&format!("/dashboard/users?user={user}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert_self_contained(&html);
    for id in ["features", "list", "feedback", "similar"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
    }
    // The page's list is the API's list (same snapshot, nothing written between).
    let api = client.get(&format!("/v1/recommend/{user}?n=20")).await;
    for item in api.item_ids() {
        assert!(
            html.contains(&format!("<td>{item}</td>")),
            "item {item} listed"
        );
    }
    assert!(
        html.contains("model:als") || html.contains("fold-in:als"),
        "sources shown"
    );

    let r = client.get("/dashboard/users?user=nobody-here").await;
    assert_eq!(r.status, 404);
    let r = client.get("/dashboard/users?user=%3Cscript%3E").await;
    assert!(r.text().contains("&lt;script&gt;") && !r.text().contains("<script>"));
}

#[tokio::test]
async fn login_cookies_and_keys_get_their_scopes() {
    let server = start(keyed()).await;
    let anonymous = server.client();
    let r = anonymous.get("/dashboard").await;
    assert_eq!(r.status, 401);
    assert!(
        r.text().contains("action=\"/dashboard/login\""),
        "login form shown"
    );
    assert_eq!(anonymous.get("/dashboard/login").await.status, 200);

    // A wrong key does not log in.
    let r = anonymous
        .request(
            "POST",
            "/dashboard/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(b"key=nope"),
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());

    let read = login(&server, READ).await;
    assert_eq!(
        get_with_cookie(&server, "/dashboard", &read).await.status,
        200
    );
    assert_eq!(
        get_with_cookie(&server, "/dashboard/models", &read)
            .await
            .status,
        200
    );
    // Read scope may not act.
    let r = post_with_cookie(&server, "/dashboard/models/rollback", &read).await;
    assert_eq!(r.status, 403);
    // A forged token is no session.
    let r = get_with_cookie(&server, "/dashboard", "kindred_session=00ff").await;
    assert_eq!(r.status, 401);
    // Bearer keys work too, with the API's rules.
    assert_eq!(
        server.client_with_key(READ).get("/dashboard").await.status,
        200
    );
    assert_eq!(
        server.client_with_key("bad").get("/dashboard").await.status,
        401
    );
    let r = server
        .client_with_key(WRITE)
        .request("POST", "/dashboard/models/rollback", &[], Some(b""))
        .await;
    assert_eq!(r.status, 403);
    // The session cookie does not open the JSON API (it is for the dashboard only).
    let r = server
        .client()
        .request("GET", "/v1/models", &[("Cookie", &read)], None)
        .await;
    assert_eq!(r.status, 401);

    // Logging out ends the session.
    let r = post_with_cookie(&server, "/dashboard/logout", &read).await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        get_with_cookie(&server, "/dashboard", &read).await.status,
        401
    );
}

#[tokio::test]
async fn the_admin_form_activates_a_version_and_rolls_back() {
    let server = start(keyed()).await;
    let first = server.version.clone().unwrap();
    let second = server
        .state
        .serving
        .lifecycle
        .train(
            &TrainSpec {
                model: common::MODEL_SPEC.into(),
                positive: None,
                seed: 9,
                pipeline: None,
            },
            false,
        )
        .await
        .unwrap()
        .expect("a second version")
        .model
        .version;
    assert_eq!(
        server.state.serving.snapshot().version(),
        Some(first.as_str())
    );

    let admin = login(&server, ADMIN).await;
    let html = get_with_cookie(&server, "/dashboard/models", &admin)
        .await
        .text();
    let action = format!("action=\"/dashboard/models/{second}/activate\"");
    assert!(html.contains(&action), "activate form for the new version");
    assert!(
        html.contains("id=\"metric-charts\""),
        "two versions: charts"
    );

    let r = post_with_cookie(
        &server,
        &format!("/dashboard/models/{second}/activate"),
        &admin,
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/dashboard/models"));
    assert_eq!(
        server.state.serving.snapshot().version(),
        Some(second.as_str())
    );
    assert_eq!(
        server
            .state
            .serving
            .store()
            .live_model()
            .await
            .unwrap()
            .unwrap()
            .model
            .version,
        second
    );

    let r = post_with_cookie(&server, "/dashboard/models/rollback", &admin).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        server.state.serving.snapshot().version(),
        Some(first.as_str())
    );

    let r = post_with_cookie(&server, "/dashboard/models/no-such/activate", &admin).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn offline_metrics_curves_control_charts_and_data_quality_render() {
    let server = start(Options::default()).await;
    let client = server.client();
    // Two more versions of an ALS that reports its loss: learning curves and, with the fixture's
    // version, three ALS versions with offline metrics, enough for a control chart.
    for seed in [11, 12] {
        server
            .state
            .serving
            .lifecycle
            .train(
                &TrainSpec {
                    model: format!("{},training_loss=true", common::MODEL_SPEC),
                    positive: None,
                    seed,
                    pipeline: None,
                },
                false,
            )
            .await
            .unwrap()
            .expect("a version");
    }
    let html = client.get("/dashboard/models").await.text();
    assert_self_contained(&html);
    for id in ["offline-metrics", "learning-curves", "control-charts"] {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id}"
        );
    }
    assert!(html.contains("<th>ndcg@10</th>"));
    assert!(html.contains("temporal:0.2"), "the protocol is described");
    // Versions made in the same second may list in any order, so the curves are counted, not
    // looked up by row.
    assert_eq!(html.matches("class=\"curve\"><svg").count(), 2, "{html}");
    assert!(html.contains("<figure id=\"control-0\" class=\"control\"><svg"));
    assert!(
        html.contains("no learning curve"),
        "the fixture's ALS reports no loss"
    );

    // Data quality, with values that need escaping.
    let t = 1_900_000_000;
    let body = serde_json::json!([
        {"user": "<u>", "item": "i<1>", "type": "my<type>", "timestamp": t, "event_id": "e1"},
        {"user": "<u>", "item": "i<1>", "type": "my<type>", "timestamp": t, "event_id": "e2"},
        {"user": "<u>", "item": "i<1>", "type": "rating", "timestamp": t - 86_400},
    ]);
    client.post("/v1/feedback", &body).await.expect_status(200);
    let r = client.get("/dashboard/quality").await;
    assert_eq!(r.status, 200);
    let html = r.text();
    assert_self_contained(&html);
    assert!(html.contains("<a href=\"/dashboard/quality\" class=\"on\">Data quality</a>"));
    for id in ["quality", "event-types", "bot-users", "fields"] {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id}"
        );
    }
    assert!(html.contains("id=\"quality-per-day\"><svg"));
    // The window is the 7 days up to the newest event: only the three posted events.
    assert!(
        html.contains("<div class=\"card\" id=\"q-events\"><b>3</b>events</div>"),
        "{html}"
    );
    assert!(html.contains("<td>my&lt;type&gt;</td><td class=\"num\">2</td>"));
    assert!(html.contains("<td>missing</td><td>value</td><td class=\"num\">1</td>"));
    assert!(!html.contains("<u>") && !html.contains("my<type>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_and_monitoring_pages_show_results_alerts_and_admin_forms() {
    use common::DASH_EXPERIMENT_PATH as PATH;
    let server = common::experiment_fixture(keyed(), Some(ADMIN)).await;
    let read = login(&server, READ).await;
    let admin = login(&server, ADMIN).await;
    // The name `als<vs>&pop` is escaped everywhere.
    let escaped = "als&lt;vs&gt;&amp;pop";

    let r = get_with_cookie(&server, "/dashboard/experiments", &read).await;
    assert_eq!(r.status, 200);
    let html = r.text();
    assert_self_contained(&html);
    assert!(html.contains("<section id=\"experiments\">"));
    assert!(
        html.contains(&format!("<tr id=\"experiment-{escaped}\">")),
        "{html}"
    );
    assert!(html.contains(&format!("href=\"/dashboard/experiments/{PATH}\"")));
    assert!(html.contains("<td class=\"live\">running</td>"));
    assert!(html.contains("class=\"allocation\""));
    assert!(!html.contains("als<vs>"));
    assert!(
        !html.contains("<form method=\"post\" action=\"/dashboard/experiments"),
        "read: no forms"
    );
    assert!(html.contains("<a href=\"/dashboard/experiments\" class=\"on\">Experiments</a>"));
    let html = get_with_cookie(&server, "/dashboard/experiments", &admin)
        .await
        .text();
    assert!(html.contains(&format!("action=\"/dashboard/experiments/{PATH}/stop\"")));

    let r = get_with_cookie(&server, &format!("/dashboard/experiments/{PATH}"), &read).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert_self_contained(&html);
    assert!(!html.contains("als<vs>"));
    for id in ["verdict", "srm", "lift-chart", "variants", "comparisons"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "#{id} in {html}");
    }
    assert!(html.contains("<figure id=\"lift-chart\"><svg"));
    assert!(html.contains("No sample ratio mismatch") || html.contains("Sample ratio mismatch"));
    // The page shows the API's numbers.
    let api = server
        .client_with_key(READ)
        .get(&format!("/v1/experiments/{PATH}/results"))
        .await;
    let results = api.json();
    let verdict = results["report"]["verdict"].as_str().expect("analysed");
    assert!(
        html.contains(&kindred_server::dashboard::page::escape(verdict)),
        "{html}"
    );
    for variant in ["control", "treatment"] {
        let exposures = results["counts"]["exposures"][variant].as_u64().unwrap();
        let clicks = results["counts"]["attributed"][variant]["click"]
            .as_u64()
            .unwrap();
        assert!(
            html.contains(&format!("<td>{variant}</td>"))
                && html.contains(&format!("<td class=\"num\">{exposures}</td>"))
                && html.contains(&format!("<td>click: {clicks}</td>")),
            "{variant}: {exposures} exposures, {clicks} clicks in {html}"
        );
    }
    assert_eq!(
        get_with_cookie(&server, "/dashboard/experiments/nope", &read)
            .await
            .status,
        404
    );

    // Stopping through the form: refused to read and write scopes, done for admin.
    let stop = format!("/dashboard/experiments/{PATH}/stop");
    assert_eq!(post_with_cookie(&server, &stop, &read).await.status, 403);
    let r = server
        .client_with_key(WRITE)
        .request("POST", &stop, &[], Some(b""))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        server
            .client()
            .request("POST", &stop, &[], Some(b""))
            .await
            .status,
        401
    );
    assert_eq!(server.state.serving.state.experiments.running().len(), 1);
    let r = post_with_cookie(&server, &stop, &admin).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/dashboard/experiments"));
    assert!(
        server.state.serving.state.experiments.running().is_empty(),
        "running set reloaded"
    );
    let user = server.data.active_users()[0].clone();
    let answer = server
        .client_with_key(READ)
        .get(&format!("/v1/recommend/{user}"))
        .await;
    assert!(
        answer.json().get("experiment").is_none(),
        "stopped: nobody assigned"
    );
    // A stopped experiment cannot start again: the API's 409, as a page.
    let start = format!("/dashboard/experiments/{PATH}/start");
    assert_eq!(post_with_cookie(&server, &start, &admin).await.status, 409);

    // Monitoring: the pass, the online metrics and the alerts it raised (CTR under 0.99).
    let r = get_with_cookie(&server, "/dashboard/monitoring", &read).await;
    assert_eq!(r.status, 200);
    let html = r.text();
    assert_self_contained(&html);
    for id in ["pass", "online", "alerts", "control"] {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "#{id} in {html}"
        );
    }
    let pass = server.state.serving.monitor.latest().expect("a pass ran");
    assert!(pass.report.is_some(), "both windows hold events");
    assert!(html.contains("id=\"windows\"") && html.contains("<section id=\"drift\">"));
    assert!(html.contains("<figure id=\"psi-chart\"><svg"), "{html}");
    assert!(
        html.contains("<td>online</td>"),
        "an online alert listed: {html}"
    );
    // The alert subject names the variant `als<vs>&pop/treatment`, escaped.
    assert!(
        html.contains(&format!("variant={escaped}/treatment}}")),
        "{html}"
    );
    assert!(!html.contains("als<vs>"));
    assert!(
        !html.contains("action=\"/dashboard/monitoring/run\""),
        "read: no form"
    );
    let passes = server
        .state
        .serving
        .monitor
        .passes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        post_with_cookie(&server, "/dashboard/monitoring/run", &read)
            .await
            .status,
        403
    );
    let html = get_with_cookie(&server, "/dashboard/monitoring", &admin)
        .await
        .text();
    assert!(html.contains("action=\"/dashboard/monitoring/run\""));
    let r = post_with_cookie(&server, "/dashboard/monitoring/run", &admin).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        server
            .state
            .serving
            .monitor
            .passes
            .load(std::sync::atomic::Ordering::Relaxed),
        passes + 1
    );

    // The overview counts them.
    let html = get_with_cookie(&server, "/dashboard", &read).await.text();
    assert!(html.contains("id=\"running-experiments\""));
    assert!(html.contains("recent alerts</a><b>") && !html.contains("recent alerts</a><b>0</b>"));
}

#[tokio::test]
async fn pages_say_when_there_is_nothing_yet() {
    let server = start(Options::default().tweak(|c| c.monitoring.enabled = false)).await;
    let html = server.client().get("/dashboard/experiments").await.text();
    assert!(html.contains("No experiment yet"));
    let html = server.client().get("/dashboard/monitoring").await.text();
    assert!(html.contains("Monitoring is disabled"));
    assert!(html.contains("No alert."));
    let r = post_with_cookie(&server, "/dashboard/monitoring/run", "").await;
    assert_eq!(r.status, 409);
}
