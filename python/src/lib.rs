//! The Python binding: the extension module `cambox._native` of the `cambox` package
//! (`python/python/cambox/`), built by maturin (`python/pyproject.toml`).
//!
//! It converts and does nothing else: Python values into the library's types (numpy
//! arrays into decoded images, keyword arguments into configuration settings,
//! [`convert`]), the library's results into numpy arrays and dicts ([`results`]), and its
//! errors into the package's exceptions ([`errors`]). Every step of the work is the
//! library's, the one the `cambox` command runs ([`cambox::explain`] for [`model`],
//! [`cambox::run::pipeline`] and [`cambox::eval`] for [`batch`]), so the package and the
//! command give the same results. The Python API over these functions (`Model`, `run`,
//! `evaluate`, `read_run`, the exceptions) is in `python/python/cambox/`.
//!
//! The library forbids `unsafe`; this crate cannot: PyO3's and rust-numpy's macros and
//! conversions generate it for the calls into CPython. None is written here by hand.
//!
//! The GIL is released while the library works ([`drive`]), which also lets Ctrl-C stop a
//! long call the way SIGINT stops the command. No panic crosses into Python: each image's
//! trip catches its own ([`cambox::explain::explain`]), and every entry point runs inside
//! [`errors::guarded`], which turns a panic into an exception.

mod batch;
mod convert;
mod drive;
mod errors;
mod model;
mod results;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    check_cpu()?;
    m.add_class::<model::NativeModel>()?;
    m.add_function(wrap_pyfunction!(batch::run, m)?)?;
    m.add_function(wrap_pyfunction!(batch::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(batch::setting_keys, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// Refuses to import, with a message, on a CPU without the instructions the wheel was
/// compiled for (the repository builds for x86-64-v3, `.cargo/config.toml`), rather than
/// let the interpreter die of an illegal instruction later: what `cambox`'s `main` does.
fn check_cpu() -> PyResult<()> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut missing = Vec::new();
        if cfg!(target_feature = "avx2") && !std::arch::is_x86_feature_detected!("avx2") {
            missing.push("AVX2");
        }
        if cfg!(target_feature = "fma") && !std::arch::is_x86_feature_detected!("fma") {
            missing.push("FMA");
        }
        if cfg!(target_feature = "bmi2") && !std::arch::is_x86_feature_detected!("bmi2") {
            missing.push("BMI2");
        }
        if !missing.is_empty() {
            return Err(pyo3::exceptions::PyImportError::new_err(format!(
                "this cambox wheel was built for x86-64-v3 but this CPU lacks {}; build it with \
                 RUSTFLAGS=\"-C target-cpu=x86-64\" pip install ./python",
                missing.join(", ")
            )));
        }
    }
    Ok(())
}
