//! `cambox eval` and its figures: the CLI, the metrics against numpy, multi-class and truth tables, wsolevaluation parity and the report in a browser.
//!
//! One test binary per concern (each binary links the library once, so a few
//! binaries build and start faster than one per file).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod figures;
mod metrics;
mod multiclass;
mod report_browser;
mod splits;
mod truth;
mod wsol_parity;
