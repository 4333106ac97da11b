//! all-MiniLM-L6-v2, read from the directory `KINDRED_ENCODER_DIR` names, against the vectors
//! sentence-transformers gives the same sentences (tests/golden/, made by
//! bench/encoder/golden.sh): the same token ids, and cosine >= 0.999 for every sentence.

use std::sync::atomic::{AtomicU64, Ordering};

use kindred_core::{CancelFlag, Error, NoProgress, Progress};
use kindred_neural::SentenceEncoder;
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    max_seq_length: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    vectors: Vec<Vec<f32>>,
}

fn golden() -> Golden {
    let text = include_str!("golden/all-minilm-l6-v2.json");
    serde_json::from_str(text).expect("golden file parses")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn encoder() -> Option<SentenceEncoder> {
    let dir = kindred_testkit::encoder_dir()?;
    Some(SentenceEncoder::load(&dir).expect("the model loads"))
}

#[test]
fn vectors_match_sentence_transformers() {
    let Some(encoder) = encoder() else { return };
    let golden = golden();
    assert_eq!(encoder.dimension(), 384);
    assert_eq!(encoder.max_tokens(), golden.max_seq_length);
    for (sentence, ids) in golden.sentences.iter().zip(&golden.token_ids) {
        assert_eq!(
            &encoder.token_ids(sentence).expect("tokenizes"),
            ids,
            "token ids of {sentence:?}"
        );
    }
    let texts: Vec<&str> = golden.sentences.iter().map(String::as_str).collect();
    let vectors = encoder
        .encode(&texts, &NoProgress, &CancelFlag::new())
        .expect("encodes");
    assert_eq!(vectors.len(), texts.len());
    for ((sentence, ours), theirs) in texts.iter().zip(&vectors).zip(&golden.vectors) {
        let similarity = cosine(ours, theirs);
        assert!(similarity >= 0.999, "cosine {similarity} for {sentence:?}");
        let norm: f64 = ours
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit length, got {norm}");
    }
}

#[test]
fn a_text_gets_the_same_vector_alone_or_in_a_batch() {
    let Some(encoder) = encoder() else { return };
    let golden = golden();
    let texts: Vec<&str> = golden.sentences.iter().map(String::as_str).collect();
    let batch = encoder
        .encode(&texts, &NoProgress, &CancelFlag::new())
        .expect("encodes");
    for (text, in_batch) in texts.iter().zip(&batch) {
        let alone = encoder.encode_one(text).expect("encodes");
        assert!(cosine(&alone, in_batch) > 0.99999, "{text:?}");
    }
}

#[derive(Default)]
struct Count {
    total: AtomicU64,
    done: AtomicU64,
}

impl Progress for Count {
    fn begin(&self, _task: &str, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

#[test]
fn progress_counts_texts_and_cancel_stops() {
    let Some(encoder) = encoder() else { return };
    let texts: Vec<String> = (0..70).map(|i| format!("item number {i}")).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let count = Count::default();
    encoder
        .encode(&texts, &count, &CancelFlag::new())
        .expect("encodes");
    assert_eq!(count.total.load(Ordering::Relaxed), 70);
    assert_eq!(count.done.load(Ordering::Relaxed), 70);
    let cancel = CancelFlag::new();
    cancel.cancel();
    assert!(matches!(
        encoder.encode(&texts, &NoProgress, &cancel),
        Err(Error::Cancelled)
    ));
}
