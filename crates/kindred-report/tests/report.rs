//! The report end to end: a results file with every field filled draws every chart; real
//! results of `evaluate` on generated data go through JSON and render without inventing what
//! they lack; PNG output decodes to images that show something.

mod common;

use kindred_core::Protocol;
use kindred_data::synthetic::{generate, SyntheticConfig};
use kindred_eval::{evaluate, EvalOptions};
use kindred_report::{all_charts, load_reports, render_html, Source};

#[test]
fn full_results_draw_every_chart_once() {
    let charts = all_charts(&[common::full_source()]);
    let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, common::FULL_TITLES);
    let page = render_html(&[common::full_source()]);
    assert!(
        !page.contains("Not available in these results"),
        "every section has data"
    );
    // Hostile spec characters never reach the markup unescaped.
    assert!(!page.contains("reg=<0.05>"));
    assert!(page.contains("reg=&lt;0.05&gt;&amp;alpha=&quot;1&quot;"));
    // The reading names the better model and the CI overlap state it can be sure of.
    assert!(page.contains("has the best ndcg@10 (0.2900), ahead of popularity (0.1100)"));
    assert!(page.contains("do not overlap"));
    assert!(page.contains("better</strong>"));
    // auto's choice is shown with the families it skipped and why.
    assert!(page.contains("Model selection (auto)"));
    assert!(page.contains("60000 items exceed the limit of 20000"));
    // One series per fold in the tuning trace (scores and best so far).
    let trace = charts.last().unwrap();
    assert!(trace.svg.contains("fold 1: best so far"));
}

#[test]
fn real_evaluate_output_round_trips_through_json_and_renders() {
    let data = generate(&SyntheticConfig::parse("users=300,items=150,seed=5").unwrap())
        .unwrap()
        .dataset;
    let options = EvalOptions {
        bootstrap: 50,
        curve_k: 20,
        ..EvalOptions::default()
    };
    let report = evaluate(
        &data,
        &Protocol::parse("temporal:0.2,positive>=4").unwrap(),
        &["random".to_owned(), "popularity".to_owned()],
        &options,
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("kindred-report-real-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("eval.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    let sources = load_reports(&[path.clone(), path]).unwrap();
    let page = render_html(&sources);
    // Both files hold the same specs: labels carry the file stem and a counter.
    assert!(page.contains("popularity [eval]"), "labels name the file");
    assert!(page.contains("popularity [eval] #2"));
    let charts = all_charts(&sources);
    let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
    // Segments are always measured; coverage is a ranking metric.
    assert!(titles.contains(&"ndcg@10 by user activity"), "{titles:?}");
    assert!(titles.contains(&"coverage@10"), "{titles:?}");
    // Whatever this build of evaluate leaves empty is said to be missing, not drawn.
    let has = |f: &dyn Fn(&kindred_eval::ModelResult) -> bool| report.results.iter().any(f);
    assert_eq!(has(&|r| !r.curves.is_empty()), titles.contains(&"ndcg@K"));
    assert_eq!(
        has(&|r| !r.learning_curve.is_empty()),
        titles.contains(&"Training loss per epoch")
    );
    assert_eq!(
        has(&|r| r.popularity_bias.is_some()),
        titles.contains(&"Recommended vs actual popularity")
    );
    assert!(page.contains("Not available in these results: no tuning trials"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "png")]
#[test]
fn png_output_decodes_to_drawn_images() {
    let source: Source = common::full_source();
    let charts = all_charts(&[source]);
    let dir = std::env::temp_dir().join(format!("kindred-report-png-{}", std::process::id()));
    let written = match kindred_report::png::write_pngs(&charts[..2], &dir) {
        Ok(w) => w,
        Err(e) if e.to_string().contains("no fonts") => {
            kindred_testkit::skip_test(format!("no PNG check: {e}"));
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(written.len(), 2);
    assert!(written[0].ends_with("01-ndcg-k.png"), "{:?}", written[0]);
    for path in &written {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.width, 1520, "twice the SVG width");
        let pixels = &buf[..info.buffer_size()];
        let channels = info.color_type.samples();
        let inked = pixels
            .chunks(channels)
            .filter(|p| p[..3].iter().any(|&c| c < 200))
            .count();
        let total = pixels.len() / channels;
        assert!(
            inked > total / 100,
            "{path:?}: only {inked} of {total} pixels drawn"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
