//! Where the network's time goes, op by op: the tract plan cambox builds (cut at the
//! feature map, logits as a second output), run on one thread, each node timed as it is
//! evaluated. Prints one row per op kind: its share of the network time, ms per image,
//! the multiply-adds tract's cost model gives it, and GFLOP/s (2 x FMA / time).
//!
//! `cargo run --release --example op_profile -- MODEL.onnx [WxH] [ITERATIONS] [KERNELS]`
//! (`KERNELS` as `[model] kernels`: `cambox`, the default, `tract`, or a comma-separated
//! list; `scripts/bench/run.sh` runs it on both models).

use std::collections::BTreeMap;
use std::time::Instant;

use cambox::stage::model::{KernelChoice, ModelOptions, ModelPlan};
use cambox::stage::preprocess::Normaliser;
use tract_onnx::prelude::*;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = std::path::PathBuf::from(args.first().expect("MODEL.onnx"));
    let size = args.get(1).filter(|s| !s.is_empty() && *s != "-").map(|s| {
        let (w, h) = s.split_once('x').expect("WxH");
        [w.parse().unwrap(), h.parse().unwrap()]
    });
    let iterations: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(20);
    let kernels = match args.get(3) {
        Some(k) => KernelChoice::parse(k).map_err(anyhow::Error::msg)?,
        None => KernelChoice::default(),
    };
    let o = ModelOptions { path: path.clone(), input_size: size, kernels, ..ModelOptions::default() };
    let plan = ModelPlan::load(&o, &Normaliser::identity())?;
    let runnable = plan.tract_plan(0).expect("one size").clone();
    let model = runnable.model();
    let input = plan.input.clone();
    let shape = match input.layout {
        cambox::stage::model::Layout::Nchw => vec![1, input.channels, input.height, input.width],
        cambox::stage::model::Layout::Nhwc => vec![1, input.height, input.width, input.channels],
    };
    let x = Tensor::from_shape(
        &shape,
        &(0..shape.iter().product::<usize>()).map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0).collect::<Vec<_>>(),
    )?;

    // FMA count per node from tract's cost model.
    let mut fma: BTreeMap<usize, f64> = BTreeMap::new();
    for node in model.nodes() {
        let facts = model.node_input_facts(node.id)?;
        if let Ok(costs) = node.op.cost(&facts) {
            let n: f64 = costs
                .iter()
                .filter(|(c, _)| matches!(c, tract_onnx::tract_core::ops::Cost::FMA(_)))
                .filter_map(|(_, d)| d.to_i64().ok())
                .map(|v| v as f64)
                .sum();
            fma.insert(node.id, n);
        }
    }
    if std::env::var_os("DUMP").is_some() {
        dump(model);
    }
    let mut state = tract_onnx::tract_core::plan::SimpleState::new(&runnable)?;
    // Warm up.
    for _ in 0..3 {
        state.run(tvec!(x.clone().into()))?;
    }
    let mut per_node: BTreeMap<usize, f64> = BTreeMap::new();
    let t0 = Instant::now();
    for _ in 0..iterations {
        state.run_plan_with_eval(tvec!(x.clone().into()), |ctx, st, node, inputs| {
            let t = Instant::now();
            let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
            *per_node.entry(node.id).or_default() += t.elapsed().as_secs_f64();
            r
        })?;
    }
    if std::env::var_os("PER_NODE").is_some() {
        for (id, secs) in &per_node {
            let node = model.node(*id);
            let name = node.op().name();
            if name.contains("epth") || name.contains("MatMul") || name.contains("Pointwise") {
                let facts = model.node_input_facts(*id)?;
                let ms = secs / iterations as f64 * 1e3;
                let gflops = fma.get(id).map(|f| 2.0 * f / (ms * 1e-3) / 1e9).unwrap_or(0.0);
                eprintln!(
                    "{ms:8.3} ms {gflops:6.1} GFLOP/s {name} {:?} -> {:?} {}",
                    facts.iter().map(|f| f.shape.to_vec()).collect::<Vec<_>>(),
                    node.outputs[0].fact.shape,
                    node.op().info()?.join("; ")
                );
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64() / iterations as f64;
    let mut by_op: BTreeMap<String, (usize, f64, f64)> = BTreeMap::new();
    for (id, secs) in &per_node {
        let node = model.node(*id);
        let e = by_op.entry(node.op().name().to_string()).or_default();
        e.0 += 1;
        e.1 += secs / iterations as f64;
        e.2 += fma.get(id).copied().unwrap_or(0.0);
    }
    let total: f64 = by_op.values().map(|v| v.1).sum();
    let mut rows: Vec<_> = by_op.into_iter().collect();
    rows.sort_by(|a, b| b.1 .1.partial_cmp(&a.1 .1).unwrap());
    println!(
        "model {} at {}x{}, one thread, {iterations} runs: {:.2} ms per run ({:.2} ms inside ops)",
        path.display(),
        input.width,
        input.height,
        wall * 1e3,
        total * 1e3
    );
    println!("| op | nodes | ms / image | share | GFMA | GFLOP/s |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (op, (n, secs, f)) in rows {
        let gflops = if f > 0.0 { format!("{:.1}", 2.0 * f / secs / 1e9) } else { "-".into() };
        println!("| {op} | {n} | {:.2} | {:.1} % | {:.3} | {gflops} |", secs * 1e3, 100.0 * secs / total, f / 1e9);
    }
    Ok(())
}
#[allow(dead_code)]
fn dump(model: &TypedModel) {
    for node in model.nodes() {
        if node.op().name() == "DepthWiseConv" || node.op().name() == "OptMatMul" {
            let facts = model.node_input_facts(node.id).unwrap();
            eprintln!(
                "{} {} in {:?} out {:?}",
                node.name,
                node.op().name(),
                facts.iter().map(|f| f.shape.to_vec()).collect::<Vec<_>>(),
                node.outputs[0].fact.shape.to_vec()
            );
        }
    }
}
