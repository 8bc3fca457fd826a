//! Python values into the library's types: setting values into TOML values, numpy arrays
//! and paths into images to explain, `classes=` into a class selection, spelled names
//! into the library's enums.
//!
//! Arrays are checked here, before any work: a wrong dtype, number of dimensions or
//! channels, or an empty array is an `InputError` saying what was expected, never a crash.

use std::path::PathBuf;

use cambox::config::{ClassRef, ClassesSpec};
use cambox::explain::{pixels, Source};
use cambox::labels::Labels;
use cambox::stage::decode::Samples;
use cambox::stage::localise::ClassSelection;
use numpy::{dtype, PyArrayDescrMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::DeserializeOwned;

use crate::errors::{exception, usage};

/// A setting's value as TOML: bool, int, float, str, a path, a list or tuple of them, a
/// dict (tables such as `taus`); numpy scalars and arrays as their Python values.
pub fn toml_value(name: &str, v: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
    let bad = || usage(format!("{name}: a setting cannot be {} ({v:.80})", type_name(v)));
    if v.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        return v.extract::<i64>().map(toml::Value::Integer).map_err(|_| bad());
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(v.extract()?));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(toml::Value::String(v.extract()?));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = v.try_iter()?.collect::<PyResult<_>>()?;
        return items.iter().map(|i| toml_value(name, i)).collect::<PyResult<Vec<_>>>().map(toml::Value::Array);
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut table = toml::Table::new();
        for (k, item) in d.iter() {
            let key = k.str()?.to_string();
            table.insert(key, toml_value(name, &item)?);
        }
        return Ok(toml::Value::Table(table));
    }
    if v.hasattr("__fspath__")? {
        let os = v.py().import("os")?;
        return toml_value(name, &os.getattr("fspath")?.call1((v,))?);
    }
    // numpy: arrays and scalars become the Python values they stand for.
    if v.hasattr("tolist")? && v.hasattr("dtype")? {
        let plain = v.call_method0("tolist")?;
        if !plain.is(v) && !plain.hasattr("dtype")? {
            return toml_value(name, &plain);
        }
    }
    Err(bad())
}

/// The `(name, value)` settings of Python pairs.
pub fn settings(pairs: Vec<(String, Bound<'_, PyAny>)>) -> PyResult<Vec<(String, toml::Value)>> {
    pairs.into_iter().map(|(k, v)| toml_value(&k, &v).map(|t| (k, t))).collect()
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "this".into())
}

/// A spelled value (`"voc"`, `"half-open"`, `"centre"`) as the library's type, by the
/// spellings it has in the configuration and on the command line.
pub fn spelled<T: DeserializeOwned>(what: &str, s: &str) -> PyResult<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| usage(format!("{what}={s:?}: {e}")))
}

/// What to explain: a path (str or os.PathLike) or a numpy array. `name` is how the image
/// is named in errors and in its rows.
pub fn source(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Source> {
    if let Ok(a) = v.cast::<PyUntypedArray>() {
        return array(name, a);
    }
    if v.is_instance_of::<PyString>() || v.hasattr("__fspath__")? {
        let os = v.py().import("os")?;
        let path: PathBuf = os.getattr("fspath")?.call1((v,))?.extract()?;
        return Ok(Source::File(path));
    }
    Err(usage(format!(
        "{name}: cambox explains a numpy array (H x W or H x W x 3) or the path of an image file, not {}",
        type_name(v)
    )))
}

/// A numpy array as a decoded image: H x W (grey) or H x W x 1 or 3, of uint8 (0-255),
/// uint16 (0-65535, as a 16-bit PNG without sBIT) or float32 (in [0, 1]).
fn array(name: &str, a: &Bound<'_, PyUntypedArray>) -> PyResult<Source> {
    let refuse = |why: String| exception("InputError", format!("{name}: {why}"));
    let shape = a.shape().to_vec();
    let channels = match shape.len() {
        2 => 1,
        3 if matches!(shape[2], 1 | 3) => shape[2],
        3 => {
            return Err(refuse(format!(
                "array of shape {shape:?} has {} channels; cambox takes H x W (grey) or H x W x 3 (RGB){}",
                shape[2],
                if shape[2] == 4 { ": drop the alpha channel, image[..., :3]" } else { "" }
            )))
        }
        n => return Err(refuse(format!("array of {n} dimensions (shape {shape:?}); cambox takes H x W or H x W x 3"))),
    };
    if shape.contains(&0) {
        return Err(refuse(format!("empty array (shape {shape:?})")));
    }
    let py = a.py();
    let dt = a.dtype();
    let (data, bits) = if dt.is_equiv_to(&dtype::<u8>(py)) {
        (Samples::U8(flat::<u8>(a)?), 8)
    } else if dt.is_equiv_to(&dtype::<u16>(py)) {
        (Samples::F32(flat::<u16>(a)?.into_iter().map(|v| v as f32 / 65535.0).collect()), 16)
    } else if dt.is_equiv_to(&dtype::<f32>(py)) {
        (Samples::F32(flat::<f32>(a)?), 32)
    } else {
        let hint = match dt.str()?.to_string().as_str() {
            "float64" => ": convert it with image.astype(np.float32) (values in [0, 1])",
            "bool" => ": convert it with image.astype(np.uint8) * 255",
            _ => "",
        };
        return Err(refuse(format!("array of dtype {}; cambox takes uint8, uint16 or float32{hint}", dt.str()?)));
    };
    pixels(shape[1], shape[0], channels, data, bits).map(Source::Pixels).map_err(|e| refuse(e.to_string()))
}

/// The samples of an array of `T`, row-major whatever its strides.
fn flat<T: numpy::Element + Copy>(a: &Bound<'_, PyUntypedArray>) -> PyResult<Vec<T>> {
    let typed: PyReadonlyArrayDyn<'_, T> = a.extract()?;
    Ok(match typed.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => typed.as_array().iter().copied().collect(),
    })
}

/// `classes=`: `"top1"`, `"topk:K"`, `"above:P"`, a class index or name, or a list of
/// indices and names, resolved as `[localise] classes` is.
pub fn classes(v: &Bound<'_, PyAny>, labels: &Labels) -> PyResult<ClassSelection> {
    let one = |item: &Bound<'_, PyAny>| -> PyResult<ClassRef> {
        if let Ok(i) = item.extract::<usize>() {
            return Ok(ClassRef::Index(i));
        }
        match item.extract::<String>() {
            Ok(s) => Ok(ClassRef::Name(s)),
            Err(_) => Err(usage(format!("classes: {} is neither a class index nor a name", type_name(item)))),
        }
    };
    let spec = if let Ok(rule) = v.extract::<String>() {
        let is_rule = rule == "top1" || rule.starts_with("topk:") || rule.starts_with("above:");
        match is_rule {
            true => ClassesSpec::Rule(rule),
            false => ClassesSpec::List(vec![ClassRef::Name(rule)]),
        }
    } else if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = v.try_iter()?.collect::<PyResult<_>>()?;
        ClassesSpec::List(items.iter().map(one).collect::<PyResult<_>>()?)
    } else {
        ClassesSpec::List(vec![one(v)?])
    };
    cambox::plan::class_selection(&spec, labels, labels.len()).map_err(|e| usage(format!("classes={v:.80}: {e}")))
}
