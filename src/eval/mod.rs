//! `cambox eval`: scores a run's boxes against ground-truth annotations.

pub mod metrics;
