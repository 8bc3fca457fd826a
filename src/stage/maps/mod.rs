//! Stage "map": from the feature map F to predictions and class activation maps.
//!
//! For a linear head, `M_k = sum_c W[k, c] F_c`, computed as one matrix product for just the
//! classes that are needed, and the logits as `W mean(F) + b`. Because the mean commutes
//! with the product, `mean(M_k) + b_k` must equal logit k; [`ClassMaps::logit_check`]
//! measures how far it is, per image, as a guard against corrupt maps.
//!
//! For other heads the gradient-based and gradient-free methods of [`MapMethod`] use the
//! head program ([`crate::stage::model::head`]): with a global *average* pooling, `dy/dF[c, p]` is the
//! same at every position p, namely `(dy/dg_c) / P` (P = h * w positions), so every
//! gradient method reduces to channel weights times F, computed in closed form.
//! Consequences stated once here: HiResCAM (`sum_c dy/dF_c * F_c`) equals Grad-CAM's
//! raw map exactly, and for a linear head Grad-CAM equals CAM / P, i.e. CAM after ReLU
//! and min-max. Every method but `cam` applies a ReLU to its map, as pytorch-grad-cam
//! does; `cam` keeps the raw map (its mean is the logit).

mod eigen;
mod prediction;

use ndarray::{Array1, Array2, Array3, Axis};
use serde::{Deserialize, Serialize};

use crate::stage::model::{FeatureMap, Head, HeadProgram};
pub use eigen::eigen_projection;
pub use prediction::{ranked, sigmoid, softmax, Activation, Prediction};

/// Per-image `logit_check` above this fraction of the logits' scale (the largest |logit|,
/// floored at 1, as the start-up proof's [`crate::stage::model::CUT_CHECK_REL_TOL`])
/// marks the row as an error: the identity mean(M_k) + b_k = logit_k only fails if the
/// maps are corrupt, but float rounding grows with the logits (EfficientNetV2's reach the
/// hundreds).
pub const LOGIT_CHECK_REL_MAX: f32 = 1e-3;

/// The largest `logit_check` an image with these logits may have.
pub fn logit_check_limit(logits: &[f32]) -> f32 {
    LOGIT_CHECK_REL_MAX * logits.iter().fold(1f32, |m, v| m.max(v.abs()))
}

/// How class maps are computed (`[cam] method`, `--method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MapMethod {
    /// Zhou et al. 2016: `sum_c W[k, c] F_c` (linear and identity heads).
    #[default]
    Cam,
    /// Selvaraju et al. 2017: ReLU(sum_c mean_p(dy/dF_c) F_c).
    GradCam,
    /// Chattopadhyay et al. 2018, first-order closed form as in pytorch-grad-cam.
    GradCamPlusPlus,
    /// Draelos & Carin 2020: ReLU(sum_c dy/dF_c * F_c).
    HiResCam,
    /// Muhammad & Yeasin 2020: first principal component of F; class-agnostic.
    EigenCam,
    /// Ramaswamy & Desai 2020: weights (y - y_without_channel_c) / y, forward only.
    AblationCam,
}

impl TryFrom<String> for MapMethod {
    type Error = String;
    fn try_from(s: String) -> Result<MapMethod, String> {
        MapMethod::parse(&s)
    }
}

impl From<MapMethod> for String {
    fn from(m: MapMethod) -> String {
        m.name().to_string()
    }
}

/// `[cam] method`: a method, or `auto` (the default): exact CAM when the head is linear
/// (or an identity), Grad-CAM through cambox's differentiation of the head otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MethodChoice {
    #[default]
    Auto,
    Method(MapMethod),
}

impl TryFrom<String> for MethodChoice {
    type Error = String;
    fn try_from(s: String) -> Result<MethodChoice, String> {
        match s.as_str() {
            "auto" => Ok(MethodChoice::Auto),
            _ => MapMethod::parse(&s).map(MethodChoice::Method).map_err(|e| format!("{e}, or auto")),
        }
    }
}

impl From<MethodChoice> for String {
    fn from(m: MethodChoice) -> String {
        match m {
            MethodChoice::Auto => "auto".into(),
            MethodChoice::Method(m) => m.name().into(),
        }
    }
}

impl MethodChoice {
    /// The method this choice means for `head`, and why, when `auto` chose it.
    pub fn resolve(self, head: &Head) -> (MapMethod, Option<String>) {
        match (self, head) {
            (MethodChoice::Method(m), _) => (m, None),
            (MethodChoice::Auto, Head::Linear(_)) => (MapMethod::Cam, Some("the head is one affine map, so CAM is exact".into())),
            (MethodChoice::Auto, Head::Identity) => {
                (MapMethod::Cam, Some("the head has no dense layer: one feature channel per class".into()))
            }
            (MethodChoice::Auto, Head::Other { op, node_name, .. }) => (
                MapMethod::GradCam,
                Some(format!("the head is not one affine map ({op} '{node_name}'), so CAM does not exist for it; Grad-CAM through the head, differentiated in closed form")),
            ),
        }
    }
}

/// pytorch-grad-cam's epsilon in the Grad-CAM++ denominator; it matters (see tests).
pub const GRADCAM_PP_EPS: f64 = 1e-6;

impl MapMethod {
    pub const ALL: [MapMethod; 6] = [
        MapMethod::Cam,
        MapMethod::GradCam,
        MapMethod::GradCamPlusPlus,
        MapMethod::HiResCam,
        MapMethod::EigenCam,
        MapMethod::AblationCam,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            MapMethod::Cam => "cam",
            MapMethod::GradCam => "gradcam",
            MapMethod::GradCamPlusPlus => "gradcam++",
            MapMethod::HiResCam => "hirescam",
            MapMethod::EigenCam => "eigencam",
            MapMethod::AblationCam => "ablationcam",
        }
    }

    pub fn parse(s: &str) -> Result<MapMethod, String> {
        MapMethod::ALL.iter().copied().find(|m| m.name() == s).ok_or_else(|| {
            format!(
                "unknown map method '{s}': {}",
                MapMethod::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Whether the method works with this head; the error says why not and what to use.
    pub fn applies(&self, head: &Head) -> Result<(), String> {
        match (self, head) {
            (MapMethod::Cam, Head::Other { op, node_name, .. }) => Err(format!(
                "method \"cam\" needs a linear head, but the head has {op} '{node_name}'; use method = \"gradcam\" (or another gradient method)"
            )),
            (MapMethod::Cam | MapMethod::EigenCam, _) => Ok(()),
            (_, Head::Other { program: Err(e), .. }) => Err(format!(
                "method \"{}\" needs to evaluate the head, and {e}; method \"eigencam\" does not need the head",
                self.name()
            )),
            _ => Ok(()),
        }
    }

    /// The methods that work with this head, in [`MapMethod::ALL`] order.
    pub fn applicable(head: &Head) -> Vec<MapMethod> {
        MapMethod::ALL.iter().copied().filter(|m| m.applies(head).is_ok()).collect()
    }

    /// Whether the maps depend on the class.
    pub fn class_specific(&self) -> bool {
        *self != MapMethod::EigenCam
    }
}

/// Raw class maps at feature resolution for a set of classes.
#[derive(Debug, Clone)]
pub struct ClassMaps {
    pub classes: Vec<usize>,
    /// classes.len() x h x w.
    pub maps: Array3<f32>,
    /// The bias of each listed class (0 for identity heads).
    pub bias: Vec<f32>,
}

impl ClassMaps {
    /// CAM for `classes` under `head`; `None` when the head is not linear or identity.
    pub fn cam(head: &Head, f: &FeatureMap, classes: &[usize]) -> Option<ClassMaps> {
        let (h, w) = (f.height, f.width);
        let fm = f.matrix();
        let (maps2, bias): (Array2<f32>, Vec<f32>) = match head {
            Head::Linear(lin) => {
                let wsel = lin.weight.select(Axis(0), classes);
                (wsel.dot(&fm), classes.iter().map(|&k| lin.bias[k]).collect())
            }
            Head::Identity => (fm.select(Axis(0), classes), vec![0.0; classes.len()]),
            Head::Other { .. } => return None,
        };
        let maps = maps2.into_shape_with_order((classes.len(), h, w)).expect("k x h x w");
        Some(ClassMaps { classes: classes.to_vec(), maps, bias })
    }

    /// Maps of `classes` by `method` (not `cam`, see [`ClassMaps::cam`]), after the ReLU;
    /// `program` is the head, needed by every method but EigenCAM.
    pub fn by_method(
        method: MapMethod,
        program: Option<&HeadProgram>,
        f: &FeatureMap,
        classes: &[usize],
    ) -> Result<ClassMaps, String> {
        let mut maps = Array3::zeros((classes.len(), f.height, f.width));
        if method == MapMethod::EigenCam {
            let m = eigen_projection(f);
            maps.iter_mut().zip(m.iter().cycle()).for_each(|(o, v)| *o = v.max(0.0));
        } else {
            let fm = f.matrix();
            for (i, w) in channel_weights(method, program, f, classes)?.iter().enumerate() {
                let m = w.dot(&fm).mapv(|v| v.max(0.0));
                maps.index_axis_mut(Axis(0), i).assign(&m.into_shape_with_order((f.height, f.width)).expect("h x w"));
            }
        }
        Ok(ClassMaps { classes: classes.to_vec(), maps, bias: vec![0.0; classes.len()] })
    }

    /// max over the listed classes of |mean(M_k) + b_k - logit_k|.
    pub fn logit_check(&self, logits: &[f32]) -> f32 {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let m = self.maps.index_axis(Axis(0), i);
                let mean = m.iter().map(|&v| v as f64).sum::<f64>() / m.len() as f64;
                (mean + self.bias[i] as f64 - logits[k] as f64).abs() as f32
            })
            .fold(0f32, |a, d| if d.is_nan() { f32::NAN } else { a.max(d) })
    }

    pub fn map(&self, i: usize) -> ndarray::ArrayView2<'_, f32> {
        self.maps.index_axis(Axis(0), i)
    }
}

/// Channel weights w (one per feature channel) of a gradient or ablation method for each
/// class: the raw map is `sum_c w_c F_c`. With a global average pooling the gradient
/// `dy/dF[c, p]` is `(dy/dg_c) / P` at every position.
pub fn channel_weights(
    method: MapMethod,
    program: Option<&HeadProgram>,
    f: &FeatureMap,
    classes: &[usize],
) -> Result<Vec<Array1<f32>>, String> {
    let p = (f.height * f.width) as f64;
    let g = f.pooled();
    let prog = program.ok_or_else(|| format!("method {} needs the head program", method.name()))?;
    Ok(match method {
        MapMethod::Cam | MapMethod::EigenCam => return Err(format!("{} has no channel weights", method.name())),
        MapMethod::GradCam | MapMethod::HiResCam => {
            let trace = prog.trace(&g)?;
            classes
                .iter()
                .map(|&k| Ok(prog.gradient(&trace, k)?.mapv(|d| (d as f64 / p) as f32)))
                .collect::<Result<_, String>>()?
        }
        MapMethod::GradCamPlusPlus => {
            let trace = prog.trace(&g)?;
            classes
                .iter()
                .map(|&k| {
                    let grad = prog.gradient(&trace, k)?;
                    Ok(Array1::from_shape_fn(g.len(), |c| {
                        // G = dy/dF[c, p], the same at every position; sum_p F_c = P g_c.
                        let gg = grad[c] as f64 / p;
                        if gg == 0.0 {
                            return 0.0;
                        }
                        let sum_f = g[c] as f64 * p;
                        let aij = gg * gg / (2.0 * gg * gg + sum_f * gg * gg * gg + GRADCAM_PP_EPS);
                        (p * gg.max(0.0) * aij) as f32
                    }))
                })
                .collect::<Result<_, String>>()?
        }
        MapMethod::AblationCam => {
            let y = prog.forward(&g)?;
            classes
                .iter()
                .map(|&k| Ok(Array1::from_iter(prog.ablated_logits(&g, k)?.iter().map(|&ya| (y[k] - ya) / y[k]))))
                .collect::<Result<_, String>>()?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::model::LinearHead;
    use ndarray::array;

    #[test]
    fn the_logit_check_scales_with_the_logits() {
        assert_eq!(logit_check_limit(&[0.5, -0.2]), 1e-3);
        assert_eq!(logit_check_limit(&[120.0, -400.0]), 0.4);
    }

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // Hand computation: e^3 / (e + e^2 + e^3) = 0.665241.
        assert!((p[2] - 0.665_241).abs() < 1e-5);
        let pr = Prediction::from_logits(vec![0.5, 3.0, 3.0, -1.0], 3);
        assert_eq!(pr.top, vec![1, 2, 0]);
    }

    #[test]
    fn cam_of_hand_computed_linear_head() {
        // F: 2 channels on a 1x2 map; W = [[1, 2], [0, -1]], b = [0.5, 1].
        let f = FeatureMap::from_chw(array![[1.0, 3.0], [2.0, 4.0]], 1, 2);
        let head = Head::Linear(LinearHead { weight: array![[1.0, 2.0], [0.0, -1.0]], bias: array![0.5, 1.0] });
        let cm = ClassMaps::cam(&head, &f, &[1, 0]).unwrap();
        // M_1 = -F_1 = [-2, -4]; M_0 = F_0 + 2 F_1 = [5, 11].
        assert_eq!(cm.maps.as_slice().unwrap(), &[-2.0, -4.0, 5.0, 11.0]);
        // logits: g = [2, 3] -> [2 + 6 + 0.5, -3 + 1] = [8.5, -2].
        let logits = crate::stage::model::linear_logits(
            match &head {
                Head::Linear(l) => l,
                _ => unreachable!(),
            },
            &f,
        );
        assert_eq!(logits, vec![8.5, -2.0]);
        assert!(cm.logit_check(&logits) < 1e-6);
    }
}
