//! Typed errors at the library boundary.
//!
//! Two types exist because they have different fates: an [`Error`] stops the command (a
//! bad option, a configuration or model that cannot be used, an output folder that cannot
//! be written), while an [`ImageError`] belongs to one input file, becomes one `error`
//! row in `images.csv`, and the run goes on.
//!
//! Every [`Error`] is of one [`ErrorKind`], which decides the exit status the README
//! promises: usage (2) for options that contradict each other or name nothing, input (1)
//! for files the user gave that cannot be used (configuration, model, annotations, class
//! map, a run folder), fault (1) for what the machine did (I/O, an output folder that
//! cannot be written). `run`, `eval`, `inspect` and `merge` all raise this one type.

use std::path::PathBuf;

/// A fatal error: the run cannot start or cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("model {path}: {message}")]
    Model { path: PathBuf, message: String },
    /// The I/O error is shown in the message and is not also the error's `source`, so a
    /// chain of causes says it once ("No space left on device (os error 28)").
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("output {path}: {message}")]
    Output { path: PathBuf, message: String },
    #[error("annotations {path}: {message}")]
    Annotations { path: PathBuf, message: String },
    #[error("class map {path}: {message}")]
    ClassMap { path: PathBuf, message: String },
    /// A run's output folder read back (`eval`, `merge`).
    #[error("run folder {path}: {message}")]
    RunFolder { path: PathBuf, message: String },
    /// Options that contradict each other or name nothing (exit status 2).
    #[error("{0}")]
    Usage(String),
}

/// What an [`Error`] is about, which decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line or its combination with the configuration: exit 2.
    Usage,
    /// A file the user gave that cannot be used: exit 1.
    Input,
    /// The machine: reading or writing failed: exit 1.
    Fault,
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), error: source }
    }
    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config { path: path.into(), message: message.into() }
    }
    pub fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Model { path: path.into(), message: message.into() }
    }
    pub fn output(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Output { path: path.into(), message: message.into() }
    }
    pub fn annotations(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Annotations { path: path.into(), message: message.into() }
    }
    pub fn class_map(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::ClassMap { path: path.into(), message: message.into() }
    }
    pub fn run_folder(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::RunFolder { path: path.into(), message: message.into() }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) => ErrorKind::Usage,
            Error::Config { .. }
            | Error::Model { .. }
            | Error::Annotations { .. }
            | Error::ClassMap { .. }
            | Error::RunFolder { .. } => ErrorKind::Input,
            Error::Io { .. } | Error::Output { .. } => ErrorKind::Fault,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one input image could not be processed. Its `Display` is the one-line reason
/// written to the `error` column.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read: {0}")]
    Read(String),
    #[error("cannot decode: {0}")]
    Decode(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("preprocessing failed: {0}")]
    Preprocess(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("class maps failed: {0}")]
    Maps(String),
    /// The output folder as a whole cannot be written: stops the run.
    #[error("{0}")]
    Write(String),
    /// One of this image's artefacts cannot be made: an error row, the run goes on.
    #[error("{0}")]
    Artefact(String),
    #[error("panic while processing: {0}")]
    Panic(String),
}

impl ImageError {
    /// The reason as exactly one line, as `images.csv` requires.
    pub fn one_line(&self) -> String {
        let s = self.to_string();
        let mut out = String::with_capacity(s.len());
        for (i, part) in s.split(['\n', '\r']).filter(|p| !p.trim().is_empty()).enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            out.push_str(part.trim());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_is_said_once_in_a_chain_of_causes() {
        let e = anyhow::Error::new(Error::io("/out/masks/a.png", std::io::Error::from_raw_os_error(28)))
            .context("run into /out stopped");
        let text = format!("{e:#}");
        assert_eq!(text.matches("os error 28").count(), 1, "{text}");
        assert!(text.starts_with("run into /out stopped: /out/masks/a.png: "), "{text}");
    }
}
