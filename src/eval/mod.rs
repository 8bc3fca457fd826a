//! `cambox eval`: scores a run's boxes against ground-truth annotations.

pub mod annotations;
pub mod error;
pub mod matching;
pub mod metrics;
pub mod run_files;
