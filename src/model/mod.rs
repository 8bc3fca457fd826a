//! Stage "infer": the classifier, cut at its feature map, ready to run on many threads.
//!
//! [`ModelPlan::load`] reads the ONNX file, finds the cut ([`surgery`]), fixes the input
//! shape, builds one optimised tract plan that outputs the feature map F and the network's
//! own logits, and proves the cut right on a probe input before any image is touched. The
//! plan is immutable and shared by every worker.

pub mod graph;
pub mod head;
pub mod surgery;

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2, Axis};
use serde::Serialize;
use tract_onnx::prelude::*;

use crate::config::LayoutChoice;
use crate::defaults;
use crate::error::{Error, Result};
use graph::OnnxGraph;
pub use surgery::{FeatureCut, Head, Layout, LinearHead};

/// What the network expects as input.
#[derive(Debug, Clone, Serialize)]
pub struct InputSpec {
    pub name: String,
    pub layout: Layout,
    pub channels: usize,
    pub width: usize,
    pub height: usize,
}

/// The feature map F of one image, as a C x (h*w) matrix view over the tensor tract
/// returned (positions in row-major order, y * w + x), whatever the layout.
pub struct FeatureMap {
    data: ndarray::ArrayD<f32>,
    pub layout: Layout,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl FeatureMap {
    fn from_tensor(tensor: Tensor, layout: Layout) -> std::result::Result<FeatureMap, String> {
        let shape = tensor.shape().to_vec();
        if shape.len() != 4 || shape[0] != 1 {
            return Err(format!("feature map has shape {shape:?}, expected 1 x C x H x W or 1 x H x W x C"));
        }
        let (c, h, w) = match layout {
            Layout::Nchw => (shape[1], shape[2], shape[3]),
            Layout::Nhwc => (shape[3], shape[1], shape[2]),
        };
        let data = tensor
            .cast_to::<f32>()
            .and_then(|t| t.into_owned().into_plain_array::<f32>())
            .map_err(|e| format!("{e:#}"))?
            .as_standard_layout()
            .into_owned();
        Ok(FeatureMap { data, layout, channels: c, height: h, width: w })
    }

    /// Builds a feature map from plain data (tests, tools).
    pub fn from_chw(data: Array2<f32>, height: usize, width: usize) -> FeatureMap {
        let c = data.nrows();
        let data = data
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(vec![1, c, height, width])
            .expect("C x (h*w) data");
        FeatureMap { data, layout: Layout::Nchw, channels: c, height, width }
    }

    /// F as C x positions.
    pub fn matrix(&self) -> ArrayView2<'_, f32> {
        let s = self.data.as_slice().expect("standard layout");
        let hw = self.height * self.width;
        match self.layout {
            Layout::Nchw => ArrayView2::from_shape((self.channels, hw), s).expect("shape"),
            Layout::Nhwc => ArrayView2::from_shape((hw, self.channels), s).expect("shape").reversed_axes(),
        }
    }

    /// The pooled vector g = mean of F over positions (what the global pooling computes).
    pub fn pooled(&self) -> ndarray::Array1<f32> {
        // Sum in f64: 1280 x 49 values, and the logit check compares to 1e-4.
        let m = self.matrix();
        let n = (self.height * self.width) as f64;
        m.map(|&v| v as f64).sum_axis(Axis(1)).mapv(|s| (s / n) as f32)
    }
}

/// What `run.json` and `inspect` report about the cut.
#[derive(Debug, Clone, Serialize)]
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
    pub num_classes: usize,
    /// Largest |logit(cut) - logit(full)| on the start-up probe, relative.
    pub probe_rel_diff: f32,
    pub map_methods: Vec<String>,
}

/// The loaded, cut, verified model.
pub struct ModelPlan {
    pub input: InputSpec,
    pub cut: FeatureCut,
    pub report: CutReport,
    /// Outputs the feature map F and the network's own logits.
    plan: Arc<TypedRunnableModel>,
    /// The head as cambox runs and differentiates it, when it can.
    pub program: Option<head::HeadProgram>,
}

/// Output of one forward pass.
pub struct Inference {
    pub features: FeatureMap,
    /// The network's own logits (its head run by tract on the same F).
    pub logits: Vec<f32>,
}

impl ModelPlan {
    /// Loads `path`, analyses, builds and verifies. `input_size` is `[width, height]`.
    pub fn load(
        path: &Path,
        layout: LayoutChoice,
        input_size: Option<[usize; 2]>,
        feature_override: Option<&str>,
        probe_normalise: &dyn Fn(usize, f32) -> f32,
    ) -> Result<ModelPlan> {
        let g = OnnxGraph::load(path)?;
        let input = input_spec(&g, layout, input_size)?;
        let cut = surgery::analyse(&g, feature_override)?;
        let merr = |what: &str, e: TractError| Error::model(path, format!("{what}: {e:#}"));

        let base =
            tract_onnx::onnx().model_for_proto_model(&g.proto).map_err(|e| merr("tract cannot load the graph", e))?;
        let shape: Vec<usize> = match input.layout {
            Layout::Nchw => vec![1, input.channels, input.height, input.width],
            Layout::Nhwc => vec![1, input.height, input.width, input.channels],
        };
        let base =
            base.with_input_fact(0, f32::fact(&shape).into()).map_err(|e| merr("cannot fix the input shape", e))?;

        // One plan with two outputs: F for the maps, and the logits the untouched graph
        // computes from F. Why both: the network's logits are the reference every map is
        // checked against (the start-up proof below, and the per-image logit check), and
        // the head costs a fraction of a percent of the network. One plan, not a cut plan
        // plus a full one: tract's optimised plans hold packed copies of the weights, and
        // building a second one cost start-up time and peak memory for nothing.
        let plan = base
            .with_outputs_by_name([cut.feature.as_str(), cut.logits.as_str()])
            .map_err(|e| merr("cannot select outputs", e))?
            .into_optimized()
            .map_err(|e| merr("tract cannot optimise the graph", e))?
            .into_runnable()
            .map_err(|e| merr("tract cannot plan the graph", e))?;
        let program = cut.head.program();

        // Probe: a smooth pattern in [0, 1], normalised like a real image.
        let probe = probe_tensor(&input, &shape, probe_normalise);
        let mut out = plan
            .run(tvec!(probe.into()))
            .map_err(|e| Error::model(path, format!("running the model failed: {e:#}")))?;
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
        let cut_logits = match &cut.head {
            Head::Linear(h) => {
                if h.weight.ncols() != features.channels {
                    return Err(Error::model(
                        path,
                        format!(
                            "dense layer expects {} features but the feature map has {} channels",
                            h.weight.ncols(),
                            features.channels
                        ),
                    ));
                }
                Some(linear_logits(h, &features))
            }
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
                Some(features.pooled().to_vec())
            }
            // A head cambox cannot evaluate itself has nothing to check here: its maps
            // (EigenCAM) do not depend on it.
            Head::Other { .. } => match &program {
                Ok(p) => Some(p.forward(&features.pooled()).to_vec()),
                Err(_) => Some(full_logits.clone()),
            },
        };
        let cut_logits = cut_logits.expect("set above");
        let rel = rel_diff(&cut_logits, &full_logits);
        if cut_logits.len() != num_classes || rel.is_nan() || rel > defaults::CUT_CHECK_REL_TOL {
            return Err(Error::model(path, format!(
                "the cut at '{}' does not reproduce the model's logits: relative difference {rel:.3e} > {:.0e}; refusing to produce maps that would be wrong",
                cut.feature, defaults::CUT_CHECK_REL_TOL
            )));
        }
        let map_methods = crate::cam::MapMethod::ALL
            .iter()
            .filter(|m| m.applies(&cut.head, program.is_ok()).is_ok())
            .map(|m| m.name().to_string())
            .collect();
        let report = CutReport {
            feature_tensor: cut.feature.clone(),
            feature_shape,
            feature_layout: cut.pooling.layout,
            pooling_node: if cut.pooling.node_name.is_empty() {
                g.describe(cut.pooling.node)
            } else {
                cut.pooling.node_name.clone()
            },
            pooling_op: cut.pooling.op.clone(),
            head: cut.head.kind().to_string(),
            head_ops: cut.head_ops.clone(),
            logits_tensor: cut.logits.clone(),
            output_is_softmax: cut.output_is_softmax,
            num_classes,
            probe_rel_diff: rel,
            map_methods,
        };
        Ok(ModelPlan { input, cut, report, plan, program: program.ok() })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.report.num_classes
    }

    /// Runs the cut network on one preprocessed input tensor.
    pub fn infer(&self, input: ndarray::Array4<f32>) -> std::result::Result<Inference, String> {
        let mut out = self.plan.run(tvec!(input.into_tensor().into())).map_err(|e| format!("{e:#}"))?;
        let features = FeatureMap::from_tensor(out.remove(0).into_tensor(), self.cut.pooling.layout)?;
        let logits = run_vec_from(&mut out, 0)?;
        Ok(Inference { features, logits })
    }
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

fn probe_tensor(input: &InputSpec, shape: &[usize], normalise: &dyn Fn(usize, f32) -> f32) -> Tensor {
    let (w, h, c) = (input.width, input.height, input.channels);
    let value = |ch: usize, y: usize, x: usize| {
        let u = x as f32 / w.max(1) as f32;
        let v = y as f32 / h.max(1) as f32;
        let raw = 0.5 + 0.25 * (6.0 * u + 2.0 * ch as f32).sin() * (4.0 * v).cos() + 0.2 * (u - v);
        normalise(ch, raw.clamp(0.0, 1.0))
    };
    let arr = match input.layout {
        Layout::Nchw => ndarray::Array4::from_shape_fn((1, c, h, w), |(_, ch, y, x)| value(ch, y, x)),
        Layout::Nhwc => ndarray::Array4::from_shape_fn((1, h, w, c), |(_, y, x, ch)| value(ch, y, x)),
    };
    debug_assert_eq!(arr.shape(), shape);
    arr.into_tensor()
}

/// Reads the input's name, layout, channels and size, or says why the model is not an
/// image classifier.
fn input_spec(g: &OnnxGraph, layout: LayoutChoice, size: Option<[usize; 2]>) -> Result<InputSpec> {
    let inputs = g.real_inputs();
    let inp = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(Error::model(&g.path, "the model has no input")),
        many => {
            let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::model(
                &g.path,
                format!("the model has {} inputs ({}); an image classifier has one", many.len(), names.join(", ")),
            ));
        }
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
    let (width, height) = match (w, h, size) {
        (_, _, Some([sw, sh])) => {
            if let (Some(w), Some(h)) = (w, h) {
                if (w as usize, h as usize) != (sw, sh) {
                    return Err(Error::model(
                        &g.path,
                        format!("config input_size {sw}x{sh} differs from the model's fixed {w}x{h}"),
                    ));
                }
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
    Ok(InputSpec { name: inp.name.clone(), layout, channels, width, height })
}

fn fmt_dims(d: &[Option<i64>]) -> String {
    d.iter().map(|x| x.map(|v| v.to_string()).unwrap_or_else(|| "?".into())).collect::<Vec<_>>().join("x")
}
