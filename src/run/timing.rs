//! Where a run's time goes, stage by stage.
//!
//! Every image is timed per stage by the worker that processes it (an `Instant` per stage
//! boundary: nanoseconds against milliseconds of work), and the writer sums the stages
//! into `run.json`. So every run, not only a benchmark, tells whether it was bound by the
//! network or by what surrounds it, and `scripts/bench/run.sh` quotes these totals as its
//! per-stage profile. Worker seconds, not wall seconds: with N workers they add up to about
//! N times the wall time.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Seconds spent in each stage, summed over images and workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    /// Reading and decoding the file.
    pub decode: f64,
    /// Resizing, cropping and normalising into the network's input.
    pub preprocess: f64,
    /// The cut network in tract.
    pub network: f64,
    /// Logits, the head's gradients where the method needs them, the class maps.
    pub maps: f64,
    /// Upsampling, inverse geometry, thresholds, components, boxes.
    pub localise: f64,
    /// Encoding and writing masks, overlays and maps.
    pub write: f64,
}

impl StageTimes {
    pub fn add(&mut self, o: &StageTimes) {
        self.decode += o.decode;
        self.preprocess += o.preprocess;
        self.network += o.network;
        self.maps += o.maps;
        self.localise += o.localise;
        self.write += o.write;
    }
}

/// Lap timer: each call returns the seconds since the previous one.
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    /// Seconds since the start or the last lap, without starting a new lap.
    pub fn elapsed(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }

    pub fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let s = (now - self.0).as_secs_f64();
        self.0 = now;
        s
    }
}

/// The `time` section of `run.json`: this invocation's images only (a resumed run does
/// not know how long the earlier ones took).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeReport {
    /// Wall-clock seconds from the first image handed to a worker to the last row written.
    pub wall_seconds: f64,
    /// Images processed by this invocation (ok and error).
    pub images: u64,
    pub threads: usize,
    /// Worker seconds per stage, summed over images.
    pub stage_seconds: StageTimes,
}
