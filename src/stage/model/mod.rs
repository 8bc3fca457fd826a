//! Stage "infer": the classifier, cut at its feature map, ready to run on many threads.
//!
//! [`ModelPlan::load`] reads the ONNX file, finds the cut ([`surgery`]), fixes the input
//! shape, builds one optimised tract plan that outputs the feature map F and the network's
//! own logits, and proves the cut right on a probe input before any image is touched. The
//! plan is immutable and shared by every worker. Which map methods a head allows is not
//! decided here but by the map stage ([`crate::stage::maps::MapMethod::applies`]).

pub mod external;
mod features;
pub mod graph;
pub mod head;
mod normalise;
pub mod retype;
pub mod surgery;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cambox_kernels::{Kernel, KernelChoice, KernelReport};
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
pub use crate::stage::input_spec::{InputSpec, Layout};
use crate::stage::preprocess::Normaliser;
pub use features::FeatureMap;
use graph::OnnxGraph;
pub use head::{HeadKind, HeadProgram, LinearHead};
pub use surgery::{FeatureCut, FinalOp, Head};

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn no_final_op() -> FinalOp {
    FinalOp::None
}

/// Relative tolerance of the start-up proof that the cut is right: the logits recomputed
/// from the feature map must equal the full model's logits within this fraction of the
/// largest logit magnitude (floored at 1, so near-zero logits are compared absolutely).
pub const CUT_CHECK_REL_TOL: f32 = 1e-4;

/// `[model] layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LayoutChoice {
    #[default]
    Auto,
    Nchw,
    Nhwc,
}

/// `[model] activation`: how the logits become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ActivationChoice {
    /// As the graph says: a final Sigmoid means per-class sigmoids (multi-label), anything
    /// else a softmax over the classes.
    #[default]
    Auto,
    Softmax,
    /// Per-class sigmoids: for multi-label models exported as raw logits (trained with
    /// BCE-with-logits).
    Sigmoid,
}

impl ActivationChoice {
    fn is_auto(&self) -> bool {
        *self == ActivationChoice::Auto
    }
}

/// `[model]`: the classifier and how to read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelOptions {
    /// The ONNX classifier.
    pub path: PathBuf,
    /// Class names, one per line (line n = class n - 1). Optional.
    pub labels: Option<PathBuf>,
    /// Input layout; `auto` reads it from the input shape (channels of 1 or 3).
    pub layout: LayoutChoice,
    /// Network input size `[width, height]`: needed when the model leaves it symbolic,
    /// and allowed to differ from a size the file fixes (proved at start-up, see
    /// [`retype`]).
    pub input_size: Option<[usize; 2]>,
    /// Name of the feature tensor to cut at, overriding the automatic choice
    /// (the input of the last global pooling).
    pub feature: Option<String>,
    /// Softmax or per-class sigmoid probabilities; written only when not `auto`, so
    /// configurations from before it existed keep their fingerprint.
    #[serde(skip_serializing_if = "ActivationChoice::is_auto")]
    pub activation: ActivationChoice,
    /// Which of cambox's kernels replace tract's ops (`cambox`, `tract`, or a list);
    /// written only when not the default, so configurations from before it existed keep
    /// their fingerprint.
    #[serde(skip_serializing_if = "KernelChoice::is_default")]
    pub kernels: KernelChoice,
}

/// What `run.json` and `inspect` report about the cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutReport {
    pub feature_tensor: String,
    pub feature_shape: Vec<usize>,
    pub feature_layout: Layout,
    pub pooling_node: String,
    pub pooling_op: String,
    pub head: String,
    pub head_ops: Vec<String>,
    pub logits_tensor: String,
    pub output_is_softmax: bool,
    /// What the model applies to its logits (`none`, `softmax`, `sigmoid`).
    #[serde(default = "no_final_op")]
    pub output_activation: FinalOp,
    pub num_classes: usize,
    /// Largest |logit(cut) - logit(full)| on the start-up probe, relative.
    pub probe_rel_diff: f32,
    /// The input size the file declares, when the run re-typed the input to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retyped_from: Option<[usize; 2]>,
    /// Convolutions and poolings whose TensorFlow "same" padding, baked for the declared
    /// size by tf2onnx, is recomputed at each size ([`retype::tf_same_padding`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub same_padding: usize,
    /// The other input sizes planned and proved (`[cam] scales`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_sizes: Vec<SizeProof>,
    /// The kernels that replaced tract's ops in the plan of the first size.
    #[serde(default)]
    pub kernels: KernelReport,
}

/// The start-up proof at one more input size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeProof {
    /// `[width, height]`.
    pub input_size: [usize; 2],
    pub feature_shape: Vec<usize>,
    pub probe_rel_diff: f32,
}

/// The loaded, cut, verified model.
pub struct ModelPlan {
    pub input: InputSpec,
    pub cut: FeatureCut,
    /// What follows the pooling, resolved on the feature map's channels.
    pub head: Head,
    pub report: CutReport,
    /// One tract plan per input size (the first is `input`'s), each outputting the
    /// feature map F and the network's own logits.
    plans: Vec<SizedPlan>,
    /// The head as cambox runs and differentiates it, when it can.
    pub program: Option<HeadProgram>,
    /// The files beside the model that hold its weights (ONNX external data).
    pub data_files: Vec<PathBuf>,
}

/// The plan of one input size.
struct SizedPlan {
    /// `[width, height]`.
    size: [usize; 2],
    plan: Arc<TypedRunnableModel>,
}

/// Output of one forward pass.
pub struct Inference {
    pub features: FeatureMap,
    /// The network's own logits (its head run by tract on the same F).
    pub logits: Vec<f32>,
}

impl ModelPlan {
    /// Loads a model file with every `[model]` option at its default, probing it with a
    /// plain [0, 1] image (no mean or std).
    pub fn open(path: &Path) -> Result<ModelPlan> {
        ModelPlan::load(&ModelOptions { path: path.to_path_buf(), ..ModelOptions::default() }, &Normaliser::identity())
    }

    /// Loads the model of `[model]`, analyses, builds and verifies it; the probe input is
    /// normalised by `probe` as a real image would be.
    pub fn load(o: &ModelOptions, probe: &Normaliser) -> Result<ModelPlan> {
        ModelPlan::load_sizes(o, probe, |_| Vec::new())
    }

    /// [`ModelPlan::load`] with one plan, proved the same way, for each input size
    /// (`[width, height]`) that `sizes` gives for the configured input (`[cam] scales`);
    /// none means the configured size alone. [`ModelPlan::input`] is then the first size.
    pub fn load_sizes(
        o: &ModelOptions,
        probe: &Normaliser,
        sizes: impl FnOnce(&InputSpec) -> Vec<[usize; 2]>,
    ) -> Result<ModelPlan> {
        let path = o.path.as_path();
        let g = OnnxGraph::load(path)?;
        let (configured, declared) = input_spec(&g, o.layout, o.input_size)?;
        let mut cut = surgery::analyse(&g, o.feature.as_deref(), || tensor_shapes(&g, &configured, declared))?;
        let mut sizes = sizes(&configured);
        if sizes.is_empty() {
            sizes.push([configured.width, configured.height]);
        }
        let input = InputSpec { width: sizes[0][0], height: sizes[0][1], ..configured };
        // A size the file does not declare: tract must not hold the graph to the shapes
        // the exporter recorded for it.
        let retyped = declared.is_some_and(|d| sizes.iter().any(|s| *s != d));
        let (tg, same_padding) = match declared.filter(|_| retyped) {
            Some([w, h]) => tf_same_padding(&g, &InputSpec { width: w, height: h, ..input.clone() })?,
            None => (g.with_proto(g.proto.clone()), 0),
        };
        let base = tract_model(&tg, retyped)?;
        let mut plans = Vec::new();
        let mut proofs = Vec::new();
        let mut head = None;
        let mut first = true;
        let mut kernels = None;
        for size in sizes {
            let spec = InputSpec { width: size[0], height: size[1], ..input.clone() };
            let built = build_plan(&tg, base.clone(), &spec, &cut, &o.kernels).and_then(|b| {
                bind_shapes(path, &mut cut, &mut first, b.shapes)?;
                kernels.get_or_insert(b.kernels);
                prove_cut(path, &b.plan, &spec, &cut, &mut head, probe).map(|p| (b.plan, p))
            });
            let (plan, probed) = match (built, declared) {
                (Ok(b), _) => b,
                (Err(e), Some(d)) if d != size => {
                    let at_declared = InputSpec { width: d[0], height: d[1], ..input.clone() };
                    let pins = retype::size_pins(&g, &cut, tensor_shapes(&g, &at_declared, declared).as_ref());
                    return Err(Error::model(path, retype::refusal(size, d, &pins, &model_reason(e))));
                }
                (Err(e), _) => return Err(e),
            };
            plans.push(SizedPlan { size, plan });
            proofs.push((size, probed));
        }
        let (_, probed) = proofs.remove(0);
        let head = head.expect("the first size's proof resolves the head");
        let report = CutReport {
            feature_tensor: cut.feature.clone(),
            feature_shape: probed.feature_shape,
            feature_layout: cut.pooling.layout,
            pooling_node: if cut.pooling.node_name.is_empty() {
                g.describe(cut.pooling.node)
            } else {
                cut.pooling.node_name.clone()
            },
            pooling_op: cut.pooling.op.clone(),
            head: head.kind().to_string(),
            head_ops: cut.head_ops.clone(),
            logits_tensor: cut.logits.clone(),
            output_is_softmax: cut.final_op == FinalOp::Softmax,
            output_activation: cut.final_op,
            num_classes: probed.num_classes,
            probe_rel_diff: probed.rel_diff,
            retyped_from: declared.filter(|_| retyped),
            same_padding,
            other_sizes: proofs
                .into_iter()
                .map(|(input_size, p)| SizeProof {
                    input_size,
                    feature_shape: p.feature_shape,
                    probe_rel_diff: p.rel_diff,
                })
                .collect(),
            kernels: kernels.unwrap_or_default(),
        };
        let program = cut.program.clone().ok();
        Ok(ModelPlan { input, cut, head, report, plans, program, data_files: g.data_files.clone() })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.report.num_classes
    }

    /// The input sizes planned, `[width, height]`, the main one first.
    pub fn sizes(&self) -> impl Iterator<Item = [usize; 2]> + '_ {
        self.plans.iter().map(|p| p.size)
    }

    /// The optimised tract plan of the `i`-th input size (for profiling and benchmarks).
    pub fn tract_plan(&self, i: usize) -> Option<&Arc<TypedRunnableModel>> {
        self.plans.get(i).map(|p| &p.plan)
    }

    /// Runs the cut network on one preprocessed input tensor, with the plan of its size.
    pub fn infer(&self, input: ndarray::Array4<f32>) -> std::result::Result<Inference, String> {
        let size = match self.input.layout {
            Layout::Nchw => [input.dim().3, input.dim().2],
            Layout::Nhwc => [input.dim().2, input.dim().1],
        };
        let plan = &self.plans.iter().find(|p| p.size == size).ok_or_else(|| {
            format!(
                "no plan for an input of {}x{}: the run planned {:?}",
                size[0],
                size[1],
                self.sizes().collect::<Vec<_>>()
            )
        })?;
        let mut out = plan.plan.run(tvec!(input.into_tensor().into())).map_err(|e| format!("{e:#}"))?;
        let features = FeatureMap::from_tensor(out.remove(0).into_tensor(), self.cut.pooling.layout)?;
        let logits = run_vec_from(&mut out, 0)?;
        Ok(Inference { features, logits })
    }
}

/// One optimised tract plan with two outputs: F for the maps, and the logits the untouched
/// graph computes from F.
///
/// Why both: the network's logits are the reference every map is checked against (the
/// start-up proof, and the per-image logit check), and the head costs a fraction of a
/// percent of the network. One plan, not a cut plan plus a full one: tract's optimised
/// plans hold packed copies of the weights, and building a second one cost start-up time
/// and peak memory for nothing.
fn build_plan(
    g: &OnnxGraph,
    base: InferenceModel,
    input: &InputSpec,
    cut: &FeatureCut,
    kernels: &KernelChoice,
) -> Result<BuiltPlan> {
    let merr = |what: &str, e: TractError| Error::model(&g.path, format!("{what}: {e:#}"));
    let base = base
        .with_input_fact(0, f32::fact(input_shape(input)).into())
        .map_err(|e| merr("cannot fix the input shape", e))?;
    retype::forward_shapes(&base).map_err(|e| {
        Error::model(&g.path, format!("at {}x{} the graph does not agree with itself: {e}", input.width, input.height))
    })?;
    let typed = base
        .with_outputs_by_name([cut.feature.as_str(), cut.logits.as_str()])
        .map_err(|e| merr("cannot select outputs", e))?
        .into_typed()
        .map_err(|e| merr("tract cannot optimise the graph", e))?;
    let wanted = cut.program.as_ref().map(HeadProgram::shape_tensors).unwrap_or_default();
    let shapes = wanted
        .into_iter()
        .map(|t| tensor_shape(&typed, t).map(|s| (t.to_string(), s)))
        .collect::<std::result::Result<_, String>>()
        .map_err(|e| Error::model(&g.path, e))?;
    let mut typed = typed.into_decluttered().map_err(|e| merr("tract cannot optimise the graph", e))?;
    // cambox's kernels go in before tract lowers the graph, each in place of the chain of
    // decluttered nodes it computes (the cambox-kernels crate).
    let kernels =
        cambox_kernels::substitute(&mut typed, kernels).map_err(|e| merr("cannot substitute cambox's kernels", e))?;
    // As tract's `into_optimized`, without the second declutter it would start with.
    let optimised = typed.into_compact().and_then(|mut m| m.optimize().map(|_| m));
    let optimised = optimised.map_err(|e| merr("tract cannot optimise the graph", e))?;
    let plan = optimised.into_runnable().map_err(|e| merr("tract cannot plan the graph", e))?;
    Ok(BuiltPlan { plan, shapes, kernels })
}

/// One input size's plan, and what building it found.
struct BuiltPlan {
    plan: Arc<TypedRunnableModel>,
    /// The shapes at this size of the backbone tensors the head reads (see
    /// [`HeadProgram::shape_tensors`]).
    shapes: BackboneShapes,
    kernels: KernelReport,
}

/// The shapes of backbone tensors by ONNX tensor name.
type BackboneShapes = HashMap<String, Vec<usize>>;

/// The concrete shape of the ONNX tensor `name` in a typed model.
fn tensor_shape(m: &TypedModel, name: &str) -> std::result::Result<Vec<usize>, String> {
    let outlet = m.find_outlet_label(name).or_else(|| m.node_by_name(name).ok().map(|n| OutletId::new(n.id, 0)));
    let fact = outlet
        .and_then(|o| m.outlet_fact(o).ok())
        .ok_or_else(|| format!("the head reads the shape of '{name}', which tract does not know"))?;
    fact.shape
        .as_concrete()
        .map(<[usize]>::to_vec)
        .ok_or_else(|| format!("the shape of '{name}' is not fixed: {:?}", fact.shape))
}

/// Gives the head program the backbone shapes it reads, from the first input size's
/// plan; at every other size what the head computes from them must be the same (the
/// batch of 1, usually), as one program serves them all.
fn bind_shapes(path: &Path, cut: &mut FeatureCut, first: &mut bool, shapes: BackboneShapes) -> Result<()> {
    let Ok(p) = cut.program.as_mut() else { return Ok(()) };
    let err = |e: String| Error::model(path, format!("the head program: {e}"));
    if std::mem::replace(first, false) {
        return p.bind_shapes(&shapes).map_err(err);
    }
    let mut other = p.clone();
    other.bind_shapes(&shapes).map_err(err)?;
    if other.fixed_inputs().map_err(err)? != p.fixed_inputs().map_err(err)? {
        return Err(err(format!(
            "it computes with backbone shapes that change with the input size ({shapes:?}): run at one size"
        )));
    }
    Ok(())
}

/// The ONNX file's graph as tract declutters it at the input shape cambox plans (batch 1,
/// the declared size), before any of cambox's kernels goes in: what the kernels' tests and
/// benchmarks compare cambox's ops with.
pub fn decluttered(path: &Path) -> Result<TypedModel> {
    let input = ModelPlan::open(path)?.input;
    tract_model(&OnnxGraph::load(path)?, false)?
        .with_input_fact(0, f32::fact(input_shape(&input)).into())
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .map_err(|e| Error::model(path, format!("tract cannot declutter the graph: {e:#}")))
}

/// The graph as tract reads it, before any input shape is fixed. With `retyped`, the
/// shapes the exporter recorded for intermediate tensors (valid at the declared size
/// only) are not imposed on it; tract ignores the outputs' recorded shapes by default.
fn tract_model(g: &OnnxGraph, retyped: bool) -> Result<InferenceModel> {
    let onnx = tract_onnx::onnx().with_ignore_value_info(retyped);
    let err = |e: String| Error::model(&g.path, format!("tract cannot load the graph: {e}"));
    let parsed = onnx.parse(&g.proto, g.dir()).map_err(|e| err(format!("{e:#}")))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(err(format!("inputs never defined: {}", parsed.unresolved_inputs.join(", "))));
    }
    Ok(parsed.model)
}

/// The graph tract runs when the input is re-typed, with tf2onnx's baked "same"
/// paddings made "same" again (see [`retype::tf_same_padding`]), and how many changed;
/// `declared` is the input at the size the file declares.
fn tf_same_padding(g: &OnnxGraph, declared: &InputSpec) -> Result<(OnnxGraph, usize)> {
    if g.proto.producer_name != "tf2onnx" {
        return Ok((g.with_proto(g.proto.clone()), 0));
    }
    let at_declared = tract_model(g, false)?
        .with_input_fact(0, f32::fact(input_shape(declared)).into())
        .map_err(|e| Error::model(&g.path, format!("cannot fix the input shape: {e:#}")))?;
    let shapes = retype::forward_shapes(&at_declared).map_err(|e| Error::model(&g.path, e))?;
    let (proto, changed) = retype::tf_same_padding(g, &shapes);
    Ok((g.with_proto(proto), changed))
}

/// The shapes of the graph's tensors with `input`, from one forward pass of tract's
/// inference rules; `None` when tract cannot tell.
fn tensor_shapes(g: &OnnxGraph, input: &InputSpec, declared: Option<[usize; 2]>) -> Option<surgery::TensorShapes> {
    let retyped = declared.is_some_and(|d| d != [input.width, input.height]);
    let model = tract_model(g, retyped).ok()?.with_input_fact(0, f32::fact(input_shape(input)).into()).ok()?;
    retype::forward_shapes(&model).ok()
}

/// The input tensor's shape: batch 1 in the network's layout.
fn input_shape(input: &InputSpec) -> Vec<usize> {
    match input.layout {
        Layout::Nchw => vec![1, input.channels, input.height, input.width],
        Layout::Nhwc => vec![1, input.height, input.width, input.channels],
    }
}

/// What the start-up probe found.
struct Probed {
    feature_shape: Vec<usize>,
    num_classes: usize,
    rel_diff: f32,
}

/// Runs the plan on a probe image and proves the cut: the logits cambox computes from F
/// (through the linear head, the identity, or its own head program) must equal the
/// network's own within [`CUT_CHECK_REL_TOL`]. The first proof resolves `head` on the
/// feature map's channels.
fn prove_cut(
    path: &Path,
    plan: &Arc<TypedRunnableModel>,
    input: &InputSpec,
    cut: &FeatureCut,
    head: &mut Option<Head>,
    probe: &Normaliser,
) -> Result<Probed> {
    // Probe: a smooth pattern in [0, 1], normalised like a real image.
    let probe = probe_tensor(input, probe);
    let mut out =
        plan.run(tvec!(probe.into())).map_err(|e| Error::model(path, format!("running the model failed: {e:#}")))?;
    let full_logits = run_vec_from(&mut out, 1).map_err(|e| Error::model(path, e))?;
    let feat_tensor = out.remove(0).into_tensor();
    let feature_shape = feat_tensor.shape().to_vec();
    let features = FeatureMap::from_tensor(feat_tensor, cut.pooling.layout)
        .map_err(|e| Error::model(path, format!("feature tensor '{}': {e}", cut.feature)))?;

    if let Some(k) = cut.pooling.kernel {
        if k != [features.height, features.width] {
            return Err(Error::model(
                path,
                format!(
                    "AveragePool '{}' has kernel {:?} but the feature map is {}x{}: not a global pooling",
                    cut.pooling.node_name, k, features.height, features.width
                ),
            ));
        }
    }
    let num_classes = full_logits.len();
    if head.is_none() {
        let resolved = Head::resolve(&cut.head_kind, &cut.head_ops, &cut.program, features.channels)
            .map_err(|e| Error::model(path, format!("the head after '{}': {e}", cut.feature)))?;
        *head = Some(resolved);
    }
    let cut_logits = match head.as_ref().expect("resolved") {
        Head::Linear(h) => linear_logits(h, &features),
        Head::Identity => {
            if features.channels != num_classes {
                return Err(Error::model(
                    path,
                    format!(
                        "head has no dense layer, yet the feature map has {} channels for {} classes",
                        features.channels, num_classes
                    ),
                ));
            }
            features.pooled().to_vec()
        }
        Head::Other { program: Ok(p), .. } => {
            p.forward(&features.pooled()).map_err(|e| Error::model(path, format!("the head program: {e}")))?.to_vec()
        }
        // A head cambox cannot evaluate itself has nothing to check here: its maps
        // (EigenCAM) do not depend on it.
        Head::Other { program: Err(_), .. } => full_logits.clone(),
    };
    let rel = rel_diff(&cut_logits, &full_logits);
    if cut_logits.len() != num_classes || rel.is_nan() || rel > CUT_CHECK_REL_TOL {
        return Err(Error::model(path, format!(
            "the cut at '{}' does not reproduce the model's logits: relative difference {rel:.3e} > {CUT_CHECK_REL_TOL:.0e}; refusing to produce maps that would be wrong",
            cut.feature
        )));
    }
    Ok(Probed { feature_shape, num_classes, rel_diff: rel })
}

/// `W g + b` with g the pooled features.
pub fn linear_logits(h: &LinearHead, f: &FeatureMap) -> Vec<f32> {
    (h.weight.dot(&f.pooled()) + &h.bias).to_vec()
}

fn run_vec_from(out: &mut TVec<TValue>, i: usize) -> std::result::Result<Vec<f32>, String> {
    tensor_to_vec(out.remove(i).into_tensor()).map_err(|e| format!("{e:#}"))
}

fn tensor_to_vec(t: Tensor) -> TractResult<Vec<f32>> {
    Ok(t.cast_to::<f32>()?.into_owned().into_plain_array::<f32>()?.iter().copied().collect())
}

/// max |a - b| / max(1, max |b|).
pub fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) }) / scale
}

fn probe_tensor(input: &InputSpec, normaliser: &Normaliser) -> Tensor {
    let (w, h, c) = (input.width, input.height, input.channels);
    let value = |ch: usize, y: usize, x: usize| {
        let u = x as f32 / w.max(1) as f32;
        let v = y as f32 / h.max(1) as f32;
        let raw = 0.5 + 0.25 * (6.0 * u + 2.0 * ch as f32).sin() * (4.0 * v).cos() + 0.2 * (u - v);
        normaliser.value(ch, raw.clamp(0.0, 1.0))
    };
    let arr = match input.layout {
        Layout::Nchw => ndarray::Array4::from_shape_fn((1, c, h, w), |(_, ch, y, x)| value(ch, y, x)),
        Layout::Nhwc => ndarray::Array4::from_shape_fn((1, h, w, c), |(_, y, x, ch)| value(ch, y, x)),
    };
    arr.into_tensor()
}

/// The message of a model error, without the path (the refusal names it once).
fn model_reason(e: Error) -> String {
    match e {
        Error::Model { message, .. } => message,
        other => other.to_string(),
    }
}

/// Reads the input's name, layout, channels and size, or says why the model is not an
/// image classifier; with the `[width, height]` the file fixes, if it does.
fn input_spec(
    g: &OnnxGraph,
    layout: LayoutChoice,
    size: Option<[usize; 2]>,
) -> Result<(InputSpec, Option<[usize; 2]>)> {
    let inputs = g.real_inputs();
    let inp = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(Error::model(&g.path, "the model has no input")),
        many => return Err(Error::model(&g.path, several_inputs(g, many))),
    };
    let elem = match inp.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(tract_onnx::pb::type_proto::Value::TensorType(t)) => t.elem_type,
        _ => 0,
    };
    if elem != 1 && elem != 0 {
        return Err(Error::model(
            &g.path,
            format!("input '{}' is not float32 (ONNX type {elem}); cambox feeds normalised float images", inp.name),
        ));
    }
    let dims = OnnxGraph::declared_shape(inp).unwrap_or_default();
    if dims.len() != 4 {
        return Err(Error::model(
            &g.path,
            format!(
                "input '{}' has rank {}, expected an image batch N x C x H x W or N x H x W x C",
                inp.name,
                dims.len()
            ),
        ));
    }
    let is_ch = |d: Option<i64>| matches!(d, Some(1) | Some(3));
    let layout = match layout {
        LayoutChoice::Nchw => Layout::Nchw,
        LayoutChoice::Nhwc => Layout::Nhwc,
        LayoutChoice::Auto => match (is_ch(dims[1]), is_ch(dims[3])) {
            (true, false) => Layout::Nchw,
            (false, true) => Layout::Nhwc,
            _ => {
                return Err(Error::model(
                    &g.path,
                    format!(
                        "cannot tell the layout of input '{}' with shape {}; set [model] layout = \"nchw\" or \"nhwc\"",
                        inp.name,
                        fmt_dims(&dims)
                    ),
                ))
            }
        },
    };
    let (c, h, w) = match layout {
        Layout::Nchw => (dims[1], dims[2], dims[3]),
        Layout::Nhwc => (dims[3], dims[1], dims[2]),
    };
    let channels = match c {
        Some(c @ (1 | 3)) => c as usize,
        _ => {
            return Err(Error::model(
                &g.path,
                format!(
                    "input '{}' with shape {} does not have 1 or 3 channels: not an image input",
                    inp.name,
                    fmt_dims(&dims)
                ),
            ))
        }
    };
    let declared = match (w, h) {
        (Some(w), Some(h)) => Some([w as usize, h as usize]),
        _ => None,
    };
    let (width, height) = match (w, h, size) {
        (_, _, Some([sw, sh])) => {
            if sw == 0 || sh == 0 {
                return Err(Error::model(&g.path, format!("input_size {sw}x{sh}: both sides must be positive")));
            }
            (sw, sh)
        }
        (Some(w), Some(h), None) => (w as usize, h as usize),
        _ => {
            return Err(Error::model(
                &g.path,
                format!(
                    "input '{}' has a symbolic size ({}); set [model] input_size = [width, height]",
                    inp.name,
                    fmt_dims(&dims)
                ),
            ))
        }
    };
    Ok((InputSpec { name: inp.name.clone(), layout, channels, width, height }, declared))
}

/// Why a model with several inputs (that nodes read, and that have no value in the file)
/// is not an image classifier cambox can feed.
fn several_inputs(g: &OnnxGraph, inputs: &[&tract_onnx::pb::ValueInfoProto]) -> String {
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let image = inputs.iter().find(|i| OnnxGraph::declared_shape(i).is_some_and(|d| d.len() == 4));
    let others: Vec<String> = inputs
        .iter()
        .filter(|i| image.is_none_or(|m| m.name != i.name))
        .map(|i| match g.consumers(&i.name).first() {
            Some(&n) => format!("'{}' (read by {})", i.name, g.describe(n)),
            None => format!("'{}'", i.name),
        })
        .collect();
    match image {
        Some(image) => format!(
            "the model has {} inputs ({}): besides the image '{}', the graph reads {}, for which the file holds no value \
             (Keras 3's ONNX export leaves a Normalization layer's mean and variance so); an image classifier has one input",
            inputs.len(),
            names.join(", "),
            image.name,
            others.join(", ")
        ),
        None => format!("the model has {} inputs ({}); an image classifier has one", inputs.len(), names.join(", ")),
    }
}

fn fmt_dims(d: &[Option<i64>]) -> String {
    d.iter().map(|x| x.map(|v| v.to_string()).unwrap_or_else(|| "?".into())).collect::<Vec<_>>().join("x")
}
