//! Functions that generated code calls by symbol. They take raw pointers
//! and sizes from the schedule, which guarantees they describe live,
//! in-bounds buffers; none of them can panic.

use gemm::Parallelism;

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
    let (mu, nu, ku) = (m as usize, n as usize, k.max(0) as usize);
    for i in 0..batch {
        // SAFETY: the caller guarantees the operands' extents.
        unsafe {
            let dst = c.offset((i * c_bs) as isize);
            if ku == 0 {
                for r in 0..m {
                    for col in 0..n {
                        *dst.offset((r * c_rs + col * c_cs) as isize) = 0.0;
                    }
                }
                continue;
            }
            gemm::gemm(
                mu,
                nu,
                ku,
                dst,
                c_cs as isize,
                c_rs as isize,
                false,
                a.offset((i * a_bs) as isize),
                a_cs as isize,
                a_rs as isize,
                b.offset((i * b_bs) as isize),
                b_cs as isize,
                b_rs as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
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
