//! Functions that generated code calls by symbol. They take raw pointers
//! and sizes from the schedule, which guarantees they describe live,
//! in-bounds buffers; none of them can panic.

use crate::codegen::RtCall;
use gemm::Parallelism;
use std::cell::RefCell;

/// `c[b] = a[b] * b[b]` for `b < batch`: `a` is m x k with strides
/// (`a_rs`, `a_cs`), `b` is k x n with (`b_rs`, `b_cs`), `c` is m x n with
/// (`c_rs`, `c_cs`); `*_bs` step from one batch entry to the next; strides
/// in elements.
///
/// # Safety
/// Every element addressed through the sizes and strides must be valid,
/// and `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn nnc_rt_sgemm(
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    batch: i64,
    m: i64,
    n: i64,
    k: i64,
    a_bs: i64,
    a_rs: i64,
    a_cs: i64,
    b_bs: i64,
    b_rs: i64,
    b_cs: i64,
    c_bs: i64,
    c_rs: i64,
    c_cs: i64,
) {
    if m <= 0 || n <= 0 || batch <= 0 {
        return;
    }
    for i in 0..batch {
        // SAFETY: the caller guarantees the operands' extents.
        unsafe {
            let a = Mat { ptr: a.offset((i * a_bs) as isize), rs: a_rs, cs: a_cs };
            let b = Mat { ptr: b.offset((i * b_bs) as isize), rs: b_rs, cs: b_cs };
            let dst = c.offset((i * c_bs) as isize);
            if k <= 0 {
                for r in 0..m {
                    for col in 0..n {
                        *dst.offset((r * c_rs + col * c_cs) as isize) = 0.0;
                    }
                }
            } else if b_rs == 1 && b_cs == k && m >= REPACK_MIN_ROWS {
                repacked(m as usize, n as usize, k as usize, dst, c_rs, c_cs, a, b);
            } else if b_rs == 1 && c_cs == 1 && m * n >= DETOUR_MIN_OUTPUT && k >= DETOUR_MIN_DEPTH {
                detour(m as usize, n as usize, k as usize, dst, c_rs, a, b);
            } else {
                product(m as usize, n as usize, k as usize, dst, c_rs, c_cs, a, b);
            }
        }
    }
}

unsafe extern "C" {
    /// Whether this CPU has what `nnc_c_sgemm` was compiled for.
    pub safe fn nnc_c_sgemm_usable() -> i32;
    /// The built executable's products (src/build/sgemm.c, compiled in by
    /// the build script), with `nnc_rt_sgemm`'s signature and contract.
    pub fn nnc_c_sgemm(
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        batch: i64,
        m: i64,
        n: i64,
        k: i64,
        a_bs: i64,
        a_rs: i64,
        a_cs: i64,
        b_bs: i64,
        b_rs: i64,
        b_cs: i64,
        c_bs: i64,
        c_rs: i64,
        c_cs: i64,
    );
}

/// [`nnc_rt_sgemm`]'s signature, which the convolution driver is given.
type SgemmFn = unsafe extern "C" fn(
    *const f32,
    *const f32,
    *mut f32,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

unsafe extern "C" {
    /// The convolution driver (src/build/conv.c), compiled for the baseline
    /// target: `x`, `w`, `y` as the descriptor describes, units
    /// `[start, end)`, products through `sgemm`.
    fn nnc_conv_run(desc: *const i64, x: *mut f32, w: *mut f32, y: *mut f32, start: i64, end: i64, sgemm: SgemmFn);
    /// The same driver compiled as a build compiles it (`-march=native`).
    fn nnc_c_conv_run(desc: *const i64, x: *mut f32, w: *mut f32, y: *mut f32, start: i64, end: i64, sgemm: SgemmFn);
}

/// One role of a convolution (see `schedule::ConvKernel`).
///
/// # Safety
/// `desc` is a descriptor the scheduler wrote and `x`, `w`, `y` are the
/// dense buffers it describes, the written one not overlapping the others.
pub unsafe extern "C" fn nnc_rt_conv(desc: *const i64, x: *mut f32, w: *mut f32, y: *mut f32, start: i64, end: i64) {
    // The driver's own loops (packing, scatter-adds, depthwise) compiled for this
    // CPU where it has what that build assumes, else for any x86-64; the
    // products are the gemm crate's either way.
    static NATIVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let native = *NATIVE.get_or_init(|| nnc_c_sgemm_usable() != 0);
    // SAFETY: forwarded from the caller; the native build only where usable.
    unsafe {
        if native {
            nnc_c_conv_run(desc, x, w, y, start, end, nnc_rt_sgemm)
        } else {
            nnc_conv_run(desc, x, w, y, start, end, nnc_rt_sgemm)
        }
    }
}

/// [`nnc_rt_conv`] with the built executable's driver and products.
///
/// # Safety
/// As [`nnc_rt_conv`], on a CPU where [`nnc_c_sgemm_usable`] holds.
pub unsafe extern "C" fn nnc_rt_conv_c(desc: *const i64, x: *mut f32, w: *mut f32, y: *mut f32, start: i64, end: i64) {
    // SAFETY: forwarded from the caller.
    unsafe { nnc_c_conv_run(desc, x, w, y, start, end, nnc_c_sgemm) }
}

/// A matrix operand: its first element and strides in elements.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: i64,
    cs: i64,
}

/// One product through the gemm crate, on this thread.
///
/// # Safety
/// As [`nnc_rt_sgemm`], for one batch entry with `k >= 1`.
#[allow(clippy::too_many_arguments)]
unsafe fn product(m: usize, n: usize, k: usize, c: *mut f32, c_rs: i64, c_cs: i64, a: Mat, b: Mat) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_cs as isize,
            c_rs as isize,
            false,
            a.ptr,
            a.cs as isize,
            a.rs as isize,
            b.ptr,
            b.cs as isize,
            b.rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Products for which [`detour`] pays. The transpose costs about 0.9 ns
/// per output element, and the product gains about 1.6 ps per multiply-add
/// at 256 rows (more with fewer rows): from a depth of about 256 on.
/// Measured gains at depth 1024: 1.2x at 256 x 1024, 2.2x at 64 x 1024.
const DETOUR_MIN_OUTPUT: i64 = 16 * 1024;
const DETOUR_MIN_DEPTH: i64 = 256;

thread_local! {
    // Grown once per thread to the largest output it detours; reused.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `B` column-major with `C` row-major (the input gradient `dY W^T` of a
/// dense layer) is the gemm crate's slow layout: 136 GFLOP/s against 175
/// for the same product written column-major (256 x 1024 x 1024, one
/// core), and worse for fewer rows. So: the product column-major into a
/// scratch buffer, then a blocked transpose into `c`. The values are the
/// same dot products, so the bits are too.
///
/// # Safety
/// As [`product`], with `c`'s columns contiguous.
unsafe fn detour(m: usize, n: usize, k: usize, c: *mut f32, c_rs: i64, a: Mat, b: Mat) {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < m * n {
            s.resize(m * n, 0.0);
        }
        // SAFETY: the scratch holds m * n elements, column j at j * m; `c`
        // as the caller guarantees.
        unsafe {
            product(m, n, k, s.as_mut_ptr(), 1, m as i64, a, b);
            transpose(s.as_ptr(), m, n, c, c_rs as isize);
        }
    });
}

/// Rows of `A` from which [`repacked`] pays: its transpose costs `k n`
/// moves, against `m k n` multiply-adds sped up by 1.2-2x (Zen 4, one
/// core: 128 x 128 x 784 from 88 to 105 GFLOP/s, 2048 x 512 x 128 from 57
/// to 104).
const REPACK_MIN_ROWS: i64 = 128;

/// `B` contiguous column-major (a weight used transposed, `dY W^T`) with
/// many rows of `A`: the gemm crate packs such a `B` at half its speed on
/// Zen 4, so `B` is transposed into a row-major scratch first. The same
/// dot products, so the same bits.
///
/// # Safety
/// As [`product`], with `B`'s column `j` at `b.ptr + j k`.
#[allow(clippy::too_many_arguments)]
unsafe fn repacked(m: usize, n: usize, k: usize, c: *mut f32, c_rs: i64, c_cs: i64, a: Mat, b: Mat) {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < k * n {
            s.resize(k * n, 0.0);
        }
        // SAFETY: `b` holds k x n column-major as the caller guarantees, the
        // scratch k * n elements.
        unsafe {
            transpose(b.ptr, k, n, s.as_mut_ptr(), n as isize);
            let b = Mat { ptr: s.as_ptr(), rs: n as i64, cs: 1 };
            product(m, n, k, c, c_rs, c_cs, a, b);
        }
    });
}

/// `dst[i * dst_rs + j] = src[i + j * m]` for `i < m`, `j < n`.
///
/// # Safety
/// `src` holds `m * n` elements; `dst` covers every addressed element.
unsafe fn transpose(src: *const f32, m: usize, n: usize, dst: *mut f32, dst_rs: isize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is present; extents as the caller guarantees.
        unsafe { transpose_avx(src, m, n, dst, dst_rs) };
        return;
    }
    // SAFETY: as the caller guarantees.
    unsafe { transpose_tail(src, m, n, dst, dst_rs, 0, 0) };
}

/// The elements outside the first `m0` rows and `n0` columns.
///
/// # Safety
/// As [`transpose`].
unsafe fn transpose_tail(src: *const f32, m: usize, n: usize, dst: *mut f32, dst_rs: isize, m0: usize, n0: usize) {
    for j in 0..n {
        for i in (if j < n0 { m0 } else { 0 })..m {
            // SAFETY: in bounds as the caller guarantees.
            unsafe { *dst.offset(i as isize * dst_rs + j as isize) = *src.add(i + j * m) };
        }
    }
}

/// 8 x 8 blocks through AVX registers (unpack, shuffle, lane permute).
///
/// # Safety
/// As [`transpose`], on a CPU with AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_avx(src: *const f32, m: usize, n: usize, dst: *mut f32, dst_rs: isize) {
    use std::arch::x86_64::*;
    let (m8, n8) = (m / 8 * 8, n / 8 * 8);
    for i0 in (0..m8).step_by(8) {
        for j0 in (0..n8).step_by(8) {
            // SAFETY: rows i0..i0+8 of columns j0..j0+8 are in `src`, and
            // their transposes in `dst`.
            unsafe {
                let r = |j: usize| _mm256_loadu_ps(src.add(i0 + (j0 + j) * m));
                let (r0, r1, r2, r3, r4, r5, r6, r7) = (r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7));
                let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
                let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
                let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
                let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
                let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
                let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
                let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
                let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
                let row = |i: usize| dst.offset((i0 + i) as isize * dst_rs + j0 as isize);
                _mm256_storeu_ps(row(0), _mm256_permute2f128_ps::<0x20>(u0, u4));
                _mm256_storeu_ps(row(1), _mm256_permute2f128_ps::<0x20>(u1, u5));
                _mm256_storeu_ps(row(2), _mm256_permute2f128_ps::<0x20>(u2, u6));
                _mm256_storeu_ps(row(3), _mm256_permute2f128_ps::<0x20>(u3, u7));
                _mm256_storeu_ps(row(4), _mm256_permute2f128_ps::<0x31>(u0, u4));
                _mm256_storeu_ps(row(5), _mm256_permute2f128_ps::<0x31>(u1, u5));
                _mm256_storeu_ps(row(6), _mm256_permute2f128_ps::<0x31>(u2, u6));
                _mm256_storeu_ps(row(7), _mm256_permute2f128_ps::<0x31>(u3, u7));
            }
        }
    }
    // SAFETY: as the caller guarantees.
    unsafe { transpose_tail(src, m, n, dst, dst_rs, m8, n8) };
}

/// The address the JIT binds each runtime call to: one arm per row of the
/// code generator's table. `c_products`: products by the built
/// executable's C kernels, so `nnc predict` prints a build's digits.
pub fn address(call: RtCall, c_products: bool) -> *const u8 {
    match call {
        RtCall::Sgemm if c_products => nnc_c_sgemm as *const u8,
        RtCall::Sgemm => nnc_rt_sgemm as *const u8,
        RtCall::Parallel => super::pool::nnc_rt_parallel as *const u8,
        RtCall::Conv if c_products => nnc_rt_conv_c as *const u8,
        RtCall::Conv => nnc_rt_conv as *const u8,
        RtCall::Powf => nnc_rt_powf as *const u8,
        RtCall::Sinf => nnc_rt_sinf as *const u8,
        RtCall::Cosf => nnc_rt_cosf as *const u8,
    }
}

// The reference computes these in f64 and rounds; so do we, exactly.

pub extern "C" fn nnc_rt_powf(x: f32, y: f32) -> f32 {
    f64::from(x).powf(f64::from(y)) as f32
}

pub extern "C" fn nnc_rt_sinf(x: f32) -> f32 {
    f64::from(x).sin() as f32
}

pub extern "C" fn nnc_rt_cosf(x: f32) -> f32 {
    f64::from(x).cos() as f32
}
