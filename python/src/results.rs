//! The library's results as Python values: an explanation as a dict of numpy arrays and
//! plain values (the Python package wraps it in `cambox.Explanation`), and any serde value
//! (`run.json`'s sections, `summary.json`) as the dicts and lists `json.loads` would give.

use cambox::explain::Explanation;
use cambox::output::boxes_csv::BoxRow;
use cambox::output::images_csv::ImageRow;
use ndarray::{Array2, Array3};
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde::Serialize;

/// A serde value as Python's `json.loads` of its JSON would give it.
pub fn json<'py>(py: Python<'py>, v: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(v).map_err(|e| crate::errors::exception("CamboxError", e.to_string()))?;
    value_to_py(py, &value)
}

fn value_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => py.None().into_bound(py),
        J::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u), _) => u.into_pyobject(py)?.into_any(),
            (_, _, f) => f.unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        J::String(s) => s.into_pyobject(py)?.into_any(),
        J::Array(items) => {
            let list = PyList::empty(py);
            for i in items {
                list.append(value_to_py(py, i)?)?;
            }
            list.into_any()
        }
        J::Object(map) => {
            let d = PyDict::new(py);
            for (k, i) in map {
                d.set_item(k, value_to_py(py, i)?)?;
            }
            d.into_any()
        }
    })
}

/// One explanation as a dict (see `cambox.Explanation` for the fields).
pub fn explanation<'py>(py: Python<'py>, e: Explanation) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("width", e.info.width)?;
    d.set_item("height", e.info.height)?;
    d.set_item("probabilities", e.prediction.probs.into_pyarray(py))?;
    d.set_item("logits", e.prediction.logits.into_pyarray(py))?;
    let top: Vec<(usize, f32)> = e.image_row.top_k.0.iter().map(|&(k, p)| (k, p as f32)).collect();
    d.set_item("top_k", top)?;
    d.set_item("logit_check", e.logit_check)?;
    d.set_item("geometry", json(py, &e.geometry)?)?;
    d.set_item("row", image_row(py, &e.image_row)?)?;
    let boxes = PyList::empty(py);
    for b in &e.box_rows {
        boxes.append(box_row(py, b)?)?;
    }
    d.set_item("boxes", boxes)?;
    let (maps, masks, overlays) = (PyDict::new(py), PyDict::new(py), PyDict::new(py));
    let classes: Vec<usize> = e.classes.iter().map(|l| l.class).collect();
    let mut pictures = e.overlays.into_iter();
    for l in e.classes {
        let shape = (l.height as usize, l.width as usize);
        let map = Array2::from_shape_vec(shape, l.map).map_err(shape_error)?;
        let mask = Array2::from_shape_vec(shape, l.mask.into_iter().map(|v| v != 0).collect()).map_err(shape_error)?;
        maps.set_item(l.class, map.into_pyarray(py))?;
        masks.set_item(l.class, mask.into_pyarray(py))?;
        if let Some(o) = pictures.next() {
            let (w, h) = o.dimensions();
            let rgb = Array3::from_shape_vec((h as usize, w as usize, 3), o.into_raw()).map_err(shape_error)?;
            overlays.set_item(l.class, rgb.into_pyarray(py))?;
        }
    }
    d.set_item("classes", classes)?;
    d.set_item("maps", maps)?;
    d.set_item("masks", masks)?;
    d.set_item("overlays", overlays)?;
    match e.maps {
        Some(m) => {
            d.set_item("raw_classes", m.classes)?;
            d.set_item("raw_maps", m.maps.into_pyarray(py))?;
        }
        None => {
            d.set_item("raw_classes", Vec::<usize>::new())?;
            d.set_item("raw_maps", py.None())?;
        }
    }
    d.set_item("passes", e.passes)?;
    Ok(d)
}

fn shape_error(e: ndarray::ShapeError) -> PyErr {
    crate::errors::exception("CamboxError", format!("internal error: {e}"))
}

/// The `images.csv` row, its numbers as numbers.
fn image_row<'py>(py: Python<'py>, r: &ImageRow) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &r.path)?;
    d.set_item("status", "ok")?;
    d.set_item("width", r.width)?;
    d.set_item("height", r.height)?;
    d.set_item("class_index", r.class_index)?;
    d.set_item("class_name", &r.class_name)?;
    d.set_item("score", r.score.map(|s| s.0))?;
    d.set_item("logit_check", r.logit_check.map(|s| s.0))?;
    d.set_item("ms", r.ms.0)?;
    d.set_item("frames", r.frames)?;
    d.set_item("pixel_spacing", r.pixel_spacing.map(|s| (s.0, s.1)))?;
    d.set_item("patient_id", &r.patient_id)?;
    d.set_item("study_uid", &r.study_uid)?;
    d.set_item("sop_instance_uid", &r.sop_instance_uid)?;
    Ok(d)
}

/// A `boxes.csv` row, its numbers as numbers (unrounded: the file has 6 decimals).
fn box_row<'py>(py: Python<'py>, b: &BoxRow) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &b.path)?;
    d.set_item("class_index", b.class_index)?;
    d.set_item("class_name", &b.class_name)?;
    d.set_item("score", b.score.0)?;
    d.set_item("box_score", b.box_score.0)?;
    d.set_item("x1", b.x1)?;
    d.set_item("y1", b.y1)?;
    d.set_item("x2", b.x2)?;
    d.set_item("y2", b.y2)?;
    d.set_item("component_area", b.component_area)?;
    d.set_item("threshold", b.threshold.0)?;
    d.set_item("threshold_rule", b.threshold_rule.to_string())?;
    d.set_item("preset", b.preset.name())?;
    d.set_item("method", b.method.name())?;
    Ok(d)
}
