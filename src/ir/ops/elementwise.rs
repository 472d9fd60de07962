//! Elementwise ops: unary, binary, select, cast, stop-gradient.
//!
//! Operands have identical shapes (broadcasting is an explicit `broadcast`
//! node; the builder's `broadcast_binary` inserts it). Unary and binary ops are
//! tables: one row per op gives its scalar functions per dtype (which also
//! decides the dtypes it accepts) and, below, its VJP.
//!
//! Semantics worth pinning down, since backends copy them: integer arithmetic
//! wraps, integer division floors (Python's `//`) and `x / 0 = 0`; float
//! `max`/`min` propagate NaN; `sign(±0) = 0`; comparisons work on every dtype
//! (bools compare as 0 < 1); casts go through the exact value with Rust `as`
//! rules (truncate toward zero, saturate, NaN → 0, `bool` is `x != 0`).

use ndarray::{ArrayD, Zip};

use crate::ir::error::IrError;
use crate::ir::graph::Graph;
use crate::ir::op::{LoweringClass, Op, OpRule, Rewrite, VjpCtx, arity, no_grad};
use crate::ir::tensor::{Elem, Tensor, same_elems, with_dtype, with_elem};
use crate::ir::types::{DType, NodeId, Type};

closed_enum! {
    /// Unary elementwise ops. Each has one row in [`UnaryOp::row`] (name,
    /// whether the language exposes it as a builtin, scalar functions per
    /// dtype) and one arm in its cotangent rule.
    pub enum UnaryOp {
        Neg, Abs, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Sin, Cos, Floor, Sign, Erf, Not, Recip,
    }
}

/// One unary op: its printed name (also the builtin's, when exposed), and
/// its scalar functions per dtype (`None` = dtype not accepted).
pub struct UnaryRow {
    pub name: &'static str,
    /// Whether `.nn` programs can call it by name (`exp(x)`); the others are
    /// reached through operators (`-x`, `!b`) or only built by the compiler.
    pub builtin: bool,
    float: Option<fn(f64) -> f64>,
    int: Option<fn(i32) -> i32>,
    boolean: Option<fn(bool) -> bool>,
    /// An interval on which the float function is smooth (away from poles,
    /// branch cuts and kinks): where the per-op tests check its derivative.
    pub smooth: (f64, f64),
}

impl UnaryRow {
    pub fn accepts(&self, dtype: DType) -> bool {
        match dtype {
            DType::F32 => self.float.is_some(),
            DType::I32 => self.int.is_some(),
            DType::Bool => self.boolean.is_some(),
            DType::U8 => false,
        }
    }
}

/// A float function exposed as a builtin, smooth on `smooth`.
const fn builtin(name: &'static str, f: fn(f64) -> f64, smooth: (f64, f64)) -> UnaryRow {
    UnaryRow { name, builtin: true, float: Some(f), int: None, boolean: None, smooth }
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0 // keeps NaN, maps ±0 to 0
    }
}

impl UnaryOp {
    /// The op on one float, as the interpreter computes it: lowering folds
    /// compile-time numbers with it, so `sign(0.0)` is what `sign(x)` gives.
    pub fn fold_f64(self, x: f64) -> Option<f64> {
        self.row().float.map(|f| f(x))
    }

    /// The op's row: the one place a new unary op is described.
    pub fn row(self) -> UnaryRow {
        use UnaryOp as U;
        let row =
            |name, builtin, float, int, boolean| UnaryRow { name, builtin, float, int, boolean, smooth: (-2.0, 2.0) };
        let positive = (0.2, 3.0);
        match self {
            U::Neg => row("neg", false, Some(|x| -x), Some(i32::wrapping_neg), None),
            U::Abs => row("abs", true, Some(f64::abs), Some(i32::wrapping_abs), None),
            U::Sign => row("sign", true, Some(sign), Some(i32::signum), None),
            U::Exp => builtin("exp", f64::exp, (-2.0, 2.0)),
            U::Log => builtin("log", f64::ln, positive),
            U::Sqrt => builtin("sqrt", f64::sqrt, positive),
            U::Rsqrt => builtin("rsqrt", |x| 1.0 / x.sqrt(), positive),
            U::Tanh => builtin("tanh", f64::tanh, (-2.0, 2.0)),
            U::Sigmoid => builtin("sigmoid", |x| 1.0 / (1.0 + (-x).exp()), (-3.0, 3.0)),
            U::Sin => builtin("sin", f64::sin, (-3.0, 3.0)),
            U::Cos => builtin("cos", f64::cos, (-3.0, 3.0)),
            U::Floor => builtin("floor", f64::floor, (-3.0, 3.0)),
            U::Erf => builtin("erf", libm::erf, (-3.0, 3.0)),
            U::Recip => UnaryRow { smooth: (0.3, 3.0), ..row("recip", false, Some(|x| 1.0 / x), None, None) },
            U::Not => row("not", false, None, None, Some(|b| !b)),
        }
    }

    /// The cotangent of the input given `x`, the output `y` and its cotangent.
    fn cotangent(self, g: &mut Graph, x: NodeId, y: NodeId, ct: NodeId) -> Result<Option<NodeId>, IrError> {
        use UnaryOp as U;
        let d = match self {
            U::Neg => g.neg(ct)?,
            U::Abs => {
                let s = g.sign(x)?;
                g.mul(ct, s)?
            }
            U::Exp => g.mul(ct, y)?,
            U::Log => g.div(ct, x)?,
            U::Sqrt => {
                let half = g.mul_scalar(ct, 0.5)?;
                g.div(half, y)?
            }
            U::Rsqrt => {
                // d/dx x^-1/2 = -1/2 y^3
                let y2 = g.mul(y, y)?;
                let y3 = g.mul(y2, y)?;
                let t = g.mul(ct, y3)?;
                g.mul_scalar(t, -0.5)?
            }
            U::Tanh => {
                let y2 = g.mul(y, y)?;
                let one_minus = g.scalar_sub(1.0, y2)?;
                g.mul(ct, one_minus)?
            }
            U::Sigmoid => {
                let one_minus = g.scalar_sub(1.0, y)?;
                let dy = g.mul(y, one_minus)?;
                g.mul(ct, dy)?
            }
            U::Sin => {
                let c = g.cos(x)?;
                g.mul(ct, c)?
            }
            U::Cos => {
                let s = g.sin(x)?;
                let t = g.mul(ct, s)?;
                g.neg(t)?
            }
            U::Erf => {
                // d/dx erf x = 2/sqrt(pi) exp(-x^2)
                let x2 = g.mul(x, x)?;
                let n = g.neg(x2)?;
                let e = g.exp(n)?;
                let t = g.mul(ct, e)?;
                g.mul_scalar(t, std::f64::consts::FRAC_2_SQRT_PI)?
            }
            U::Recip => {
                let y2 = g.mul(y, y)?;
                let t = g.mul(ct, y2)?;
                g.neg(t)?
            }
            // Piecewise constant (zero almost everywhere) or not float.
            U::Floor | U::Sign | U::Not => return Ok(None),
        };
        Ok(Some(d))
    }
}

impl OpRule for UnaryOp {
    fn name(&self) -> &'static str {
        self.row().name
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Elementwise
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity(self.name(), ins, 1)?;
        if !self.row().accepts(ins[0].dtype) {
            return Err(IrError::ty(self.name(), format!("not defined on {}", ins[0])));
        }
        Ok(ins[0].clone())
    }
    fn eval(&self, _ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let f = self.row();
        let bad = || IrError::ty(self.name(), format!("not defined on {}", ins[0].dtype()));
        Ok(match ins[0] {
            Tensor::Float(a) => Tensor::Float(a.mapv(f.float.ok_or_else(bad)?)),
            Tensor::Int(a) => Tensor::Int(a.mapv(f.int.ok_or_else(bad)?)),
            Tensor::Bool(a) => Tensor::Bool(a.mapv(f.boolean.ok_or_else(bad)?)),
            Tensor::Byte(_) => return Err(bad()),
        })
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        Ok(vec![self.cotangent(g, cx.inputs[0], cx.out, cx.cot)?])
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], _ty: &Type) -> Option<Rewrite> {
        // neg(neg x) = x, not(not x) = x: both are exact involutions.
        let inner = g.node(ins[0]);
        let involution = matches!(self, UnaryOp::Neg | UnaryOp::Not);
        (involution && inner.op == Op::Unary(*self)).then(|| Rewrite::Node(inner.inputs[0]))
    }
}

closed_enum! {
    /// Binary elementwise ops on operands of one shape.
    pub enum BinaryOp {
        Add, Sub, Mul, Div, Pow, Max, Min, Lt, Le, Gt, Ge, Eq, Ne, And, Or,
    }
}

/// The scalar functions of a binary op.
enum BinaryFns {
    /// Same dtype in and out: f32 (always) and i32 (when `int` is set).
    Arith { float: fn(f64, f64) -> f64, int: Option<fn(i32, i32) -> i32> },
    /// Any dtype in (compared as exact f64), bool out.
    Compare(fn(f64, f64) -> bool),
    /// Bool in, bool out.
    Logic(fn(bool, bool) -> bool),
}

pub(crate) fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// Floor division (Python's `//`), so `a % b` built on it takes the sign
/// of `b` as for constants; `a / 0 = 0` keeps the op total.
fn int_div(a: i32, b: i32) -> i32 {
    if b == 0 {
        return 0;
    }
    let q = a.wrapping_div(b);
    if a.wrapping_rem(b) != 0 && (a < 0) != (b < 0) { q - 1 } else { q }
}

impl BinaryOp {
    fn fns(self) -> BinaryFns {
        use BinaryFns::{Arith, Compare, Logic};
        use BinaryOp as B;
        match self {
            B::Add => Arith { float: |a, b| a + b, int: Some(i32::wrapping_add) },
            B::Sub => Arith { float: |a, b| a - b, int: Some(i32::wrapping_sub) },
            B::Mul => Arith { float: |a, b| a * b, int: Some(i32::wrapping_mul) },
            B::Div => Arith { float: |a, b| a / b, int: Some(int_div) },
            B::Pow => Arith { float: f64::powf, int: None },
            B::Max => Arith { float: nan_max, int: Some(i32::max) },
            B::Min => Arith { float: nan_min, int: Some(i32::min) },
            B::Lt => Compare(|a, b| a < b),
            B::Le => Compare(|a, b| a <= b),
            B::Gt => Compare(|a, b| a > b),
            B::Ge => Compare(|a, b| a >= b),
            B::Eq => Compare(|a, b| a == b),
            B::Ne => Compare(|a, b| a != b),
            B::And => Logic(|a, b| a && b),
            B::Or => Logic(|a, b| a || b),
        }
    }

    /// Cotangents of (a, b), given the output `y`; only the wanted ones are built.
    fn cotangents(self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        use BinaryOp as B;
        let (a, b, y, ct) = (cx.inputs[0], cx.inputs[1], cx.out, cx.cot);
        let (wa, wb) = (cx.wants[0], cx.wants[1]);
        let pair = match self {
            B::Add => (Some(ct), Some(ct)),
            B::Sub => (Some(ct), when(wb, || g.neg(ct))?),
            B::Mul => (when(wa, || g.mul(ct, b))?, when(wb, || g.mul(ct, a))?),
            B::Div => {
                // da = ct / b;  db = -ct a / b^2 = -(ct / b) y
                let ga = g.div(ct, b)?;
                let gb = when(wb, || {
                    let t = g.mul(ga, y)?;
                    g.neg(t)
                })?;
                (Some(ga), gb)
            }
            B::Pow => {
                // da = ct b a^(b-1) (not y/a: a may be 0);  db = ct y ln a
                let ga = when(wa, || {
                    let bm1 = g.sub_scalar(b, 1.0)?;
                    let p = g.pow(a, bm1)?;
                    let t = g.mul(b, p)?;
                    g.mul(ct, t)
                })?;
                let gb = when(wb, || {
                    let la = g.log(a)?;
                    let t = g.mul(y, la)?;
                    g.mul(ct, t)
                })?;
                (ga, gb)
            }
            // Ties send the whole cotangent to `a` (a valid subgradient).
            B::Max => split_by(g, B::Ge, cx)?,
            B::Min => split_by(g, B::Le, cx)?,
            B::Lt | B::Le | B::Gt | B::Ge | B::Eq | B::Ne | B::And | B::Or => (None, None),
        };
        Ok(vec![pair.0.filter(|_| wa), pair.1.filter(|_| wb)])
    }
}

/// `f()` if `want`, else `None`.
fn when(want: bool, f: impl FnOnce() -> Result<NodeId, IrError>) -> Result<Option<NodeId>, IrError> {
    want.then(f).transpose()
}

/// (ct where a `cmp` b, ct elsewhere): the VJP of max/min.
fn split_by(g: &mut Graph, cmp: BinaryOp, cx: &VjpCtx) -> Result<(Option<NodeId>, Option<NodeId>), IrError> {
    let mask = g.binary(cmp, cx.inputs[0], cx.inputs[1])?;
    let zero = g.zeros_like(cx.cot)?;
    let ga = when(cx.wants[0], || g.select(mask, cx.cot, zero))?;
    let gb = when(cx.wants[1], || g.select(mask, zero, cx.cot))?;
    Ok((ga, gb))
}

impl OpRule for BinaryOp {
    fn name(&self) -> &'static str {
        use BinaryOp as B;
        match self {
            B::Add => "add",
            B::Sub => "sub",
            B::Mul => "mul",
            B::Div => "div",
            B::Pow => "pow",
            B::Max => "max",
            B::Min => "min",
            B::Lt => "lt",
            B::Le => "le",
            B::Gt => "gt",
            B::Ge => "ge",
            B::Eq => "eq",
            B::Ne => "ne",
            B::And => "and",
            B::Or => "or",
        }
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Elementwise
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity(self.name(), ins, 2)?;
        let (a, b) = (ins[0], ins[1]);
        if a != b {
            let msg = format!("operands must have the same type (broadcast explicitly), got {a} and {b}");
            return Err(IrError::ty(self.name(), msg));
        }
        let ok = match (self.fns(), a.dtype) {
            (BinaryFns::Arith { .. }, DType::F32) => true,
            (BinaryFns::Arith { int, .. }, DType::I32) => int.is_some(),
            (BinaryFns::Arith { .. }, DType::Bool | DType::U8) => false,
            (BinaryFns::Compare(_), _) => true,
            (BinaryFns::Logic(_), dt) => dt == DType::Bool,
        };
        if !ok {
            return Err(IrError::ty(self.name(), format!("not defined on {a}")));
        }
        Ok(match self.fns() {
            BinaryFns::Arith { .. } => a.clone(),
            BinaryFns::Compare(_) | BinaryFns::Logic(_) => a.with_dtype(DType::Bool),
        })
    }
    fn eval(&self, _ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let bad = || IrError::ty(self.name(), format!("not defined on {}", ins[0].dtype()));
        let zip = |x: &ArrayD<f64>, y: &ArrayD<f64>, f: fn(f64, f64) -> f64| {
            Zip::from(x).and(y).map_collect(|&p, &q| f(p, q))
        };
        Ok(match (self.fns(), ins[0], ins[1]) {
            (BinaryFns::Arith { float, .. }, Tensor::Float(x), Tensor::Float(y)) => Tensor::Float(zip(x, y, float)),
            (BinaryFns::Arith { int: Some(f), .. }, Tensor::Int(x), Tensor::Int(y)) => {
                Tensor::Int(Zip::from(x).and(y).map_collect(|&p, &q| f(p, q)))
            }
            (BinaryFns::Compare(f), x, y) => {
                let (x, y) = (as_f64(x), as_f64(y));
                Tensor::Bool(Zip::from(&x).and(&y).map_collect(|&p, &q| f(p, q)))
            }
            (BinaryFns::Logic(f), Tensor::Bool(x), Tensor::Bool(y)) => {
                Tensor::Bool(Zip::from(x).and(y).map_collect(|&p, &q| f(p, q)))
            }
            _ => return Err(bad()),
        })
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        self.cotangents(g, cx)
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], ty: &Type) -> Option<Rewrite> {
        simplify_binary(*self, g, ins[0], ins[1], ty.dtype)
    }
}

/// Exact every value as f64 (all dtypes embed exactly).
fn as_f64(t: &Tensor) -> ArrayD<f64> {
    with_elem!(t, a => a.mapv(|v| v.to_f64()))
}

/// Identities that never change a result, except the sign of a zero
/// (`-0 + 0 = +0` but we return `-0`). `x * 0` and `x - x` are folded for
/// integers only: for floats they would turn NaN and inf into 0.
fn simplify_binary(op: BinaryOp, g: &Graph, a: NodeId, b: NodeId, dtype: DType) -> Option<Rewrite> {
    use BinaryOp as B;
    let (ca, cb) = (g.splat(a), g.splat(b));
    let int = dtype == DType::I32;
    let keep = |id| Some(Rewrite::Node(id));
    match op {
        B::Add if cb == Some(0.0) => keep(a),
        B::Add if ca == Some(0.0) => keep(b),
        B::Sub if cb == Some(0.0) => keep(a),
        B::Sub if int && a == b => Some(Rewrite::Const(0.0)),
        B::Mul if cb == Some(1.0) => keep(a),
        B::Mul if ca == Some(1.0) => keep(b),
        B::Mul if int && (ca == Some(0.0) || cb == Some(0.0)) => Some(Rewrite::Const(0.0)),
        B::Div | B::Pow if cb == Some(1.0) => keep(a),
        B::Max | B::Min | B::And | B::Or if a == b => keep(a),
        B::And | B::Or => {
            // and(x, true) = x, and(x, false) = false; or dually.
            let (unit, absorb) = if op == B::And { (1.0, 0.0) } else { (0.0, 1.0) };
            match (ca, cb) {
                (Some(c), _) if c == unit => keep(b),
                (_, Some(c)) if c == unit => keep(a),
                (Some(c), _) | (_, Some(c)) if c == absorb => Some(Rewrite::Const(absorb)),
                _ => None,
            }
        }
        // No identity applies (the guarded arms above did not match).
        B::Add | B::Sub | B::Mul | B::Div | B::Pow | B::Max | B::Min => None,
        B::Lt | B::Le | B::Gt | B::Ge | B::Eq | B::Ne => None,
    }
}

/// `select(cond, a, b)`: `a` where `cond`, else `b`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SelectOp;

impl OpRule for SelectOp {
    fn name(&self) -> &'static str {
        "select"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Elementwise
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("select", ins, 3)?;
        let (c, a, b) = (ins[0], ins[1], ins[2]);
        if c.dtype != DType::Bool || a != b || c.shape != a.shape {
            let msg = format!("expects (bool[S], T[S], T[S]), got ({c}, {a}, {b})");
            return Err(IrError::ty("select", msg));
        }
        Ok(a.clone())
    }
    fn eval(&self, ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let Tensor::Bool(c) = ins[0] else {
            return Err(IrError::ty("select", "condition must be bool"));
        };
        with_dtype!(ty.dtype, T => {
            let ab = same_elems::<T>("select", &ins[1..])?;
            Ok(T::wrap(Zip::from(c).and(ab[0]).and(ab[1]).map_collect(|&c, &x, &y| if c { x } else { y })))
        })
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        let (c, ct) = (cx.inputs[0], cx.cot);
        let zero = g.zeros_like(ct)?;
        let ga = when(cx.wants[1], || g.select(c, ct, zero))?;
        let gb = when(cx.wants[2], || g.select(c, zero, ct))?;
        Ok(vec![None, ga, gb])
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], _ty: &Type) -> Option<Rewrite> {
        match g.splat(ins[0]) {
            Some(c) => Some(Rewrite::Node(if c != 0.0 { ins[1] } else { ins[2] })),
            None => (ins[1] == ins[2]).then_some(Rewrite::Node(ins[1])),
        }
    }
}

/// Converts to `to` (see the module doc for the exact rules).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Cast {
    pub to: DType,
}

impl OpRule for Cast {
    fn name(&self) -> &'static str {
        "cast"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Elementwise
    }
    fn attrs(&self) -> String {
        self.to.to_string()
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("cast", ins, 1)?;
        Ok(ins[0].with_dtype(self.to))
    }
    fn eval(&self, _ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let x = as_f64(ins[0]);
        Ok(with_dtype!(self.to, T => T::wrap(x.mapv(T::from_f64))))
    }
    fn vjp(&self, _g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        // f32 -> f32 is folded away, so a cast node always has a non-float
        // side: no gradient flows through it.
        Ok(no_grad(cx))
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], _ty: &Type) -> Option<Rewrite> {
        (g.node(ins[0]).ty.dtype == self.to).then_some(Rewrite::Node(ins[0]))
    }
}

/// Identity forward; blocks gradients.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct StopGradient;

impl OpRule for StopGradient {
    fn name(&self) -> &'static str {
        "stop_gradient"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Elementwise
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("stop_gradient", ins, 1)?;
        Ok(ins[0].clone())
    }
    fn eval(&self, _ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        Ok(ins[0].clone())
    }
    fn vjp(&self, _g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        Ok(no_grad(cx))
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], _ty: &Type) -> Option<Rewrite> {
        // Idempotent; and only floats carry gradients at all.
        let inner = g.node(ins[0]);
        let redundant = matches!(inner.op, Op::StopGradient) || !inner.ty.dtype.is_float();
        redundant.then_some(Rewrite::Node(ins[0]))
    }
}
