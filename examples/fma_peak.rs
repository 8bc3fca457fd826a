//! This core's fused multiply-add peak, the yardstick of the per-op GFLOP/s in
//! docs/performance.md: twelve independent FMA chains per vector width, one thread.
//! `cargo run --release --example fma_peak` (x86_64 with AVX2 and FMA; AVX-512 if present).

#[cfg(target_arch = "x86_64")]
mod peak {
    use std::arch::x86_64::*;
    use std::time::Instant;

    const CHAINS: usize = 12;

    #[target_feature(enable = "avx512f,fma,avx2")]
    unsafe fn run512(n: usize) -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        let (b, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..n {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, b, c);
            }
        }
        acc.iter().map(|a| _mm512_reduce_add_ps(*a)).sum()
    }

    #[target_feature(enable = "fma,avx2")]
    unsafe fn run256(n: usize) -> f32 {
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        let (b, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..n {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, b, c);
            }
        }
        let mut lanes = [0f32; 8];
        acc.iter()
            .map(|a| {
                _mm256_storeu_ps(lanes.as_mut_ptr(), *a);
                lanes.iter().sum::<f32>()
            })
            .sum()
    }

    pub fn main() {
        let n = 100_000_000;
        let gflops = |lanes: usize, secs: f64| (n * CHAINS * lanes * 2) as f64 / secs / 1e9;
        if std::arch::is_x86_feature_detected!("avx512f") {
            let t = Instant::now();
            let s = unsafe { run512(n) };
            println!("AVX-512 FMA: {:.1} GFLOP/s (checksum {s})", gflops(16, t.elapsed().as_secs_f64()));
        }
        if std::arch::is_x86_feature_detected!("fma") {
            let t = Instant::now();
            let s = unsafe { run256(n) };
            println!("AVX2 FMA:    {:.1} GFLOP/s (checksum {s})", gflops(8, t.elapsed().as_secs_f64()));
        }
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    peak::main();
}
