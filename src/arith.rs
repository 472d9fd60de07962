//! Compile-time arithmetic: the one meaning of the operators on ints,
//! floats and bools.
//!
//! The checker folds with it whenever it knows both values, and lowering
//! folds every constant with it, so the two cannot disagree on a value. It
//! also fixes the meaning tensors share: `%` takes the sign of the divisor
//! (Python's rule) for ints, floats, and i32 and f32 tensors alike.

#![warn(clippy::wildcard_enum_match_arm)]

use crate::syntax::ast::{BinOp, Expr, UnOp};

/// A compile-time value an operator can act on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// What a [`Scalar`] is, when its value is not known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Bool,
}

/// Why an operation on known values has no result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    DivisionByZero,
    /// An int result outside 64 bits.
    Overflow,
    /// A float result that is infinite or NaN (`1e308 * 10.0`, `(-1.0) ** 0.5`).
    NotFinite,
    /// The operator does not apply to these kinds (`true + 1`).
    Operands,
}

impl Scalar {
    pub fn kind(self) -> Kind {
        match self {
            Scalar::Int(_) => Kind::Int,
            Scalar::Float(_) => Kind::Float,
            Scalar::Bool(_) => Kind::Bool,
        }
    }

    /// An int or a float as an f64.
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(i as f64),
            Scalar::Float(f) => Some(f),
            Scalar::Bool(_) => None,
        }
    }
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x:?}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl Fault {
    /// The error message for `a op b`.
    pub fn message(self, op: BinOp, a: Scalar, b: Scalar) -> String {
        let sym = op.symbol();
        match self {
            Fault::DivisionByZero => format!("division by zero: `{a} {sym} {b}`"),
            Fault::Overflow => format!("integer overflow: `{a} {sym} {b}` does not fit in 64 bits"),
            Fault::NotFinite => format!("`{a} {sym} {b}` is not a finite number"),
            Fault::Operands => format!("`{sym}` cannot combine {a} and {b}"),
        }
    }
}

/// `op a`.
pub fn unary(op: UnOp, a: Scalar) -> Result<Scalar, Fault> {
    match (op, a) {
        (UnOp::Neg, Scalar::Int(i)) => i.checked_neg().map(Scalar::Int).ok_or(Fault::Overflow),
        (UnOp::Neg, Scalar::Float(f)) => Ok(Scalar::Float(-f)),
        (UnOp::Not, Scalar::Bool(b)) => Ok(Scalar::Bool(!b)),
        (UnOp::Neg, Scalar::Bool(_)) | (UnOp::Not, Scalar::Int(_) | Scalar::Float(_)) => Err(Fault::Operands),
    }
}

/// `a op b` on known values.
///
/// Ints stay exact: `+ - *` and `**` with a non-negative exponent are ints
/// (an overflow is an error), `/` is an int when it divides exactly and a
/// float otherwise (`d / heads` is a size, `1 / 3` a third), as is `**`
/// with a negative exponent. Int and float mixed compute in floats.
pub fn binary(op: BinOp, a: Scalar, b: Scalar) -> Result<Scalar, Fault> {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => int_binary(op, x, y),
        (Scalar::Bool(x), Scalar::Bool(y)) => bool_binary(op, x, y),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => float_binary(op, x, y),
            _ => Err(Fault::Operands),
        },
    }
}

fn int_binary(op: BinOp, x: i64, y: i64) -> Result<Scalar, Fault> {
    let int = |v: Option<i64>| v.map(Scalar::Int).ok_or(Fault::Overflow);
    match op {
        BinOp::Add => int(x.checked_add(y)),
        BinOp::Sub => int(x.checked_sub(y)),
        BinOp::Mul => int(x.checked_mul(y)),
        BinOp::Div | BinOp::Rem if y == 0 => Err(Fault::DivisionByZero),
        BinOp::Div if x.wrapping_rem(y) == 0 => int(x.checked_div(y)),
        BinOp::Div => Ok(Scalar::Float(x as f64 / y as f64)),
        BinOp::Rem => Ok(Scalar::Int(floor_rem(x, y))),
        BinOp::Pow if y >= 0 => int(u32::try_from(y).ok().and_then(|e| x.checked_pow(e))),
        BinOp::Pow => float_binary(op, x as f64, y as f64),
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => Ok(Scalar::Bool(compare(op, &x, &y))),
        BinOp::And | BinOp::Or | BinOp::MatMul => Err(Fault::Operands),
    }
}

fn bool_binary(op: BinOp, x: bool, y: bool) -> Result<Scalar, Fault> {
    match op {
        BinOp::And => Ok(Scalar::Bool(x && y)),
        BinOp::Or => Ok(Scalar::Bool(x || y)),
        BinOp::Eq => Ok(Scalar::Bool(x == y)),
        BinOp::Ne => Ok(Scalar::Bool(x != y)),
        BinOp::Lt
        | BinOp::Le
        | BinOp::Gt
        | BinOp::Ge
        | BinOp::Add
        | BinOp::Sub
        | BinOp::Mul
        | BinOp::Div
        | BinOp::Rem
        | BinOp::MatMul
        | BinOp::Pow => Err(Fault::Operands),
    }
}

fn float_binary(op: BinOp, x: f64, y: f64) -> Result<Scalar, Fault> {
    let v = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div | BinOp::Rem if y == 0.0 => return Err(Fault::DivisionByZero),
        BinOp::Div => x / y,
        BinOp::Rem => floor_rem_f64(x, y),
        BinOp::Pow if x == 0.0 && y < 0.0 => return Err(Fault::DivisionByZero),
        BinOp::Pow => x.powf(y),
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            return Ok(Scalar::Bool(compare(op, &x, &y)));
        }
        BinOp::And | BinOp::Or | BinOp::MatMul => return Err(Fault::Operands),
    };
    finite(v).map(Scalar::Float)
}

/// The kind of `a op b` when the values are not known; `None` where the
/// operator does not apply. Int `/` and `**` are ints here: that is their
/// kind where it matters (a quotient of sizes is a size, which the checker
/// proves whole where it is used as one).
pub fn kind(op: BinOp, a: Kind, b: Kind) -> Option<Kind> {
    let numbers = a != Kind::Bool && b != Kind::Bool;
    let float = a == Kind::Float || b == Kind::Float;
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem | BinOp::Pow if numbers => {
            Some(if float { Kind::Float } else { Kind::Int })
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge if numbers => Some(Kind::Bool),
        BinOp::Eq | BinOp::Ne if numbers || (a == Kind::Bool && b == Kind::Bool) => Some(Kind::Bool),
        BinOp::And | BinOp::Or if a == Kind::Bool && b == Kind::Bool => Some(Kind::Bool),
        BinOp::Add
        | BinOp::Sub
        | BinOp::Mul
        | BinOp::Div
        | BinOp::Rem
        | BinOp::Pow
        | BinOp::Lt
        | BinOp::Le
        | BinOp::Gt
        | BinOp::Ge
        | BinOp::Eq
        | BinOp::Ne
        | BinOp::And
        | BinOp::Or
        | BinOp::MatMul => None,
    }
}

/// A function folded on a constant (`log(0.0)`): its value, if finite.
pub fn finite(v: f64) -> Result<f64, Fault> {
    if v.is_finite() { Ok(v) } else { Err(Fault::NotFinite) }
}

/// The label of a false assertion on constants, `false for p = 1.5`:
/// each name the condition reads, once, with its value where `value`
/// knows it. The checker and lowering say it alike.
pub fn falsity(cond: &Expr, mut value: impl FnMut(&str) -> Option<Scalar>) -> String {
    let mut names = Vec::new();
    cond.names(&mut names);
    let mut shown: Vec<String> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if !names[..i].contains(n)
            && let Some(v) = value(n)
        {
            shown.push(format!("{n} = {v}"));
        }
    }
    if shown.is_empty() { "this is false".to_string() } else { format!("false for {}", shown.join(", ")) }
}

/// `x % y` with the sign of `y` (Python's rule), `y != 0`.
pub fn floor_rem(x: i64, y: i64) -> i64 {
    let r = x.wrapping_rem(y);
    if r != 0 && (r < 0) != (y < 0) { r + y } else { r }
}

/// `x % y` with the sign of `y`, for floats.
pub fn floor_rem_f64(x: f64, y: f64) -> f64 {
    let r = x % y;
    if r != 0.0 && (r < 0.0) != (y < 0.0) { r + y } else { r }
}

/// A comparison's result, in the operands' own type (ints stay exact);
/// called with the six comparisons only.
fn compare<T: PartialOrd>(op: BinOp, x: &T, y: &T) -> bool {
    match op {
        BinOp::Eq => x == y,
        BinOp::Ne => x != y,
        BinOp::Lt => x < y,
        BinOp::Le => x <= y,
        BinOp::Gt => x > y,
        BinOp::Ge => x >= y,
        BinOp::Or
        | BinOp::And
        | BinOp::Add
        | BinOp::Sub
        | BinOp::Mul
        | BinOp::Div
        | BinOp::Rem
        | BinOp::MatMul
        | BinOp::Pow => false,
    }
}
