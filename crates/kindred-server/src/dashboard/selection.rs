//! The models page's selection section: for each version trained from an `auto` spec, what it
//! chose, on what validation rows, and every family it considered (tried or skipped, and why),
//! read from the `selection` object of the version's metrics.

use kindred_store::ModelRecord;
use serde_json::Value;

use super::page::{cell, escape, num, table};

/// Versions whose selection is drawn in full (newest first; older ones are in the JSON).
const MAX_SELECTIONS: usize = 3;

/// The section, or a note that no version was chosen by `auto`.
pub fn selection_section(models: &[ModelRecord]) -> String {
    let mut out = String::from("<section id=\"selection\"><h2>Model selection (auto)</h2>");
    let chosen: Vec<(&ModelRecord, &Value)> = models
        .iter()
        .rev()
        .filter_map(|m| Some((m, m.model.metrics.get("selection")?)))
        .take(MAX_SELECTIONS)
        .collect();
    if chosen.is_empty() {
        out.push_str(
            "<p class=\"note\">No version was trained with an <code>auto</code> spec, which \
             chooses and tunes a model on the store's data at each training.</p></section>",
        );
        return out;
    }
    for (record, selection) in chosen {
        let text = |key: &str| selection.get(key).and_then(Value::as_str).unwrap_or("?");
        let number = |key: &str| selection.get(key).and_then(Value::as_f64);
        out.push_str(&format!(
            "<h3><code>{}</code> chose <code>{}</code></h3><p>{} {} on validation <code>{}</code> \
             (carved from the training rows); search {:.1} s of a {:.0} s budget, refit {:.1} s.</p>",
            escape(&record.model.version),
            escape(text("chosen")),
            escape(text("metric")),
            number("chosen_score").map_or("?".to_owned(), |v| format!("{v:.4}")),
            escape(text("validation")),
            number("search_seconds").unwrap_or(0.0),
            number("budget_seconds").unwrap_or(0.0),
            number("refit_seconds").unwrap_or(0.0),
        ));
        let families = selection
            .get("families")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let rows: Vec<Vec<String>> = families
            .iter()
            .map(|f| {
                let s = |key: &str| f.get(key).and_then(Value::as_str).unwrap_or("");
                let n = |key: &str| f.get(key).and_then(Value::as_f64);
                vec![
                    cell(s("family")),
                    cell(s("status")),
                    num(f.get("trials").and_then(Value::as_u64).unwrap_or(0)),
                    num(n("best_score").map_or(String::new(), |v| format!("{v:.4}"))),
                    num(format!("{:.2}", n("seconds").unwrap_or(0.0))),
                    num(format!("{:.2}", n("predicted_seconds").unwrap_or(0.0))),
                    format!("<td><code>{}</code></td>", escape(s("best_spec"))),
                    cell(s("reason")),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "family",
                "status",
                "trials",
                "best score",
                "seconds",
                "predicted s",
                "best spec",
                "why not tried",
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

    fn record(version: &str, metrics: Value) -> ModelRecord {
        ModelRecord {
            model: NewModel {
                version: version.into(),
                algorithm: "itemknn".into(),
                params: json!({}),
                metrics,
                artifact: "/tmp/x".into(),
                created_at: 1_700_000_000,
            },
            live: false,
        }
    }

    #[test]
    fn a_selection_is_shown_with_every_family_and_escaped() {
        let selection = json!({
            "chosen": "itemknn:neighbors=80", "metric": "ndcg@10", "chosen_score": 0.1234,
            "validation": "temporal:0.2", "search_seconds": 12.0, "budget_seconds": 20.0,
            "refit_seconds": 0.5,
            "families": [
                {"family": "itemknn", "status": "tuned", "trials": 7, "best_score": 0.1234,
                 "seconds": 3.0, "predicted_seconds": 0.4, "best_spec": "itemknn:neighbors=80"},
                {"family": "ease", "status": "skipped", "trials": 0, "seconds": 0.0,
                 "predicted_seconds": 90.0, "reason": "<too> slow"}
            ]
        });
        let html = selection_section(&[
            record("plain", json!({"fit_seconds": 1.0})),
            record("auto-1", json!({ "selection": selection })),
        ]);
        assert!(html.contains("<code>auto-1</code> chose <code>itemknn:neighbors=80</code>"));
        assert!(html.contains("ndcg@10 0.1234 on validation <code>temporal:0.2</code>"));
        assert!(html.contains("&lt;too&gt; slow"));
        assert!(!html.contains("plain"));
        let none = selection_section(&[record("plain", json!({}))]);
        assert!(none.contains("No version was trained with an <code>auto</code> spec"));
    }
}
