//! The network alone, on the choices the throughput issue asks about: one image per plan
//! run on one thread (what `cambox run` does, one run per worker), batches of 2 and 4 in
//! one run, and two single-image runs at once on the two workers of a 2-core machine.
//! Per-image cost is the time of one iteration divided by the images in it. Run with
//! `cargo bench --bench network`; see README, Performance.
//!
//! tract's intra-op threading (its `multithread-mm` feature) is not built into cambox, so
//! it is not measured here: with one worker per core the cores are already busy.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tract_onnx::prelude::*;

fn plan(batch: usize) -> Arc<TypedRunnableModel> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/models/efficientnet-lite0.onnx");
    tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.with_input_fact(0, f32::fact([batch, 3, 224, 224]).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("the bundled EfficientNet-Lite0 loads")
}

fn input(batch: usize) -> Tensor {
    tract_ndarray::Array4::from_shape_fn((batch, 3, 224, 224), |(n, c, y, x)| {
        ((x * 7 + y * 13 + c * 29 + n * 31) % 255) as f32 / 127.5 - 1.0
    })
    .into_tensor()
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("network");
    for batch in [1, 2, 4] {
        let p = plan(batch);
        let x = input(batch);
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("efficientnet_lite0/batch{batch}_one_thread"), |b| {
            b.iter(|| p.run(tvec!(black_box(x.clone()).into())).unwrap())
        });
    }
    let p = plan(1);
    let x = input(1);
    g.throughput(Throughput::Elements(2));
    g.bench_function("efficientnet_lite0/batch1_two_workers", |b| {
        b.iter(|| {
            rayon::join(
                || p.run(tvec!(black_box(x.clone()).into())).unwrap(),
                || p.run(tvec!(black_box(x.clone()).into())).unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = network;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(5));
    targets = benches
}
criterion_main!(network);
