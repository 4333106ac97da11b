//! The dashboard pages render in headless Chromium from a running test server: the dumped DOM
//! holds each page's key elements and the screenshot shows more than a blank page (the
//! experiments and monitoring pages over a fixture with a running experiment and an alert).
//! The browser may resolve no host but the local server. Skips (with a message) when no browser is
//! installed, except under CI, where it fails.

mod common;

use std::path::{Path, PathBuf};

/// Runs the browser on a blocking thread (the server runs on this test's runtime), resolving
/// no host but the local server.
async fn run_browser(browser: PathBuf, profile: PathBuf, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".to_owned()];
        all.extend(args);
        kindred_testkit::run_chromium(&browser, &profile, &all)
    })
    .await
    .expect("browser thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_pages_render_in_headless_chromium() {
    let Some(browser) = kindred_testkit::chromium() else {
        return;
    };
    // No keys: the loopback dev setup, where pages are open (a browser without JS cannot log in
    // from a command line); the login flow is tested over HTTP in tests/dashboard.rs.
    let server = common::start(common::Options::default()).await;
    let user = server.data.active_users()[0].clone();
    let version = server.version.clone().unwrap();
    // Two retrains that report their loss: learning curves and a control chart on the models page.
    for seed in [11, 12] {
        server
            .state
            .serving
            .lifecycle
            .train(
                &kindred_serving::TrainSpec {
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
    let dir = tempfile::tempdir().unwrap();
    let pages: Vec<(&str, String, Vec<String>)> = vec![
        (
            "overview",
            "/dashboard".into(),
            vec![
                "id=\"store\"".into(),
                "id=\"feedback-per-day\"".into(),
                "<svg".into(),
                version.clone(),
            ],
        ),
        (
            "models",
            "/dashboard/models".into(),
            vec![
                "id=\"versions\"".into(),
                format!("<code>{version}</code>"),
                "action=\"/dashboard/models/rollback\"".into(),
                "id=\"offline-metrics\"".into(),
                "class=\"curve\"><svg".into(),
                "id=\"control-0\"".into(),
            ],
        ),
        (
            "quality",
            "/dashboard/quality".into(),
            vec![
                "id=\"q-events\"".into(),
                "id=\"quality-per-day\"".into(),
                "id=\"event-types\"".into(),
                "<svg".into(),
            ],
        ),
        (
            "users",
            format!("/dashboard/users?user={user}"),
            vec![
                "id=\"list\"".into(),
                "id=\"similar\"".into(),
                "id=\"feedback\"".into(),
            ],
        ),
    ];
    check_pages(&browser, dir.path(), server.addr, pages).await;
}

/// Renders each page (name, path, expected DOM substrings) in the browser: the dumped DOM holds
/// the expected strings, and the screenshot is neither blank nor nearly one colour.
async fn check_pages(
    browser: &Path,
    dir: &Path,
    addr: std::net::SocketAddr,
    pages: Vec<(&str, String, Vec<String>)>,
) {
    let browser = browser.to_path_buf();
    for (name, path, expected) in pages {
        let url = format!("http://{addr}{path}");
        let dom = run_browser(
            browser.clone(),
            dir.join(format!("profile-dom-{name}")),
            vec!["--dump-dom".into(), url.clone()],
        )
        .await;
        for needle in &expected {
            assert!(
                dom.contains(needle.as_str()),
                "{name}: `{needle}` not in the DOM:\n{dom}"
            );
        }
        let shot = dir.join(format!("{name}.png"));
        run_browser(
            browser.clone(),
            dir.join(format!("profile-shot-{name}")),
            vec![
                format!("--screenshot={}", shot.display()),
                "--window-size=1280,1600".into(),
                url,
            ],
        )
        .await;
        // KINDRED_SCREENSHOTS=DIR keeps the screenshots for a person to look at.
        if let Some(keep) = std::env::var_os("KINDRED_SCREENSHOTS") {
            std::fs::create_dir_all(&keep).ok();
            std::fs::copy(
                &shot,
                Path::new(&keep).join(format!("dashboard-{name}.png")),
            )
            .ok();
        }
        let (inked, colours) = kindred_testkit::screenshot_ink(&shot);
        assert!(
            inked > 0.02,
            "{name}: screenshot nearly blank ({inked:.4} inked)"
        );
        assert!(colours > 20, "{name}: only {colours} distinct colours");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_and_monitoring_pages_render_in_headless_chromium() {
    let Some(browser) = kindred_testkit::chromium() else {
        return;
    };
    let server = common::experiment_fixture(common::Options::default(), None).await;
    let dir = tempfile::tempdir().unwrap();
    let escaped = "als&lt;vs&gt;&amp;pop";
    let pages = vec![
        (
            "experiments",
            "/dashboard/experiments".to_owned(),
            vec![
                "id=\"experiments\"".to_owned(),
                format!("id=\"experiment-{escaped}\""),
                "class=\"allocation\"".into(),
                "/stop\"".into(),
            ],
        ),
        (
            "experiment",
            format!("/dashboard/experiments/{}", common::DASH_EXPERIMENT_PATH),
            vec![
                "id=\"verdict\"".into(),
                "id=\"srm\"".into(),
                "id=\"lift-chart\"".into(),
                "id=\"variants\"".into(),
                "<svg".into(),
            ],
        ),
        (
            "monitoring",
            "/dashboard/monitoring".to_owned(),
            vec![
                "id=\"pass\"".into(),
                "id=\"online\"".into(),
                "id=\"alerts\"".into(),
                "id=\"psi-chart\"".into(),
                "<td>online</td>".into(),
                "action=\"/dashboard/monitoring/run\"".into(),
            ],
        ),
    ];
    check_pages(&browser, dir.path(), server.addr, pages).await;
}
