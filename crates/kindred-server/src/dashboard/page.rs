//! The page shell every dashboard page shares (head, inline stylesheet, navigation) and small
//! HTML helpers. Every value from data goes through [`escape`]; pages need no script and load
//! nothing from outside the page.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
pub use kindred_chart::escape;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}\
header{background:#1d2733;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}\
header a{color:#cfe0ff;text-decoration:none}header a.on{color:#fff;font-weight:600}\
header form{margin-left:auto}main{padding:1rem 1.2rem;max-width:1200px}\
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:.8rem 1rem;margin:0 0 1rem}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin:.2rem 0 .6rem}\
table{border-collapse:collapse;font-size:.9rem}td,th{border-bottom:1px solid #e5e8ec;padding:.25rem .6rem;text-align:left;vertical-align:top}\
td.num{text-align:right;font-variant-numeric:tabular-nums}.live{color:#1a7f37;font-weight:600}\
.note{color:#5b6673}.error{color:#b42318;font-weight:600}code{font-size:.85rem}\
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #dde2e8;border-radius:6px;padding:.5rem .8rem;min-width:8rem}\
.card b{display:block;font-size:1.3rem}svg{max-width:100%;height:auto}";

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Models,
    Users,
    Quality,
    Experiments,
    Exploration,
    Monitoring,
    None,
}

/// A whole page: `body` is HTML already escaped by the caller.
pub fn render(title: &str, nav: Nav, body: &str) -> String {
    let link = |href: &str, label: &str, this: Nav| {
        let class = if this == nav { " class=\"on\"" } else { "" };
        format!("<a href=\"{href}\"{class}>{label}</a>")
    };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} · Kindred</title><style>{STYLE}</style></head><body>\
         <header><strong>Kindred</strong>{}{}{}{}{}{}{}\
         <form method=\"post\" action=\"/dashboard/logout\"><button type=\"submit\">Log out</button></form>\
         </header><main><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        link("/dashboard", "Overview", Nav::Overview),
        link("/dashboard/models", "Models", Nav::Models),
        link("/dashboard/users", "Users", Nav::Users),
        link("/dashboard/quality", "Data quality", Nav::Quality),
        link("/dashboard/experiments", "Experiments", Nav::Experiments),
        link("/dashboard/exploration", "Exploration", Nav::Exploration),
        link("/dashboard/monitoring", "Monitoring", Nav::Monitoring),
        escape(title),
    )
}

/// A page answered with `status`.
pub fn respond(status: StatusCode, title: &str, nav: Nav, body: &str) -> Response {
    (status, Html(render(title, nav, body))).into_response()
}

/// An error page: the message, escaped.
pub fn error(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    respond(
        status,
        title,
        Nav::None,
        &format!(
            "<section><p class=\"error\">{}</p></section>",
            escape(message)
        ),
    )
}

/// A table with a header row; cells are HTML already escaped by the caller.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        out.push_str(&format!("<th>{}</th>", escape(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(cell);
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A text cell.
pub fn cell(text: &str) -> String {
    format!("<td>{}</td>", escape(text))
}

/// A right-aligned number cell.
pub fn num(text: impl std::fmt::Display) -> String {
    format!("<td class=\"num\">{}</td>", escape(&text.to_string()))
}

/// Percent-encodes a query value.
pub fn url_value(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// (year, month, day) of a day counted from 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// `civil_from_days`), so dates print without a date crate.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` of a day number.
pub fn date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM UTC` of Unix seconds.
pub fn date_time(seconds: i64) -> String {
    let secs = seconds.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02} UTC",
        date(seconds.div_euclid(86_400)),
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_hand_computed_days() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(-1), "1969-12-31");
        // 2000-03-01: 30 years of 365 days + 7 leap days (72..96) + Jan 31 + Feb 29 = 11_017.
        assert_eq!(date(11_017), "2000-03-01");
        assert_eq!(date(11_016), "2000-02-29");
        // 1_700_000_000 s = 19_675 days + 80_000 s (22:13:20).
        assert_eq!(date_time(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn values_are_escaped_in_cells_titles_and_urls() {
        assert_eq!(cell("<b>&\"'"), "<td>&lt;b&gt;&amp;&quot;&#39;</td>");
        let page = render("<script>x</script>", Nav::Models, "");
        assert!(page.contains("<title>&lt;script&gt;x&lt;/script&gt; · Kindred</title>"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("<a href=\"/dashboard/models\" class=\"on\">Models</a>"));
        assert_eq!(url_value("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn error_pages_escape_the_message() {
        let page = render("x", Nav::None, "");
        assert!(page.contains("action=\"/dashboard/logout\""));
        let r = error(StatusCode::NOT_FOUND, "no user <x>");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
