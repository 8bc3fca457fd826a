//! Running a plan: the parallel [`pipeline`] from discovery to the written row, one
//! image's trip through the stages ([`image`]), resuming an
//! earlier run in the same folder ([`resume`]), one run per folder ([`lock`]), the memory
//! the workers' images may hold ([`budget`]), merging the
//! folders of a sharded run ([`merge`]), progress on stderr ([`progress`]) and where the
//! time went ([`timing`]).

pub mod budget;
pub mod image;
pub mod lock;
pub mod pipeline;
pub mod resume;
pub mod merge;
pub mod progress;
pub mod timing;
