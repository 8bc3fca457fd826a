//! `cambox run` on real files: bad inputs, DICOM, JPEG scaling, multi-label output, overnight runs, resume and Slurm;
//! and `cambox::explain`, the same trip in memory, against what `run` writes.
//!
//! One test binary per concern (each binary links the library once, so a few
//! binaries build and start faster than one per file).

#[path = "../common/mod.rs"]
mod common;

mod bad_inputs;
mod dicom;
mod explain;
mod faithfulness;
mod jpeg_scaling;
mod multilabel;
mod overnight;
mod resume;
mod slurm;
mod usage;
