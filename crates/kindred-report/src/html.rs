//! Page assembly: one self-contained HTML document (inline style, inline SVG; no external CSS,
//! scripts, fonts or images) from the report's sections.
//!
//! The page carries one small inline script whose only job is the automated render check: it
//! measures each chart's drawn marks with `getBBox()` and writes the sizes into the hidden
//! `<pre id="render-check">`, which a headless browser's `--dump-dom` shows. The page reads the
//! same without it.

use std::fmt::Write;

use crate::sections::build_sections;
use crate::Source;
use kindred_chart::escape;

const STYLE: &str = r#"
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #222; background: #fff; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 26px; margin-bottom: 4px; }
h2 { font-size: 20px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; }
td:first-child, th:first-child, td.label { text-align: left; }
.scroll { overflow-x: auto; }
.std { color: #555; }
.ci { color: #777; font-size: 12px; }
.missing { color: #aaa; text-align: center; }
.na { color: #777; font-style: italic; }
.better { color: #2e7d32; } .worse { color: #c62828; } .same { color: #555; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
svg.chart { border: 1px solid #eee; max-width: 100%; height: auto; }
nav a { margin-right: 12px; }
code { background: #f4f4f4; padding: 0 3px; }
"#;

/// Measures each chart's marks; see the module doc. Silent on any failure (the page stands alone).
const RENDER_CHECK: &str = r#"
(function () {
  try {
    var lines = [];
    document.querySelectorAll('svg.chart').forEach(function (svg) {
      var marks = svg.querySelector('g.marks');
      var box = marks ? marks.getBBox() : { width: 0, height: 0 };
      var shapes = marks ? marks.querySelectorAll('path, rect, circle').length : 0;
      lines.push([svg.getAttribute('data-title'), Math.round(box.width), Math.round(box.height), shapes].join('\t'));
    });
    document.getElementById('render-check').textContent = lines.join('\n');
  } catch (e) {}
})();
"#;

/// The whole report page.
pub fn render_html(sources: &[Source]) -> String {
    let sections = build_sections(sources);
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let names: Vec<String> = sources.iter().map(|s| s.stem()).collect();
    let _ = write!(
        page,
        "<title>Kindred report: {}</title><style>{STYLE}</style></head><body>",
        escape(&names.join(", "))
    );
    page.push_str("<h1>Kindred evaluation report</h1>");
    let _ = write!(
        page,
        "<p>From {} result file{}: {}.</p>",
        sources.len(),
        if sources.len() == 1 { "" } else { "s" },
        escape(&names.join(", "))
    );
    page.push_str("<nav>");
    for s in &sections {
        let _ = write!(page, "<a href=\"#{}\">{}</a>", s.id, escape(s.heading));
    }
    page.push_str("</nav>");
    for s in &sections {
        let _ = write!(
            page,
            "<section id=\"{}\"><h2>{}</h2>{}",
            s.id,
            escape(s.heading),
            s.body
        );
        if !s.charts.is_empty() {
            page.push_str("<div class=\"charts\">");
            for chart in &s.charts {
                page.push_str(&chart.svg);
            }
            page.push_str("</div>");
        }
        page.push_str("</section>");
    }
    page.push_str("<pre id=\"render-check\" hidden></pre>");
    let _ = writeln!(page, "<script>{RENDER_CHECK}</script></body></html>");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained() {
        let report: kindred_eval::EvalReport = serde_json::from_value(serde_json::json!({
            "dataset": {"name": "d<1>", "interactions": 1, "users": 1, "items": 1,
                        "protocol_interactions": 1},
            "protocol": "kfold:5", "k": 10, "results": [], "versions": {}
        }))
        .unwrap();
        let page = render_html(&[Source {
            path: "/tmp/a&b.json".into(),
            report,
        }]);
        assert!(page.starts_with("<!DOCTYPE html>"));
        for external in ["src=", "href=\"http", "<link", "@import", "url("] {
            assert!(!page.contains(external), "{external}");
        }
        assert!(page.contains("a&amp;b"));
        assert!(page.contains("d&lt;1&gt;"));
        assert!(page.contains("Not available in these results: the files hold no model results."));
    }
}
