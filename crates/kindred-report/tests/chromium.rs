//! The report renders in a real browser: headless Chromium loads the page, the page's render
//! check measures every chart's drawn marks, and the screenshot shows more than a blank page.
//! Skips (with a message) when no browser is installed, except under CI, where it fails.

mod common;

use std::path::Path;

fn run_browser(browser: &Path, profile: &Path, args: &[String]) -> String {
    kindred_testkit::run_chromium(browser, profile, args)
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(browser) = kindred_testkit::chromium() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kindred-report-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, kindred_report::render_html(&[common::full_source()])).unwrap();
    let url = format!("file://{}", page.display());

    let dom = run_browser(
        &browser,
        &dir.join("profile-dom"),
        &["--dump-dom".into(), url.clone()],
    );
    let check = dom
        .split("<pre id=\"render-check\" hidden=\"\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no render check in the dumped DOM:\n{dom}"));
    let rows: Vec<Vec<&str>> = check.lines().map(|l| l.split('\t').collect()).collect();
    let titles: Vec<String> = rows
        .iter()
        .map(|r| {
            r[0].replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
        })
        .collect();
    assert_eq!(titles, common::FULL_TITLES, "charts in the rendered page");
    for row in &rows {
        let (width, height, shapes): (f64, f64, usize) = (
            row[1].parse().unwrap(),
            row[2].parse().unwrap(),
            row[3].parse().unwrap(),
        );
        assert!(
            width > 50.0 && height > 20.0 && shapes > 0,
            "chart drew nothing: {row:?}"
        );
    }

    let shot = dir.join("shot.png");
    run_browser(
        &browser,
        &dir.join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,4000".into(),
            url,
        ],
    );
    let (inked, colours) = kindred_testkit::screenshot_ink(&shot);
    assert!(
        inked > 1.0 / 50.0,
        "screenshot nearly blank: {inked:.4} of the pixels inked"
    );
    // Text antialiasing alone gives greys; the series palette adds many hues.
    assert!(colours > 50, "only {colours} distinct colours");
    std::fs::remove_dir_all(&dir).ok();
}
