//! One meaning for each operator: the same numbers give the same answer
//! whether they are compile-time constants (folded by `nnc::arith`, in the
//! checker and in lowering) or tensors (computed by the graph), for every
//! binary operator the language has, on negative operands too.

use std::collections::HashMap;

use ndarray::ArrayD;
use nnc::arith::{self, Kind, Scalar};
use nnc::ir::DType;
use nnc::ir::interp::{self, Precision, Value};
use nnc::syntax::ast::BinOp;

const OPS: [BinOp; 14] = [
    BinOp::Or,
    BinOp::And,
    BinOp::Eq,
    BinOp::Ne,
    BinOp::Lt,
    BinOp::Le,
    BinOp::Gt,
    BinOp::Ge,
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::Rem,
    BinOp::Pow,
];

/// `a op b` lowered from source: constants when `tensors` is false, else
/// `x op y` on 1-element tensors of `dtype` holding the same numbers.
fn lowered(op: BinOp, a: f64, b: f64, dtype: DType, tensors: bool) -> f64 {
    let (mut program, diags) = nnc::resolve::load_str("arith.nn", "");
    assert!(diags.is_empty());
    let lit = |v: f64| match dtype {
        DType::F32 => format!("({v:?})"),
        DType::Bool => format!("{}", v != 0.0),
        _ => format!("({v})"),
    };
    let sym = op.symbol();
    let (expr, inputs) = if tensors {
        (format!("x {sym} y"), vec![("x", dtype, vec![1]), ("y", dtype, vec![1])])
    } else {
        (format!("{} {sym} {}", lit(a), lit(b)), vec![])
    };
    let traced = nnc::lower::trace(&mut program, &expr, &inputs).unwrap_or_else(|d| panic!("{expr}: {}", d.message));
    let value = |v: f64| match dtype {
        DType::F32 => Value::F32(ArrayD::from_elem(vec![1], v as f32)),
        DType::I32 => Value::I32(ArrayD::from_elem(vec![1], v as i32)),
        _ => Value::Bool(ArrayD::from_elem(vec![1], v != 0.0)),
    };
    let mut feeds: HashMap<String, Value> = HashMap::new();
    feeds.insert("rng".into(), Value::I32(ArrayD::from_elem(vec![], 0)));
    if tensors {
        feeds.insert("x".into(), value(a));
        feeds.insert("y".into(), value(b));
    }
    let out = interp::run(&traced.graph, &feeds, Precision::F32).unwrap_or_else(|e| panic!("{expr}: {e}"));
    out[0].to_f64s()[0]
}

fn scalar(v: f64, dtype: DType) -> Scalar {
    match dtype {
        DType::F32 => Scalar::Float(v),
        DType::Bool => Scalar::Bool(v != 0.0),
        _ => Scalar::Int(v as i64),
    }
}

fn number(s: Scalar) -> f64 {
    match s {
        Scalar::Int(i) => i as f64,
        Scalar::Float(f) => f,
        Scalar::Bool(b) => f64::from(u8::from(b)),
    }
}

/// Small whole numbers, negatives included: every result is exact in f32
/// except true quotients and powers, which round once.
fn operands(dtype: DType) -> Vec<(f64, f64)> {
    let range: Vec<f64> = match dtype {
        DType::Bool => vec![0.0, 1.0],
        _ => (-7..=7).map(f64::from).collect(),
    };
    range.iter().flat_map(|&a| range.iter().map(move |&b| (a, b))).collect()
}

#[test]
fn constants_fold_as_tensors_compute() {
    for dtype in [DType::F32, DType::I32, DType::Bool] {
        for op in OPS {
            for (a, b) in operands(dtype) {
                let want = arith::binary(op, scalar(a, dtype), scalar(b, dtype));
                let Ok(want) = want else { continue };
                let constant = lowered(op, a, b, dtype, false);
                assert_eq!(
                    constant.to_bits(),
                    (number(want) as f32 as f64).to_bits(),
                    "{a} {} {b} as constants",
                    op.symbol()
                );
                // Integer tensors keep their dtype: `/` is floor division there.
                let tensor_want = match (dtype, op) {
                    (DType::I32, BinOp::Div) => number(want).floor(),
                    (DType::I32, BinOp::Pow) => continue,
                    _ => number(want),
                };
                let tensor = lowered(op, a, b, dtype, true);
                let tol = if matches!(op, BinOp::Div | BinOp::Pow) { 1e-6 * tensor_want.abs() } else { 0.0 };
                assert!(
                    (tensor - tensor_want).abs() <= tol,
                    "{a} {} {b} on {dtype} tensors: {tensor}, constants give {tensor_want}",
                    op.symbol()
                );
            }
        }
    }
}

#[test]
fn remainder_takes_the_divisor_sign() {
    for (x, y, r) in [(7, 3, 1), (-7, 3, 2), (7, -3, -2), (-7, -3, -1), (6, -3, 0), (i64::MIN, -1, 0)] {
        assert_eq!(arith::binary(BinOp::Rem, Scalar::Int(x), Scalar::Int(y)), Ok(Scalar::Int(r)), "{x} % {y}");
        if x != i64::MIN {
            let f = arith::binary(BinOp::Rem, Scalar::Float(x as f64), Scalar::Float(y as f64));
            assert_eq!(f, Ok(Scalar::Float(r as f64)), "{x}.0 % {y}.0");
        }
    }
}

#[test]
fn faults_are_errors_not_values() {
    use arith::Fault;
    let (i, f) = (Scalar::Int, Scalar::Float);
    assert_eq!(arith::binary(BinOp::Div, i(1), i(0)), Err(Fault::DivisionByZero));
    assert_eq!(arith::binary(BinOp::Rem, f(1.0), f(0.0)), Err(Fault::DivisionByZero));
    assert_eq!(arith::binary(BinOp::Div, f(1.0), i(0)), Err(Fault::DivisionByZero));
    assert_eq!(arith::binary(BinOp::Pow, i(0), i(-1)), Err(Fault::DivisionByZero));
    assert_eq!(arith::binary(BinOp::Mul, i(i64::MAX), i(2)), Err(Fault::Overflow));
    assert_eq!(arith::binary(BinOp::Pow, i(10), i(19)), Err(Fault::Overflow));
    assert_eq!(arith::binary(BinOp::Mul, f(1e308), f(10.0)), Err(Fault::NotFinite));
    assert_eq!(arith::binary(BinOp::Pow, f(-1.0), f(0.5)), Err(Fault::NotFinite));
    assert_eq!(arith::binary(BinOp::Add, Scalar::Bool(true), i(1)), Err(Fault::Operands));
    assert_eq!(arith::unary(nnc::syntax::ast::UnOp::Neg, i(i64::MIN)), Err(Fault::Overflow));
}

/// The kind the checker gives an operation on unknown values is the kind
/// the known values fold to, except where the value decides: an inexact
/// int quotient and an int power with a negative exponent are floats.
#[test]
fn the_kind_of_unknown_values_is_the_kind_of_known_ones() {
    let samples = [Scalar::Int(-3), Scalar::Int(0), Scalar::Int(4), Scalar::Float(-1.5), Scalar::Float(2.0)];
    let bools = [Scalar::Bool(false), Scalar::Bool(true)];
    let all: Vec<Scalar> = samples.iter().chain(&bools).copied().collect();
    for op in OPS.into_iter().chain([BinOp::MatMul]) {
        for &a in &all {
            for &b in &all {
                let kind = arith::kind(op, a.kind(), b.kind());
                match arith::binary(op, a, b) {
                    Err(arith::Fault::Operands) => assert_eq!(kind, None, "{a} {} {b}", op.symbol()),
                    Err(_) => assert!(kind.is_some()),
                    Ok(v) => {
                        let value_decides =
                            matches!(op, BinOp::Div | BinOp::Pow) && kind == Some(Kind::Int) && v.kind() == Kind::Float;
                        assert!(kind == Some(v.kind()) || value_decides, "{a} {} {b}: {kind:?} vs {v}", op.symbol());
                    }
                }
            }
        }
    }
}

/// The checker hands lowering the value of every constant that has one
/// value per run, `--set` applied; an unpinned sweep, and what depends on
/// it, are left for each run.
#[test]
fn the_checker_hands_on_each_constant_it_knows() {
    use nnc::check::spec::Literal;
    let text = "let base = 3\nlet width = 2 * base + 1\nlet lr: float = 1\nlet half = width / 2\n\
                let tag = \"run\"\nlet w = sweep [1, 2]\nlet dep = w * 2\nlet wrap = -7 % base\n";
    let (program, diags) = nnc::resolve::load_str("consts.nn", text);
    assert!(diags.is_empty());
    let overrides = nnc::check::parse_overrides(&["base=4".to_string()]).unwrap();
    let checked = nnc::check::check(&program, &overrides);
    assert!(checked.diags.is_empty(), "{:?}", checked.diags.iter().map(|d| &d.message).collect::<Vec<_>>());
    let root: Vec<(String, Literal)> = checked
        .constants
        .iter()
        .filter(|(i, _)| i.module.0 == 0)
        .map(|(i, v)| match program.item(i.module, i.index) {
            nnc::syntax::ast::Item::Const(c) => (c.name.name.clone(), v.clone()),
            _ => panic!("a constant's item is a constant"),
        })
        .collect();
    let want = [
        ("base", Literal::Int(4)),
        ("width", Literal::Int(9)),
        ("lr", Literal::Float(1.0)),
        ("half", Literal::Float(4.5)),
        ("tag", Literal::Str("run".into())),
        ("wrap", Literal::Int(1)),
    ];
    let want: Vec<(String, Literal)> = want.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
    assert_eq!(root, want);
}
