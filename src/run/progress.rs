//! Progress reporting: a bar with rate and ETA on a terminal, plain periodic lines
//! otherwise (log files of cluster jobs cannot render a bar).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Seconds between plain progress lines when stderr is not a terminal.
const LOG_EVERY_SECS: u64 = 10;

/// The first plain line comes this soon, so a log shows at once that the run started and
/// how fast it goes.
const FIRST_LINE_SECS: u64 = 1;

pub enum Progress {
    Bar(ProgressBar, u64),
    Lines { total: u64, done: u64, errors: u64, start: Instant, last: Option<Instant> },
    Quiet,
}

impl Progress {
    pub fn new(total: u64, quiet: bool) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}  {msg}")
                    .expect("static template"),
            );
            Progress::Bar(bar, 0)
        } else {
            Progress::Lines { total, done: 0, errors: 0, start: Instant::now(), last: None }
        }
    }

    pub fn inc(&mut self, error: bool) {
        match self {
            Progress::Bar(b, errors) => {
                b.inc(1);
                if error {
                    *errors += 1;
                    b.set_message(format!("{errors} errors"));
                }
            }
            Progress::Lines { total, done, errors, start, last } => {
                *done += 1;
                *errors += error as u64;
                if line_due(start.elapsed(), last.map(|l| l.elapsed())) || *done == *total {
                    *last = Some(Instant::now());
                    let rate = *done as f64 / start.elapsed().as_secs_f64().max(1e-9);
                    let eta = (*total - (*done).min(*total)) as f64 / rate.max(1e-9);
                    eprintln!("cambox: {done}/{total} images, {rate:.1} images/s, ETA {eta:.0} s, {errors} errors");
                }
            }
            Progress::Quiet => {}
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(b, _) = self {
            b.finish();
        }
    }
}

/// Whether a plain line is due: the first [`FIRST_LINE_SECS`] after the start, then every
/// [`LOG_EVERY_SECS`] after the previous one.
fn line_due(since_start: Duration, since_last: Option<Duration>) -> bool {
    match since_last {
        None => since_start >= Duration::from_secs(FIRST_LINE_SECS),
        Some(d) => d >= Duration::from_secs(LOG_EVERY_SECS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_comes_after_a_second_then_every_ten() {
        let s = Duration::from_secs_f64;
        assert!(!line_due(s(0.5), None));
        assert!(line_due(s(1.0), None));
        assert!(!line_due(s(30.0), Some(s(9.9))));
        assert!(line_due(s(30.0), Some(s(10.0))));
    }
}
