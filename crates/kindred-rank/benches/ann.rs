//! Criterion: one query, one thread, exact scan vs HNSW, on 100,000 clustered 64-d items with
//! inner product (the size keeps criterion's repetitions reasonable; the 1M one-shot
//! measurement is `ann_1m`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kindred_core::FitContext;
use kindred_rank::retrieval::{ExactIndex, HnswIndex, HnswParams, Metric};

mod support;

fn single_query(c: &mut Criterion) {
    let (n, dim) = (100_000, 64);
    let items = support::vectors("clustered", n, dim, 7, 0);
    let queries = support::vectors("clustered", 256, dim, 7, 1);
    let exact = ExactIndex::new(Metric::InnerProduct, dim, &items).expect("valid matrix");
    let params = HnswParams {
        metric: Metric::InnerProduct,
        ..HnswParams::default()
    };
    let hnsw = HnswIndex::build(params, dim, &items, &FitContext::with_seed(7)).expect("build");
    let mut group = c.benchmark_group("ann_single_query_100k_x64_ip");
    group.sample_size(20);
    let mut next = 0usize;
    group.bench_function("exact", |b| {
        b.iter(|| {
            next = (next + 1) % 256;
            let q = &queries[next * dim..(next + 1) * dim];
            black_box(exact.search(q, 10, |_| false).expect("search"))
        })
    });
    for ef in [32usize, 64, 128, 256] {
        group.bench_with_input(BenchmarkId::new("hnsw", ef), &ef, |b, &ef| {
            b.iter(|| {
                next = (next + 1) % 256;
                let q = &queries[next * dim..(next + 1) * dim];
                black_box(hnsw.search(q, 10, Some(ef), &|_| true).expect("search"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, single_query);
criterion_main!(benches);
