//! Why `cambox eval` could not produce a report.
//!
//! Problems with single annotation rows are not errors: they are counted in
//! [`crate::truth::annotations::Issues`] and reported. An [`EvalError`] is what stops the
//! evaluation: a file that cannot be read at all, an annotation file of no known format,
//! a run folder without `boxes.csv`, a bad option.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The I/O error is shown in the message and is not also the error's `source`, so a
    /// chain of causes says it once ("No space left on device (os error 28)").
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("annotations {path}: {message}")]
    Annotations { path: PathBuf, message: String },
    #[error("class map {path}: {message}")]
    ClassMap { path: PathBuf, message: String },
    #[error("run folder {path}: {message}")]
    Run { path: PathBuf, message: String },
    #[error("output {path}: {message}")]
    Output { path: PathBuf, message: String },
    /// A bad option or combination of options (exit status 2).
    #[error("{0}")]
    Usage(String),
}

impl From<crate::truth::TruthError> for EvalError {
    fn from(e: crate::truth::TruthError) -> Self {
        use crate::truth::TruthError as T;
        match e {
            T::Io { path, error } => EvalError::Io { path, error },
            T::Annotations { path, message } => EvalError::Annotations { path, message },
            T::ClassMap { path, message } => EvalError::ClassMap { path, message },
        }
    }
}

impl EvalError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io { path: path.into(), error: source }
    }
    pub fn annotations(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EvalError::Annotations { path: path.into(), message: message.into() }
    }
    pub fn run(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EvalError::Run { path: path.into(), message: message.into() }
    }
    pub fn output(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EvalError::Output { path: path.into(), message: message.into() }
    }
}
