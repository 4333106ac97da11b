//! The models page's quality-gate section: for each retrain the server judged before making it
//! live, whether it went live, the metric, the live version it was compared with and both values
//! on that version's holdout, and the reason (read from the version's `metrics.gate`).

use kindred_serving::lifecycle::gate::recorded_verdict;
use kindred_store::ModelRecord;

use super::page::{cell, escape, table};

/// Gated versions listed (newest first).
const MAX_ROWS: usize = 20;

/// The section, or a note that no retrain was gated yet.
pub fn gate_section(models: &[ModelRecord]) -> String {
    let mut out = String::from("<section id=\"quality-gate\"><h2>Quality gate</h2>");
    let rows: Vec<Vec<String>> = models
        .iter()
        .rev()
        .filter_map(|m| Some((m, recorded_verdict(m)?)))
        .take(MAX_ROWS)
        .map(|(m, v)| {
            vec![
                format!("<td><code>{}</code></td>", escape(&m.model.version)),
                if v.passed {
                    "<td class=\"live\">passed</td>".to_owned()
                } else {
                    "<td class=\"error\">kept inactive</td>".to_owned()
                },
                cell(&v.metric),
                format!("<td><code>{}</code></td>", escape(&v.live_version)),
                format!("<td class=\"num\">{:.4}</td>", v.live),
                v.candidate.map_or_else(
                    || "<td class=\"num\">-</td>".to_owned(),
                    |c| format!("<td class=\"num\">{c:.4}</td>"),
                ),
                cell(&v.reason),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str(
            "<p class=\"note\">No retrain was gated yet: a retrain the server makes live is \
             compared with the live version on that version's holdout (<code>[training.gate]</code>).</p>",
        );
    } else {
        out.push_str(&table(
            &[
                "version",
                "gate",
                "metric",
                "compared with",
                "live",
                "retrain",
                "reason",
            ],
            &rows,
        ));
    }
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_store::NewModel;
    use serde_json::json;

    #[test]
    fn a_kept_inactive_retrain_shows_both_values_and_the_reason() {
        let record = ModelRecord {
            model: NewModel {
                version: "als-2".into(),
                algorithm: "als".into(),
                params: json!({}),
                metrics: json!({"gate": {
                    "passed": false, "metric": "ndcg@10", "live_version": "als-1",
                    "live": 0.25, "candidate": 0.01, "tolerance": 0.05,
                    "reason": "ndcg@10 0.0100 is more than 5% below <0.2500>"
                }}),
                artifact: "/x".into(),
                created_at: 0,
            },
            live: false,
        };
        let html = gate_section(&[record]);
        assert!(
            html.contains("kept inactive") && html.contains("0.2500") && html.contains("0.0100")
        );
        assert!(
            html.contains("&lt;0.2500&gt;"),
            "the reason is escaped: {html}"
        );
        assert!(gate_section(&[]).contains("No retrain was gated yet"));
    }
}
