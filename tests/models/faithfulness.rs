//! The faithfulness figures (deletion, insertion, ROAD, confidence drop) against an
//! independent numpy + onnxruntime port of RISE's and pytorch-grad-cam's definitions
//! (`scripts/reference/faithfulness_reference.py`, `tests/fixtures/faithfulness/`): the
//! same inputs and maps, tract running the fixture models here, onnxruntime there. Every
//! probability of every step within 1e-4.

use cambox::faith::measure::{measure, Fill, Settings};
use cambox::faith::perturb::Planes;
use cambox::stage::input_spec::Layout;
use cambox::stage::model::{ActivationChoice, ModelPlan};
use serde_json::Value;

use crate::common::*;

const TOL: f64 = 1e-4;

fn close(id: &str, what: &str, got: f64, want: &Value) {
    let w = want.as_f64().unwrap_or_else(|| panic!("{id}: {what}: {want}"));
    assert!((got - w).abs() <= TOL, "{id}: {what}: {got} vs numpy {w}");
}

#[test]
fn faithfulness_figures_match_the_numpy_port() {
    let dir = root().join("tests/fixtures/faithfulness");
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 9);
    for c in cases {
        let id = c["id"].as_str().unwrap();
        let model = ModelPlan::open(&root().join(c["model"].as_str().unwrap())).unwrap();
        let activation = cambox::plan::activation(ActivationChoice::Auto, model.cut.final_op).unwrap();
        let x = npy(dir.join(format!("x_{id}.npy")));
        let x = Planes::from_tensor(&x.into_dimensionality().unwrap(), Layout::Nchw);
        let map: Vec<f32> = npy(dir.join(format!("map_{id}.npy"))).iter().copied().collect();
        let class = c["class"].as_u64().unwrap() as usize;
        let black: Vec<f32> = c["black"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let s = Settings {
            steps: c["steps"].as_u64().unwrap() as usize,
            fill: serde_json::from_value::<Fill>(c["fill"].clone()).unwrap(),
            black: [black[0], black[1], black[2]],
            road: c["road"].as_bool().unwrap(),
            seed: c["seed"].as_u64().unwrap(),
        };
        let mut score = |p: &Planes| -> Result<f64, String> {
            Ok(activation.probabilities(&model.infer(p.to_tensor(Layout::Nchw))?.logits)[class] as f64)
        };
        let m = measure(&x, &map, &s, &mut score).unwrap();
        let e = &expected[id];
        close(id, "probability", m.probability, &e["probability"]);
        for (what, got) in [("deletion", &m.deletion), ("insertion", &m.insertion)] {
            let want = e[what].as_array().unwrap();
            assert_eq!(got.len(), want.len(), "{id}: {what} steps");
            for (k, (g, w)) in got.iter().zip(want).enumerate() {
                close(id, &format!("{what}[{k}]"), *g, w);
            }
        }
        close(id, "deletion_auc", m.deletion_auc, &e["deletion_auc"]);
        close(id, "insertion_auc", m.insertion_auc, &e["insertion_auc"]);
        for (what, got) in [("road_morf", &m.road_morf), ("road_lerf", &m.road_lerf)] {
            let want = e[what].as_array().unwrap();
            assert_eq!(got.len(), want.len(), "{id}: {what}");
            for (k, (g, w)) in got.iter().zip(want).enumerate() {
                match g {
                    Some(g) => close(id, &format!("{what}[{k}]"), *g, w),
                    None => assert!(w.is_null(), "{id}: {what}[{k}]: none vs {w}"),
                }
            }
        }
        close(id, "drop", m.drop, &e["drop"]);
        assert_eq!(Value::Bool(m.increase), e["increase"], "{id}: increase");
    }
}
