//! Arithmetic helpers that work on one lane (`f32`, `i32`, `i8` bools) or
//! four (`f32x4`, `i32x4`, `i32x4` masks), and the vector polynomials for
//! exp/log/tanh/sigmoid (Cranelift has none).
//!
//! Accuracy against f64 libm rounded to f32, measured by
//! `tests/it/codegen_math.rs` over the whole finite range: exp and log within
//! 2 ulp (relative 2.4e-7), tanh within 3 ulp, sigmoid within 3 ulp except
//! where the result is below ~1e-38 (flushed to zero under FTZ). Specials:
//! exp(+inf)=inf, exp(-inf)=0, log(0)=-inf, log(x<0)=NaN, log(+inf)=inf,
//! NaN in gives NaN out. Under DAZ (set while a step runs) a denormal input
//! counts as 0, so log(denormal) = -inf.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::FunctionBuilder;

use crate::ir::DType;

/// Flags for vector `bitcast` (Cranelift requires an explicit endianness).
pub fn le() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Register type of `dtype` at `w` lanes: bools are `i8` 0/1 as scalars and
/// all-ones/zero `i32x4` masks as vectors; u8 is widened to i32.
pub fn reg_ty(dtype: DType, w: u8) -> Type {
    match (dtype, w) {
        (DType::F32, 1) => types::F32,
        (DType::F32, _) => types::F32X4,
        (DType::Bool, 1) => types::I8,
        (DType::I32 | DType::U8, 1) => types::I32,
        (DType::I32 | DType::U8 | DType::Bool, _) => types::I32X4,
    }
}

pub fn fconst(b: &mut FunctionBuilder, w: u8, v: f32) -> Value {
    let s = b.ins().f32const(v);
    if w == 1 { s } else { b.ins().splat(types::F32X4, s) }
}

pub fn iconst(b: &mut FunctionBuilder, w: u8, v: i32) -> Value {
    let s = b.ins().iconst(types::I32, i64::from(v));
    if w == 1 { s } else { b.ins().splat(types::I32X4, s) }
}

/// `mask ? x : y`; `mask` is a compare result at the same lane count.
pub fn sel(b: &mut FunctionBuilder, mask: Value, x: Value, y: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    if !ty.is_vector() {
        return b.ins().select(mask, x, y);
    }
    let m = if b.func.dfg.value_type(mask) == ty { mask } else { b.ins().bitcast(ty, le(), mask) };
    b.ins().bitselect(m, x, y)
}

pub fn bits(b: &mut FunctionBuilder, x: Value) -> Value {
    let ty = if b.func.dfg.value_type(x).is_vector() { types::I32X4 } else { types::I32 };
    b.ins().bitcast(ty, le(), x)
}

pub fn float(b: &mut FunctionBuilder, x: Value) -> Value {
    let ty = if b.func.dfg.value_type(x).is_vector() { types::F32X4 } else { types::F32 };
    b.ins().bitcast(ty, le(), x)
}

fn lanes(b: &FunctionBuilder, x: Value) -> u8 {
    if b.func.dfg.value_type(x).is_vector() { 4 } else { 1 }
}

/// NaN-propagating max/min by compare + select (`fmax` lowers to ~10 instructions).
pub fn fmax(b: &mut FunctionBuilder, x: Value, y: Value, is_max: bool) -> Value {
    let cc = if is_max { FloatCC::GreaterThan } else { FloatCC::LessThan };
    let pick = b.ins().fcmp(cc, x, y);
    let r = sel(b, pick, x, y);
    let nan = b.ins().fcmp(FloatCC::Unordered, x, x);
    sel(b, nan, x, r)
}

/// `x` limited to `[lo, hi]`, NaN kept (both compares are false for it).
fn clamp(b: &mut FunctionBuilder, x: Value, lo: f32, hi: f32) -> Value {
    let w = lanes(b, x);
    let (lo, hi) = (fconst(b, w, lo), fconst(b, w, hi));
    let over = b.ins().fcmp(FloatCC::GreaterThan, x, hi);
    let x = sel(b, over, hi, x);
    let under = b.ins().fcmp(FloatCC::LessThan, x, lo);
    sel(b, under, lo, x)
}

/// `p(x)` by Horner's rule with FMA, coefficients highest degree first.
fn horner(b: &mut FunctionBuilder, x: Value, c: &[f32]) -> Value {
    let w = lanes(b, x);
    let mut p = fconst(b, w, c[0]);
    for &ci in &c[1..] {
        let cv = fconst(b, w, ci);
        p = b.ins().fma(p, x, cv);
    }
    p
}

/// `2^n` for an integer-valued `n` in [-126, 127], from the exponent bits.
fn pow2i(b: &mut FunctionBuilder, n: Value) -> Value {
    let w = lanes(b, n);
    let bias = iconst(b, w, 127);
    let e = b.ins().iadd(n, bias);
    let sh = b.ins().ishl_imm_s(e, 23);
    float(b, sh)
}

/// exp: x = n ln2 + r with |r| <= ln2/2, Cephes' degree-6 polynomial on r,
/// times 2^n built in two halves so n in [-150, 128] neither overflows the
/// exponent field early nor loses the natural overflow to inf.
pub fn exp(b: &mut FunctionBuilder, x: Value) -> Value {
    let w = lanes(b, x);
    let x = clamp(b, x, -104.0, 88.8);
    // j = x log2e + 1.5*2^23: the nearest integer n sits in j's low bits.
    let (log2e, magic) = (fconst(b, w, std::f32::consts::LOG2_E), fconst(b, w, 12_582_912.0));
    let j = b.ins().fma(x, log2e, magic);
    let nf = b.ins().fsub(j, magic);
    let (ln2_hi, ln2_lo) = (fconst(b, w, -0.693_359_4), fconst(b, w, 2.121_944_4e-4));
    let r = b.ins().fma(nf, ln2_hi, x);
    let r = b.ins().fma(nf, ln2_lo, r);
    let c = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];
    let p = horner(b, r, &c);
    let r2 = b.ins().fmul(r, r);
    let one = fconst(b, w, 1.0);
    let r1 = b.ins().fadd(r, one);
    let p = b.ins().fma(p, r2, r1);
    let jb = bits(b, j);
    let magic_bits = iconst(b, w, 0x4B40_0000);
    let n = b.ins().isub(jb, magic_bits);
    let n1 = b.ins().sshr_imm_s(n, 1);
    let n2 = b.ins().isub(n, n1);
    let (s1, s2) = (pow2i(b, n1), pow2i(b, n2));
    let p = b.ins().fmul(p, s1);
    b.ins().fmul(p, s2)
}

/// log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), Cephes' degree-9
/// polynomial in m-1, specials patched in with selects.
pub fn log(b: &mut FunctionBuilder, x: Value) -> Value {
    let w = lanes(b, x);
    let xb = bits(b, x);
    let e = b.ins().ushr_imm_s(xb, 23);
    let bias = iconst(b, w, 127);
    let e = b.ins().isub(e, bias);
    let mant_mask = iconst(b, w, 0x007F_FFFF);
    let one_bits = iconst(b, w, 0x3F80_0000);
    let mb = b.ins().band(xb, mant_mask);
    let mb = b.ins().bor(mb, one_bits);
    let m = float(b, mb);
    let sqrt2 = fconst(b, w, std::f32::consts::SQRT_2);
    let big = b.ins().fcmp(FloatCC::GreaterThan, m, sqrt2);
    let half = fconst(b, w, 0.5);
    let mh = b.ins().fmul(m, half);
    let m = sel(b, big, mh, m);
    let one_i = iconst(b, w, 1);
    let e1 = b.ins().iadd(e, one_i);
    let e = sel(b, big, e1, e);
    let ef = b.ins().fcvt_from_sint(if w == 1 { types::F32 } else { types::F32X4 }, e);
    let one = fconst(b, w, 1.0);
    let f = b.ins().fsub(m, one);
    let c = [
        7.037_683_6e-2,
        -1.151_461e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_4e-1,
        -2.499_999_4e-1,
        0.333_333_3,
    ];
    let z = b.ins().fmul(f, f);
    let p = horner(b, f, &c);
    let p = b.ins().fmul(p, f);
    let y = b.ins().fmul(p, z);
    let lo = fconst(b, w, -2.121_944_4e-4);
    let y = b.ins().fma(ef, lo, y);
    let mhalf = fconst(b, w, -0.5);
    let y = b.ins().fma(z, mhalf, y);
    let r = b.ins().fadd(f, y);
    let hi = fconst(b, w, 0.693_359_4);
    let r = b.ins().fma(ef, hi, r);
    log_specials(b, x, r)
}

fn log_specials(b: &mut FunctionBuilder, x: Value, r: Value) -> Value {
    let w = lanes(b, x);
    let zero = fconst(b, w, 0.0);
    let inf = fconst(b, w, f32::INFINITY);
    let (ninf, nan) = (fconst(b, w, f32::NEG_INFINITY), fconst(b, w, f32::NAN));
    let is_inf = b.ins().fcmp(FloatCC::Equal, x, inf);
    let r = sel(b, is_inf, inf, r);
    let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
    let r = sel(b, neg, nan, r);
    let is_zero = b.ins().fcmp(FloatCC::Equal, x, zero);
    let r = sel(b, is_zero, ninf, r);
    let is_nan = b.ins().fcmp(FloatCC::Unordered, x, x);
    sel(b, is_nan, x, r)
}

/// tanh: the 13/6-degree rational interpolant Eigen, MLAS and tract use
/// for f32, on x clamped to [-9, 9] (past which tanh is ±1 in f32), and x
/// itself below 0.0004 (where the interpolant's x·a1/b0 is 2 ulp off).
/// Within 5 ulp of tanh (4 on [-1, 1]; tests/it/codegen_math.rs):
/// ten multiply-adds and one division, against the 40 operations of
/// `1 - 2 / (exp(2x) + 1)` with a polynomial near 0 (GELU's cost in a
/// transformer's feed-forward layers).
pub fn tanh(b: &mut FunctionBuilder, x: Value) -> Value {
    let w = lanes(b, x);
    let c = clamp(b, x, -9.0, 9.0);
    let z = b.ins().fmul(c, c);
    let alpha =
        [-2.760_768_5e-16, 2.000_188e-13, -8.604_672e-11, 5.122_297e-8, 1.485_722_4e-5, 6.372_619_3e-4, 4.893_524_6e-3];
    let p = horner(b, z, &alpha);
    let p = b.ins().fmul(p, c);
    let q = horner(b, z, &[1.198_258_4e-6, 1.185_347_1e-4, 2.268_434_6e-3, 4.893_525e-3]);
    let r = b.ins().fdiv(p, q);
    let a = b.ins().fabs(x);
    let tiny = fconst(b, w, 4e-4);
    let is_tiny = b.ins().fcmp(FloatCC::LessThan, a, tiny);
    sel(b, is_tiny, x, r)
}

/// sigmoid = 1 / (1 + exp(-x)): exp's relative error carries over, and
/// the extremes come out exactly 0 and 1.
pub fn sigmoid(b: &mut FunctionBuilder, x: Value) -> Value {
    let w = lanes(b, x);
    let nx = b.ins().fneg(x);
    let e = exp(b, nx);
    let one = fconst(b, w, 1.0);
    let d = b.ins().fadd(one, e);
    b.ins().fdiv(one, d)
}

/// erf: `x P(x²) / Q(x²)`, the rational approximation Eigen and XLA use
/// for f32, on x clamped to [-4, 4]; ±1 past 3.92; NaN stays NaN.
pub fn erf(b: &mut FunctionBuilder, x: Value) -> Value {
    let w = lanes(b, x);
    let c = clamp(b, x, -4.0, 4.0);
    let x2 = b.ins().fmul(c, c);
    let alpha = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    let beta = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329_3e-3, -1.426_474e-2];
    let p = horner(b, x2, &alpha);
    let p = b.ins().fmul(p, c);
    let q = horner(b, x2, &beta);
    let r = b.ins().fdiv(p, q);
    // A few ulp of error near 3.7 would otherwise reach 1.0000001, and
    // `1 - erf x` would go negative.
    let r = clamp(b, r, -1.0, 1.0);
    // Past 3.92, erf rounds to ±1 in f32: give exactly that, as the
    // reference does (a last-ulp miss would turn pow(erf x, y) into NaN).
    let a = b.ins().fabs(x);
    let edge = fconst(b, w, 3.92);
    let sat = b.ins().fcmp(FloatCC::GreaterThanOrEqual, a, edge);
    // ±1 from x's sign bit (x86 has no vector copysign).
    let xb = bits(b, x);
    let sign_mask = iconst(b, w, i32::MIN);
    let sign = b.ins().band(xb, sign_mask);
    let one = iconst(b, w, 1.0f32.to_bits() as i32);
    let unit = b.ins().bor(sign, one);
    let unit = float(b, unit);
    sel(b, sat, unit, r)
}

/// `x < y` etc. for a comparison op on floats or (widened) integers.
pub fn compare(b: &mut FunctionBuilder, float_cc: FloatCC, int_cc: IntCC, is_float: bool, x: Value, y: Value) -> Value {
    if is_float { b.ins().fcmp(float_cc, x, y) } else { b.ins().icmp(int_cc, x, y) }
}
