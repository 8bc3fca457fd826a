//! A memory budget shared by the workers: how many bytes of images may be in flight.
//!
//! An image's memory grows with its pixels (its decoded samples, its class maps and masks
//! at original resolution, its overlay), so a folder of 100-megapixel photos processed two
//! at a time needs twice what one needs, and a run's peak memory would depend on which
//! images happen to meet. Each worker first asks the budget for what its image will need
//! (estimated from the header, before any pixel is decoded) and gives it back when the
//! image is done: small images run side by side as before, a large one waits until there
//! is room, and one that needs more than the whole budget runs alone (it is given the
//! whole budget). The estimate is [`ImageCost`]'s.

use std::sync::{Condvar, Mutex};

/// Bytes of image memory the workers may hold at once.
#[derive(Debug)]
pub struct MemoryBudget {
    total: u64,
    free: Mutex<u64>,
    freed: Condvar,
}

/// Credit taken from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Credit<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    pub fn new(total: u64) -> MemoryBudget {
        MemoryBudget { total, free: Mutex::new(total), freed: Condvar::new() }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Waits until `bytes` (at most the whole budget) are free, and takes them.
    pub fn acquire(&self, bytes: u64) -> Credit<'_> {
        let want = bytes.min(self.total);
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free < want {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= want;
        Credit { budget: self, bytes: want }
    }
}

impl Drop for Credit<'_> {
    fn drop(&mut self) {
        let mut free = self.budget.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += self.bytes;
        self.budget.freed.notify_all();
    }
}

/// What an image of a given size will hold at most, by what the run makes of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageCost {
    /// Bytes per original pixel besides the decoded samples: the normalised map at
    /// original resolution (4), its 8-bit levels for quantised recipes (1), a copy of its
    /// values for distribution thresholds (4), the mask (1), an overlay (3), a grey copy of
    /// an RGB image for a one-channel model (4).
    pub per_pixel: f64,
}

impl ImageCost {
    /// The bytes an image of `w` x `h` pixels with `channels` samples of
    /// `bytes_per_sample` each will need at most.
    pub fn bytes(&self, w: u32, h: u32, channels: u32, bytes_per_sample: u32) -> u64 {
        let pixels = w as f64 * h as f64;
        // The decoder's own buffer and the samples it hands on (16-bit images become f32).
        let decoded = channels as f64 * if bytes_per_sample <= 1 { 1.0 } else { bytes_per_sample as f64 + 4.0 };
        (pixels * (decoded + self.per_pixel)).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn small_images_share_the_budget_and_a_large_one_runs_alone() {
        let budget = Arc::new(MemoryBudget::new(100));
        let held = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            for want in [30u64, 30, 30, 250, 30, 60, 30] {
                let (budget, held, most) = (budget.clone(), held.clone(), most.clone());
                s.spawn(move || {
                    let c = budget.acquire(want);
                    let now = held.fetch_add(c.bytes, Ordering::SeqCst) + c.bytes;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    held.fetch_sub(c.bytes, Ordering::SeqCst);
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 100, "never more than the budget at once");
        assert_eq!(*budget.free.lock().unwrap(), 100, "all given back");
    }

    #[test]
    fn costs_grow_with_pixels_and_what_is_made() {
        let c = ImageCost { per_pixel: 8.0 };
        assert_eq!(c.bytes(1000, 1000, 3, 1), 11_000_000);
        assert_eq!(c.bytes(1000, 1000, 1, 2), 14_000_000, "16-bit: the raw samples and their f32");
    }
}
