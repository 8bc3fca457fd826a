//! The network alone, on the choices that decide throughput: one image per plan
//! run on one thread (what `cambox run` does, one run per worker), batches of 2 and 4 in
//! one run, and two single-image runs at once on the two workers of a 2-core machine.
//! Per-image cost is the time of one iteration divided by the images in it. Run with
//! `cargo bench --bench network`; see docs/performance.md.
//!
//! tract's intra-op threading (its `multithread-mm` feature) is not built into cambox, so
//! it is not measured here: with one worker per core the cores are already busy.
//!
//! `depthwise/...`: tract's ops for a depthwise convolution and the clamp after it against
//! cambox's (`cambox_kernels::depthwise`), on every distinct depthwise shape of
//! EfficientNet-Lite0 (and of the Xception pneumonia model when `data/models/` or
//! `$CAMBOX_SHARED/models/` has it), with the model's own kernels;
//! `efficientnet_lite0/cambox_plan_one_thread` is the whole network as cambox plans it
//! (with all of cambox's kernels).
//!
//! `pointwise/...`: tract's ops for a 1x1 convolution chain (its matrix product with the
//! input packing, bias, clamp and residual add) against cambox's fused op
//! (`cambox_kernels::pointwise`), with the scheme cambox picks, on every distinct chain.
//! `maxpool/...`: tract's max pooling against cambox's (`cambox_kernels::maxpool`). The op
//! benchmarks share their input tensors between iterations (no copy is timed).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use cambox::stage::model::ModelPlan;
use cambox_kernels::depthwise::DepthwiseChain;
use cambox_kernels::isa::Isa;
use cambox_kernels::maxpool;
use cambox_kernels::pointwise::PointwiseChain;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::EvalOp;

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
    let cambox =
        ModelPlan::open(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/models/efficientnet-lite0.onnx"))
            .expect("the bundled EfficientNet-Lite0 loads");
    let p = cambox.tract_plan(0).expect("one size").clone();
    g.throughput(Throughput::Elements(1));
    g.bench_function("efficientnet_lite0/cambox_plan_one_thread", |b| {
        b.iter(|| p.run(tvec!(black_box(input(1)).into())).unwrap())
    });
    g.finish();
    depthwise_ops(c);
    pointwise_ops(c);
    maxpool_ops(c);
}

/// tract's max pooling (a model of the one node, optimised by tract) and cambox's, per
/// max pooling node of the models.
fn maxpool_ops(c: &mut Criterion) {
    let Some(isa) = Isa::detect() else {
        eprintln!("no AVX2/FMA: cambox's max pooling is not used on this CPU");
        return;
    };
    let mut g = c.benchmark_group("maxpool");
    for (name, path) in models() {
        let model = decluttered(&path);
        for node in model.nodes() {
            let Some(ours) = maxpool::for_node(&model, node, isa).unwrap() else { continue };
            let fact = model.outlet_fact(node.inputs[0]).unwrap().clone().without_value();
            let shape = fact.shape.as_concrete().unwrap().to_vec();
            let n: usize = shape.iter().product();
            let x = Tensor::from_shape(&shape, &(0..n).map(|i| (i % 255) as f32 / 127.5 - 1.0).collect::<Vec<_>>())
                .unwrap();
            let mut single = TypedModel::default();
            let source = single.add_source("x", fact).unwrap();
            let out = single.wire_node(&node.name, node.op.clone(), &[source]).unwrap();
            single.select_output_outlets(&out).unwrap();
            let tract = single.into_optimized().unwrap().into_runnable().unwrap();
            let xv = x.into_tvalue();
            let w = ours.window;
            let label = format!("{name}/{}x{}x{}_k{}_s{}", w.channels, w.in_h, w.in_w, w.k_h, w.stride_h);
            g.throughput(Throughput::Elements((w.channels * w.out_h * w.out_w) as u64));
            g.bench_function(format!("{label}/tract"), |b| b.iter(|| tract.run(tvec![black_box(xv.clone())]).unwrap()));
            g.bench_function(format!("{label}/cambox"), |b| {
                b.iter(|| ours.eval_out_of_plan(tvec![black_box(xv.clone())]).unwrap())
            });
        }
    }
    g.finish();
}

/// The two models' files: EfficientNet-Lite0, and the Xception model when present.
fn models() -> Vec<(&'static str, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut models = vec![("efficientnet_lite0", root.join("data/models/efficientnet-lite0.onnx"))];
    let xception = std::iter::once(root.join("data/models/pneumonia_xception.onnx"))
        .chain(std::env::var_os("CAMBOX_SHARED").map(|s| PathBuf::from(s).join("models/pneumonia_xception.onnx")))
        .find(|p| p.is_file());
    models.extend(xception.map(|p| ("xception", p)));
    models
}

/// The model decluttered at the input shape cambox plans.
fn decluttered(path: &std::path::Path) -> TypedModel {
    cambox::stage::model::decluttered(path).expect("the model declutters")
}

/// tract's ops for each distinct 1x1 convolution chain and cambox's fused op.
fn pointwise_ops(c: &mut Criterion) {
    let Some(isa) = Isa::detect().and_then(Isa::avx512) else {
        eprintln!("no AVX-512: cambox's pointwise kernel is not used on this CPU");
        return;
    };
    let mut g = c.benchmark_group("pointwise");
    for (name, path) in models() {
        let model = decluttered(&path);
        let mut seen = std::collections::HashSet::new();
        for id in 0..model.nodes().len() {
            let Some(chain) = PointwiseChain::find(&model, id, isa).unwrap() else { continue };
            let geo = chain.op.geometry;
            if !seen.insert((geo, chain.op.residual)) {
                continue;
            }
            let inputs: Vec<Tensor> = chain
                .inputs
                .iter()
                .map(|&o| {
                    let shape = model.outlet_fact(o).unwrap().shape.as_concrete().unwrap().to_vec();
                    let n: usize = shape.iter().product();
                    Tensor::from_shape(&shape, &(0..n).map(|i| (i % 255) as f32 / 127.5 - 1.0).collect::<Vec<_>>())
                        .unwrap()
                })
                .collect();
            let inputs: Vec<TValue> = inputs.into_iter().map(|t| t.into_tvalue()).collect();
            let values = || inputs.iter().cloned().collect::<TVec<_>>();
            let tract = chain.tract_model(&model).unwrap().into_runnable().unwrap();
            let label = format!(
                "{name}/{}to{}x{}{}_{:?}",
                geo.channels_in,
                geo.channels_out,
                geo.pixels,
                if chain.op.residual { "_residual" } else { "" },
                chain.op.weights.scheme
            );
            g.throughput(Throughput::Elements((geo.channels_in * geo.channels_out * geo.pixels) as u64));
            g.bench_function(format!("{label}/tract"), |b| b.iter(|| tract.run(black_box(values())).unwrap()));
            g.bench_function(format!("{label}/cambox"), |b| {
                b.iter(|| chain.op.eval_out_of_plan(black_box(values())).unwrap())
            });
        }
    }
    g.finish();
}

/// tract's depthwise op and cambox's, per distinct shape of the models.
fn depthwise_ops(c: &mut Criterion) {
    let Some(isa) = Isa::detect() else {
        eprintln!("no AVX2/FMA: cambox's depthwise kernel is not used on this CPU");
        return;
    };
    let mut g = c.benchmark_group("depthwise");
    for (name, path) in models() {
        let model = decluttered(&path);
        let mut seen = std::collections::HashSet::new();
        for id in 0..model.nodes().len() {
            let Some(chain) = DepthwiseChain::find(&model, id, isa).unwrap() else { continue };
            let geo = chain.op.geometry;
            if !seen.insert((geo, chain.op.clamp.1.to_bits())) {
                continue;
            }
            let x_shape = model.outlet_fact(chain.inputs[0]).unwrap().shape.as_concrete().unwrap().to_vec();
            let n: usize = x_shape.iter().product();
            let x = Tensor::from_shape(&x_shape, &(0..n).map(|i| (i % 255) as f32 / 127.5 - 1.0).collect::<Vec<_>>())
                .unwrap();
            let konst = |i: usize| model.outlet_fact(chain.inputs[i]).unwrap().konst.clone().unwrap();
            let (k, bias) = (konst(1), konst(2));
            let (xv, k, bias) = (x.into_tvalue(), k.into_tvalue(), bias.into_tvalue());
            let inputs = || tvec![xv.clone(), k.clone(), bias.clone()];
            let tract = chain.tract_model(&model).unwrap().into_runnable().unwrap();
            let label = format!(
                "{name}/{}x{}x{}_k{}_s{}{}",
                geo.channels,
                geo.in_h,
                geo.in_w,
                geo.k_h,
                geo.stride_h,
                if chain.op.clamp.1.is_finite() { "_relu6" } else { "" }
            );
            g.throughput(Throughput::Elements((geo.channels * geo.out_h * geo.out_w * geo.k_h * geo.k_w) as u64));
            g.bench_function(format!("{label}/tract"), |b| b.iter(|| tract.run(tvec![black_box(xv.clone())]).unwrap()));
            g.bench_function(format!("{label}/cambox"), |b| {
                b.iter(|| chain.op.eval_out_of_plan(black_box(inputs())).unwrap())
            });
        }
    }
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
