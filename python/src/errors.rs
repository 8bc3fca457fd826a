//! The library's errors as the package's exceptions, with the command's messages.
//!
//! The exception classes are Python classes (`cambox._errors`), not created here: under
//! the stable ABI a Rust type cannot subclass a Python exception before 3.12, and the
//! classes want two bases (`UsageError` is also a `ValueError`, `OutputError` an
//! `OSError`).
//!
//! | library | exception |
//! | --- | --- |
//! | `Error::Model` | `ModelError` |
//! | kind `Usage` (and a bad keyword argument) | `UsageError` |
//! | kind `Input` (configuration, annotations, class map, run folder) | `InputError` |
//! | kind `Fault` (reading or writing failed) | `OutputError` |
//! | `ImageError` (one image) | `InputError`, naming the image |
//! | a panic | `CamboxError` (the base class) |

use std::panic::AssertUnwindSafe;

use cambox::{Error, ErrorKind, ImageError};
use pyo3::prelude::*;
use pyo3::types::PyType;

/// An exception of class `class` (in `cambox._errors`) with `message`.
pub fn exception(class: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        let class = py.import("cambox._errors").and_then(|m| m.getattr(class));
        match class.map(|c| c.cast_into::<PyType>()) {
            Ok(Ok(t)) => PyErr::from_type(t, message),
            Ok(Err(e)) => e.into(),
            Err(e) => e,
        }
    })
}

/// A bad argument: `UsageError`.
pub fn usage(message: impl Into<String>) -> PyErr {
    exception("UsageError", message)
}

/// The library's error, as the command says it after `cambox: error: `.
pub fn library(e: Error) -> PyErr {
    let class = match (&e, e.kind()) {
        (Error::Model { .. }, _) => "ModelError",
        (_, ErrorKind::Usage) => "UsageError",
        (_, ErrorKind::Input) => "InputError",
        (_, ErrorKind::Fault) => "OutputError",
    };
    exception(class, e.to_string())
}

/// One image's failure, naming the image as a run's `error` row does.
pub fn image(name: &str, e: &ImageError) -> PyErr {
    exception("InputError", format!("{name}: {}", e.one_line()))
}

/// `f()`, with a panic turned into an exception instead of crossing into Python.
pub fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = cambox::run::image::panic_message(p.as_ref());
        Err(exception("CamboxError", format!("internal error (a panic in cambox, please report it): {what}")))
    })
}
