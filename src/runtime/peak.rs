//! The machine's measured peaks, the yardsticks of `nnc run --profile`
//! and the codegen benchmark: one core's FMA throughput (independent FMA
//! chains on AVX-512, else AVX2, vectors) and its memory bandwidth.

use std::time::Instant;

pub fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return "AVX2+FMA";
        }
    }
    "scalar"
}

/// One core's GFLOP/s on twelve independent FMA chains of the widest
/// vectors, best of five runs of about 10 ms.
pub fn fma_gflops() -> f64 {
    let iters = 2_000_000u64;
    let (lanes, f): (u64, fn(u64) -> f32) = peak_kernel();
    let secs = best_of(5, || {
        std::hint::black_box(f(std::hint::black_box(iters)));
    });
    (iters * 12 * lanes * 2) as f64 / secs / 1e9
}

/// One core's bytes/s copying a buffer far larger than the caches (read
/// and write both counted), best of five.
pub fn memory_gbps() -> f64 {
    let n = 32 << 20;
    let src = vec![1.0f32; n / 4];
    let mut dst = vec![0.0f32; n / 4];
    let secs = best_of(5, || {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    });
    (2 * n) as f64 / secs / 1e9
}

fn best_of(rounds: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

#[cfg(target_arch = "x86_64")]
fn peak_kernel() -> (u64, fn(u64) -> f32) {
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was detected at run time.
        return (16, |n| unsafe { fma_zmm(n) });
    }
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the feature was detected at run time.
        return (8, |n| unsafe { fma_ymm(n) });
    }
    (1, fma_scalar)
}

#[cfg(not(target_arch = "x86_64"))]
fn peak_kernel() -> (u64, fn(u64) -> f32) {
    (1, fma_scalar)
}

fn fma_scalar(n: u64) -> f32 {
    let mut a = [1.0f32; 12];
    for _ in 0..n {
        for x in &mut a {
            *x = x.mul_add(0.999_999, 1e-7);
        }
    }
    a.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_zmm(n: u64) -> f32 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut a = [_mm512_set1_ps(1.0); 12];
    for _ in 0..n {
        for x in &mut a {
            *x = _mm512_fmadd_ps(*x, m, c);
        }
    }
    let s = a.iter().fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x));
    _mm512_reduce_add_ps(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_ymm(n: u64) -> f32 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut a = [_mm256_set1_ps(1.0); 12];
    for _ in 0..n {
        for x in &mut a {
            *x = _mm256_fmadd_ps(*x, m, c);
        }
    }
    let mut out = [0.0f32; 8];
    let s = a.iter().fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
    // SAFETY: `out` holds eight floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
    out.iter().sum()
}
