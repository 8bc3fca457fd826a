//! `cambox.Model`'s native half: a plan built once (the model loaded, cut and proved, as
//! `cambox run` does at start-up) and its worker threads, explaining images on demand.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use cambox::explain::{configuration, explain, Explainer, Source};
use cambox::plan::RunPlan;
use cambox::stage::decode::Samples;
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{classes, settings, source};
use crate::drive::drive;
use crate::errors::{guarded, image, library};
use crate::results::{explanation, json};

/// The name configuration errors give when there is no configuration file.
const NO_FILE: &str = "(keyword arguments)";

#[pyclass(frozen, module = "cambox._native", name = "Model")]
pub struct NativeModel {
    explainer: Explainer,
}

#[pymethods]
impl NativeModel {
    /// Loads the model: `config` is a TOML file as `cambox run` reads it (or `None`), and
    /// `settings` are `(name, value)` pairs put into it (`("model.path", ...)`,
    /// `("input_size", (480, 320))`).
    #[new]
    fn new(py: Python<'_>, config: Option<PathBuf>, settings_: Vec<(String, Bound<'_, PyAny>)>) -> PyResult<Self> {
        guarded(|| {
            let settings = settings(settings_)?;
            let explainer = py.detach(|| {
                let config_path = config.clone().unwrap_or_else(|| PathBuf::from(NO_FILE));
                let cfg = configuration(config.as_deref(), settings)?;
                Explainer::new(RunPlan::for_images(cfg, &config_path)?)
            });
            Ok(NativeModel { explainer: explainer.map_err(library)? })
        })
    }

    /// What the plan is: labels, input, method, activation, passes, the cut (as `run.json`
    /// says it), the configuration after the settings, the threads.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| self.describe(py))
    }

    /// Explains `items`, `(name, path or array)` pairs, in parallel without the GIL, in
    /// order. Each result is a dict, or the `InputError` of that image (returned, not
    /// raised: the caller decides). `classes` replaces `[localise] classes`; `progress`
    /// is called with the number done so far.
    #[pyo3(signature = (items, classes_=None, progress=None))]
    fn explain<'py>(
        &self,
        py: Python<'py>,
        items: Vec<(String, Bound<'py, PyAny>)>,
        classes_: Option<Bound<'py, PyAny>>,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        guarded(|| {
            let plan = &self.explainer.plan;
            let selection = classes_.map(|c| classes(&c, &plan.labels)).transpose()?;
            let names: Vec<String> = items.iter().map(|(n, _)| n.clone()).collect();
            let sources: Vec<(String, Source)> =
                items.iter().map(|(n, v)| source(n, v).map(|s| (n.clone(), s))).collect::<PyResult<_>>()?;
            let cancel = AtomicBool::new(false);
            let results = match (sources.len(), &progress) {
                // One image: on this thread, no pool, no polling (nothing to report).
                (1, None) => {
                    let (name, src) = sources.into_iter().next().expect("one");
                    vec![Some(py.detach(|| explain(plan, &name, src, selection.as_ref())))]
                }
                _ => {
                    let tick = |_: Python<'_>, n: usize| match &progress {
                        Some(f) => f.call1((n,)).map(|_| ()),
                        None => Ok(()),
                    };
                    drive(py, &cancel, tick, |done| {
                        self.explainer.explain_all(sources, selection.as_ref(), done, &cancel)
                    })?
                }
            };
            let out = PyList::empty(py);
            for (name, r) in names.iter().zip(results) {
                match r {
                    Some(Ok(e)) => out.append(explanation(py, e)?)?,
                    Some(Err(e)) => out.append(image(name, &e).into_value(py))?,
                    None => out.append(py.None())?,
                }
            }
            Ok(out)
        })
    }

    /// The pixels of an image file as this model's decoder reads them: uint8 for 8-bit
    /// files, float32 in [0, 1] otherwise (16-bit, DICOM after its LUTs); H x W for grey,
    /// H x W x 3 for colour.
    fn read_image<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let decoder = &self.explainer.plan.decoder;
            let name = path.display().to_string();
            let img = py.detach(|| decoder.decode_file(&path)).map_err(|e| image(&name, &e))?;
            let (h, w, c) = (img.height as usize, img.width as usize, img.channels);
            let shape: Vec<usize> = if c == 1 { vec![h, w] } else { vec![h, w, c] };
            let array = match img.data {
                Samples::U8(v) => ndarray::ArrayD::from_shape_vec(shape, v).map(|a| a.into_pyarray(py).into_any()),
                Samples::F32(v) => ndarray::ArrayD::from_shape_vec(shape, v).map(|a| a.into_pyarray(py).into_any()),
            };
            array.map_err(|e| crate::errors::exception("CamboxError", format!("internal error: {e}")))
        })
    }
}

impl NativeModel {
    /// [`NativeModel::info`]'s dict.
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let plan = &self.explainer.plan;
        let d = PyDict::new(py);
        let names: Vec<&str> = (0..plan.labels.len()).map(|k| plan.labels.name(k)).collect();
        d.set_item("labels", names)?;
        d.set_item("method", plan.method.name())?;
        d.set_item("method_reason", plan.method_reason.as_deref())?;
        d.set_item("activation", plan.activation.name())?;
        let sizes: Vec<(usize, usize, bool)> = plan.passes.iter().map(|p| (p.size()[0], p.size()[1], p.flip)).collect();
        d.set_item("passes", sizes)?;
        d.set_item("top_k", plan.top_k)?;
        d.set_item("threads", plan.threads)?;
        d.set_item("localise", json(py, &plan.localiser.recipe)?)?;
        d.set_item("model", json(py, &plan.model_report())?)?;
        d.set_item("config", json(py, &plan.config)?)?;
        Ok(d)
    }
}
