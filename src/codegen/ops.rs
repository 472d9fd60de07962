//! What each scalar op computes, in Cranelift instructions, for one lane or
//! four: the op semantics of `ir::ops::elementwise` (and the random stream
//! of `ir::ops::source`), written once for every loop `loops.rs` emits.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{FuncRef, InstBuilder, Value, types};
use cranelift_frontend::FunctionBuilder;

use super::loops::Calls;
use super::loops::constant;
use super::math::{self, fconst, iconst, reg_ty, sel};
use super::{CodegenError, RtCall};
use crate::ir::{BinaryOp, DType, UnaryOp};

/// One arm per op, each listing the dtypes it generates: a new
/// `UnaryOp` does not compile until it has its code here.
pub(super) fn unary(
    b: &mut FunctionBuilder,
    calls: &Calls,
    op: UnaryOp,
    dt: DType,
    x: Value,
) -> Result<Value, CodegenError> {
    use UnaryOp as U;
    let w = if b.func.dfg.value_type(x).is_vector() { 4 } else { 1 };
    let f32_only = dt == DType::F32;
    Ok(match op {
        U::Neg if f32_only => b.ins().fneg(x),
        U::Neg if dt == DType::I32 => b.ins().ineg(x),
        U::Abs if f32_only => b.ins().fabs(x),
        U::Abs if dt == DType::I32 => b.ins().iabs(x),
        U::Exp if f32_only => math::exp(b, x),
        U::Log if f32_only => math::log(b, x),
        U::Sqrt if f32_only => b.ins().sqrt(x),
        U::Rsqrt if f32_only => {
            let s = b.ins().sqrt(x);
            let one = fconst(b, w, 1.0);
            b.ins().fdiv(one, s)
        }
        U::Tanh if f32_only => math::tanh(b, x),
        U::Sigmoid if f32_only => math::sigmoid(b, x),
        U::Erf if f32_only => math::erf(b, x),
        U::Sin if f32_only => call1(b, calls.get(RtCall::Sinf), x),
        U::Cos if f32_only => call1(b, calls.get(RtCall::Cosf), x),
        U::Floor if f32_only => b.ins().floor(x),
        U::Recip if f32_only => {
            let one = fconst(b, w, 1.0);
            b.ins().fdiv(one, x)
        }
        U::Sign if f32_only => {
            let (zero, one, mone) = (fconst(b, w, 0.0), fconst(b, w, 1.0), fconst(b, w, -1.0));
            let gt = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
            let lt = b.ins().fcmp(FloatCC::LessThan, x, zero);
            let keep = b.ins().fmul(x, zero); // NaN stays NaN, ±0 becomes 0
            let r = sel(b, lt, mone, keep);
            sel(b, gt, one, r)
        }
        U::Sign if dt == DType::I32 => {
            let (zero, one, mone) = (iconst(b, w, 0), iconst(b, w, 1), iconst(b, w, -1));
            let gt = b.ins().icmp(IntCC::SignedGreaterThan, x, zero);
            let lt = b.ins().icmp(IntCC::SignedLessThan, x, zero);
            let r = sel(b, lt, mone, zero);
            sel(b, gt, one, r)
        }
        U::Not if dt == DType::Bool && w == 1 => b.ins().bxor_imm_s(x, 1),
        U::Not if dt == DType::Bool => b.ins().bnot(x),
        // The IR's row refused these dtypes already; reaching here is a
        // verifier gap, reported rather than miscompiled.
        U::Neg
        | U::Abs
        | U::Exp
        | U::Log
        | U::Sqrt
        | U::Rsqrt
        | U::Tanh
        | U::Sigmoid
        | U::Erf
        | U::Sin
        | U::Cos
        | U::Floor
        | U::Recip
        | U::Sign
        | U::Not => {
            return Err(CodegenError::Unsupported(format!("{op:?} on {dt}")));
        }
    })
}

/// A call of the scalar runtime function `f`, lane by lane on a vector:
/// so every unary op has a four-lane form and never keeps a loop scalar.
pub(super) fn call1(b: &mut FunctionBuilder, f: FuncRef, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    if !ty.is_vector() {
        let c = b.ins().call(f, &[x]);
        return b.inst_results(c)[0];
    }
    let mut out = x;
    for lane in 0..ty.lane_count() as u8 {
        let v = b.ins().extractlane(x, lane);
        let c = b.ins().call(f, &[v]);
        let r = b.inst_results(c)[0];
        out = b.ins().insertlane(out, r, lane);
    }
    out
}

/// `x / c` as `q = x * r`, corrected by the remainder `x - q * c` (exact
/// in a fused multiply-add): `q + (x - q * c) * r`.
pub(super) fn corrected_quotient(x: f32, c: f32, r: f32) -> f32 {
    let q = x * r;
    (-q).mul_add(c, x).mul_add(r, q)
}

/// [`corrected_quotient`] in code: `c` is the emitted divisor, `r` its reciprocal.
pub(super) fn divide_by_constant(b: &mut FunctionBuilder, x: Value, c: Value, r: f32, w: u8) -> Value {
    let r = constant(b, DType::F32, w, f64::from(r));
    let q = b.ins().fmul(x, r);
    let minus_q = b.ins().fneg(q);
    let rem = b.ins().fma(minus_q, c, x);
    b.ins().fma(rem, r, q)
}

pub(super) fn binary(
    b: &mut FunctionBuilder,
    calls: &Calls,
    op: BinaryOp,
    dt: DType,
    x: Value,
    y: Value,
) -> Result<Value, CodegenError> {
    use BinaryOp as B;
    let float = dt == DType::F32;
    let signed = dt != DType::Bool;
    let icc = |s: IntCC, u: IntCC| if signed { s } else { u };
    Ok(match op {
        B::Add if float => b.ins().fadd(x, y),
        B::Sub if float => b.ins().fsub(x, y),
        B::Mul if float => b.ins().fmul(x, y),
        B::Div if float => b.ins().fdiv(x, y),
        B::Pow if float => {
            let c = b.ins().call(calls.get(RtCall::Powf), &[x, y]);
            b.inst_results(c)[0]
        }
        B::Max if float => math::fmax(b, x, y, true),
        B::Min if float => math::fmax(b, x, y, false),
        B::Add => b.ins().iadd(x, y),
        B::Sub => b.ins().isub(x, y),
        B::Mul => b.ins().imul(x, y),
        B::Div => int_div(b, x, y),
        B::Max => b.ins().smax(x, y),
        B::Min => b.ins().smin(x, y),
        B::Pow => return Err(CodegenError::Unsupported(format!("pow on {dt}"))),
        B::Lt => math::compare(b, FloatCC::LessThan, icc(IntCC::SignedLessThan, IntCC::UnsignedLessThan), float, x, y),
        B::Le => math::compare(
            b,
            FloatCC::LessThanOrEqual,
            icc(IntCC::SignedLessThanOrEqual, IntCC::UnsignedLessThanOrEqual),
            float,
            x,
            y,
        ),
        B::Gt => math::compare(
            b,
            FloatCC::GreaterThan,
            icc(IntCC::SignedGreaterThan, IntCC::UnsignedGreaterThan),
            float,
            x,
            y,
        ),
        B::Ge => math::compare(
            b,
            FloatCC::GreaterThanOrEqual,
            icc(IntCC::SignedGreaterThanOrEqual, IntCC::UnsignedGreaterThanOrEqual),
            float,
            x,
            y,
        ),
        B::Eq => math::compare(b, FloatCC::Equal, IntCC::Equal, float, x, y),
        B::Ne => math::compare(b, FloatCC::NotEqual, IntCC::NotEqual, float, x, y),
        B::And => b.ins().band(x, y),
        B::Or => b.ins().bor(x, y),
    })
}

/// Floor i32 division (the IR's rule) with `x / 0 = 0` and `MIN / -1 = MIN`
/// (wrapping), where the hardware would trap.
fn int_div(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    let zero = b.ins().icmp_imm_s(IntCC::Equal, y, 0);
    let min = b.ins().icmp_imm_s(IntCC::Equal, x, i64::from(i32::MIN));
    let mone = b.ins().icmp_imm_s(IntCC::Equal, y, -1);
    let ovf = b.ins().band(min, mone);
    let bad = b.ins().bor(zero, ovf);
    let one = b.ins().iconst(types::I32, 1);
    let d = b.ins().select(bad, one, y);
    let q = b.ins().sdiv(x, d);
    // Truncation rounds toward zero: one less where the remainder is not 0
    // and its sign differs from the divisor's.
    let p = b.ins().imul(q, d);
    let r = b.ins().isub(x, p);
    let inexact = b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
    let signs = b.ins().bxor(r, d);
    let opposite = b.ins().icmp_imm_s(IntCC::SignedLessThan, signs, 0);
    let down = b.ins().band(inexact, opposite);
    let qm1 = b.ins().iadd_imm_s(q, -1);
    let q = b.ins().select(down, qm1, q);
    let z = b.ins().iconst(types::I32, 0);
    b.ins().select(zero, z, q)
}

/// Rust `as` semantics: saturate, truncate, NaN to 0; bool is `x != 0`.
pub(super) fn cast(b: &mut FunctionBuilder, from: DType, to: DType, x: Value) -> Result<Value, CodegenError> {
    let w = if b.func.dfg.value_type(x).is_vector() { 4 } else { 1 };
    let clamp_u8 = |b: &mut FunctionBuilder, v: Value| {
        let (lo, hi) = (iconst(b, w, 0), iconst(b, w, 255));
        let v = b.ins().smax(v, lo);
        b.ins().smin(v, hi)
    };
    Ok(match (from, to) {
        _ if from == to => x,
        (DType::F32, DType::I32) => b.ins().fcvt_to_sint_sat(reg_ty(DType::I32, w), x),
        (DType::F32, DType::U8) => {
            let v = b.ins().fcvt_to_sint_sat(reg_ty(DType::I32, w), x);
            clamp_u8(b, v)
        }
        (DType::F32, DType::Bool) => {
            let z = fconst(b, w, 0.0);
            b.ins().fcmp(FloatCC::NotEqual, x, z)
        }
        (DType::I32 | DType::U8, DType::F32) => b.ins().fcvt_from_sint(reg_ty(DType::F32, w), x),
        (DType::I32, DType::U8) => clamp_u8(b, x),
        (DType::U8, DType::I32) => x,
        (DType::I32 | DType::U8, DType::Bool) => {
            let z = iconst(b, w, 0);
            b.ins().icmp(IntCC::NotEqual, x, z)
        }
        (DType::Bool, DType::F32) => {
            let (one, zero) = (fconst(b, w, 1.0), fconst(b, w, 0.0));
            sel(b, x, one, zero)
        }
        (DType::Bool, DType::I32 | DType::U8) => {
            let (one, zero) = (iconst(b, w, 1), iconst(b, w, 0));
            sel(b, x, one, zero)
        }
        (f, t) => return Err(CodegenError::Unsupported(format!("cast {f} to {t}"))),
    })
}

/// The murmur3 finaliser on i32 lanes.
fn mix32(b: &mut FunctionBuilder, h: Value) -> Value {
    let t = b.ins().ushr_imm_s(h, 16);
    let h = b.ins().bxor(h, t);
    let h = imul_by(b, h, 0x85eb_ca6b);
    let t = b.ins().ushr_imm_s(h, 13);
    let h = b.ins().bxor(h, t);
    let h = imul_by(b, h, 0xc2b2_ae35);
    let t = b.ins().ushr_imm_s(h, 16);
    b.ins().bxor(h, t)
}

/// `x * c` and `x ^ c` on i32 or i32x4 (the `_imm` forms are scalar only).
fn imul_by(b: &mut FunctionBuilder, x: Value, c: u32) -> Value {
    let c = int_like(b, x, c);
    b.ins().imul(x, c)
}

fn bxor_by(b: &mut FunctionBuilder, x: Value, c: u32) -> Value {
    let c = int_like(b, x, c);
    b.ins().bxor(x, c)
}

fn int_like(b: &mut FunctionBuilder, x: Value, c: u32) -> Value {
    let ty = b.func.dfg.value_type(x);
    let s = b.ins().iconst(types::I32, i64::from(c as i32));
    if ty.is_vector() { b.ins().splat(ty, s) } else { s }
}

/// `ir::random_uniform(key, salt, idx)`, bit for bit, on one lane or four
/// (`key` and `idx` of the same width).
pub(super) fn random(b: &mut FunctionBuilder, key: Value, salt: u64, idx: Value) -> Value {
    let k = bxor_by(b, key, 0x9e37_79b9);
    let s = mix32(b, k);
    let s = bxor_by(b, s, salt as u32);
    let s = mix32(b, s);
    let s = bxor_by(b, s, (salt >> 32) as u32);
    let s = mix32(b, s);
    let h = b.ins().bxor(s, idx);
    let h = mix32(b, h);
    let h = b.ins().iadd(h, s);
    let h = mix32(b, h);
    let h = b.ins().ushr_imm_s(h, 8);
    let ty = if b.func.dfg.value_type(h).is_vector() { types::F32X4 } else { types::F32 };
    let f = b.ins().fcvt_from_sint(ty, h);
    let w = if ty.is_vector() { 4 } else { 1 };
    let scale = super::math::fconst(b, w, 1.0 / 16_777_216.0);
    b.ins().fmul(f, scale)
}
