//! The shape of the code itself: module graphs without cycles, stages that do not reach back.
//!
//! One test binary per concern (each binary links the library once, so a few
//! binaries build and start faster than one per file).

mod module_graph;
