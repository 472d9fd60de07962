//! The reference interpreter on hand-computed values, one family at a time.
//! Graphs are built `unfolded` so the interpreter, not the folder, computes.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use nnc::ir::interp::{Precision, Value, run, run_all};
use nnc::ir::{BinaryOp, Contract, DType, Graph, InputRole, IrError, NodeId, Type, UnaryOp, random_uniform};

fn f32v(shape: &[usize], data: &[f32]) -> Value {
    Value::F32(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap())
}

fn i32v(shape: &[usize], data: &[i32]) -> Value {
    Value::I32(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap())
}

/// Runs `g` with one output `out` and the given inputs, in f32.
fn eval(g: &mut Graph, out: NodeId, feeds: &[(&str, Value)]) -> Vec<f64> {
    g.set_output("out", out).unwrap();
    let feeds: HashMap<String, Value> = feeds.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
    run(g, &feeds, Precision::F32).unwrap()[0].to_f64s()
}

fn input(g: &mut Graph, name: &str, dtype: DType, shape: &[usize]) -> NodeId {
    g.input(name, InputRole::Data, Type::new(dtype, shape.to_vec())).unwrap()
}

#[test]
fn elementwise() {
    let mut g = Graph::unfolded();
    let x = input(&mut g, "x", DType::F32, &[4]);
    let xs = f32v(&[4], &[-1.5, 0.0, 2.0, 4.0]);
    let cases: [(UnaryOp, [f64; 4]); 6] = [
        (UnaryOp::Neg, [1.5, -0.0, -2.0, -4.0]),
        (UnaryOp::Abs, [1.5, 0.0, 2.0, 4.0]),
        (UnaryOp::Floor, [-2.0, 0.0, 2.0, 4.0]),
        (UnaryOp::Sign, [-1.0, 0.0, 1.0, 1.0]),
        (UnaryOp::Sqrt, [f64::NAN, 0.0, 2f32.sqrt() as f64, 2.0]),
        (UnaryOp::Recip, [-1.0 / 1.5f32 as f64, f64::INFINITY, 0.5, 0.25]),
    ];
    for (op, want) in cases {
        let y = g.unary(op, x).unwrap();
        let got = eval(&mut g, y, &[("x", xs.clone())]);
        for (a, b) in got.iter().zip(want) {
            assert!(a == &b || (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-6, "{op:?}: {got:?} vs {want:?}");
        }
    }
    let y = input(&mut g, "y", DType::F32, &[4]);
    let ys = f32v(&[4], &[2.0, f32::NAN, -2.0, 3.0]);
    let mx = g.binary(BinaryOp::Max, x, y).unwrap();
    let got = eval(&mut g, mx, &[("x", xs.clone()), ("y", ys.clone())]);
    assert_eq!(got[0], 2.0);
    assert!(got[1].is_nan(), "max propagates NaN");
    let lt = g.binary(BinaryOp::Lt, x, y).unwrap();
    assert_eq!(eval(&mut g, lt, &[("x", xs.clone()), ("y", ys.clone())]), vec![1.0, 0.0, 0.0, 0.0]);
    let c = g.binary(BinaryOp::Gt, x, y).unwrap();
    let sel = g.select(c, x, y).unwrap();
    assert_eq!(eval(&mut g, sel, &[("x", xs), ("y", ys)])[2..], [2.0, 4.0]);
}

#[test]
fn integer_semantics() {
    let mut g = Graph::unfolded();
    let a = input(&mut g, "a", DType::I32, &[6]);
    let b = input(&mut g, "b", DType::I32, &[6]);
    let feeds = [("a", i32v(&[6], &[7, -7, 7, -6, 5, i32::MIN])), ("b", i32v(&[6], &[2, 2, -2, 3, 0, -1]))];
    let d = g.binary(BinaryOp::Div, a, b).unwrap();
    // Floor division (Python's `//`); x / 0 = 0; MIN / -1 wraps.
    assert_eq!(eval(&mut g, d, &feeds), vec![3.0, -4.0, -4.0, -2.0, 0.0, i32::MIN as f64]);
    let f = input(&mut g, "f", DType::F32, &[4]);
    let c = g.cast(f, DType::I32).unwrap();
    let got = eval(&mut g, c, &[("f", f32v(&[4], &[-1.7, 2.9, f32::NAN, 1e20]))]);
    assert_eq!(got, vec![-1.0, 2.0, 0.0, i32::MAX as f64]);
    let u = g.cast(f, DType::U8).unwrap();
    assert_eq!(eval(&mut g, u, &[("f", f32v(&[4], &[-3.0, 2.5, 255.0, 300.0]))]), vec![0.0, 2.0, 255.0, 255.0]);
}

#[test]
fn reductions() {
    let mut g = Graph::unfolded();
    let x = input(&mut g, "x", DType::F32, &[2, 3]);
    let xs = f32v(&[2, 3], &[1.0, 5.0, 3.0, -4.0, 2.0, 0.5]);
    let s0 = g.sum(x, &[0]).unwrap();
    assert_eq!(eval(&mut g, s0, &[("x", xs.clone())]), vec![-3.0, 7.0, 3.5]);
    let m1 = g.reduce(nnc::ir::ReduceOp::Max, x, &[1]).unwrap();
    assert_eq!(eval(&mut g, m1, &[("x", xs.clone())]), vec![5.0, 2.0]);
    let all = g.sum(x, &[0, 1]).unwrap();
    assert_eq!(eval(&mut g, all, &[("x", xs)]), vec![7.5]);
}

#[test]
fn movement() {
    let mut g = Graph::unfolded();
    let x = input(&mut g, "x", DType::F32, &[2, 3]);
    let xs = f32v(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let t = g.permute(x, &[1, 0]).unwrap();
    assert_eq!(eval(&mut g, t, &[("x", xs.clone())]), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    let s = g.slice(x, &[0, 0], &[2, 3], &[1, 2]).unwrap();
    assert_eq!(eval(&mut g, s, &[("x", xs.clone())]), vec![0.0, 2.0, 3.0, 5.0]);
    let p = g.pad(x, &[0, 1], &[1, 0], 9.0).unwrap();
    let want = [9.0, 0.0, 1.0, 2.0, 9.0, 3.0, 4.0, 5.0, 9.0, 9.0, 9.0, 9.0];
    assert_eq!(eval(&mut g, p, &[("x", xs.clone())]), want);
    let c = g.concat(&[x, x], 1).unwrap();
    let want = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 3.0, 4.0, 5.0];
    assert_eq!(eval(&mut g, c, &[("x", xs.clone())]), want);
    let col = g.slice_axis(x, 1, 1, 2).unwrap();
    let b = g.broadcast_to(col, &[2, 2, 1]).unwrap();
    assert_eq!(eval(&mut g, b, &[("x", xs.clone())]), vec![1.0, 4.0, 1.0, 4.0]);
    let r = g.reshape(x, &[3, 2]).unwrap();
    assert_eq!(eval(&mut g, r, &[("x", xs)]), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn contraction() {
    let mut g = Graph::unfolded();
    let a = input(&mut g, "a", DType::F32, &[2, 2]);
    let b = input(&mut g, "b", DType::F32, &[2, 2]);
    let feeds = [("a", f32v(&[2, 2], &[1.0, 2.0, 3.0, 4.0])), ("b", f32v(&[2, 2], &[5.0, 6.0, 7.0, 8.0]))];
    let m = g.matmul(a, b).unwrap();
    assert_eq!(eval(&mut g, m, &feeds), vec![19.0, 22.0, 43.0, 50.0]);
    // a^T b: contract dim 0 with dim 0.
    let spec = Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![0], rhs_contract: vec![0] };
    let at_b = g.contract(a, b, spec).unwrap();
    assert_eq!(eval(&mut g, at_b, &feeds), vec![26.0, 30.0, 38.0, 44.0]);
    // Row-wise dot products: batch over dim 0.
    let spec = Contract { lhs_batch: vec![0], rhs_batch: vec![0], lhs_contract: vec![1], rhs_contract: vec![1] };
    let dots = g.contract(a, b, spec).unwrap();
    assert_eq!(eval(&mut g, dots, &feeds), vec![17.0, 53.0]);
}

#[test]
fn gather_and_scatter_out_of_range() {
    let mut g = Graph::unfolded();
    let data = input(&mut g, "data", DType::F32, &[3, 2]);
    let idx = input(&mut g, "idx", DType::I32, &[4]);
    let feeds = [("data", f32v(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])), ("idx", i32v(&[4], &[2, -1, 0, 3]))];
    let rows = g.gather(data, idx, 0).unwrap();
    // Out-of-range indices (-1, 3) read as zeros.
    assert_eq!(eval(&mut g, rows, &feeds), vec![5.0, 6.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0]);
    let i2 = input(&mut g, "i2", DType::I32, &[3]);
    let cols = g.gather(data, i2, 1).unwrap();
    let feeds2 = [feeds[0].clone(), ("i2", i32v(&[3], &[1, 1, 7]))];
    assert_eq!(eval(&mut g, cols, &feeds2), vec![2.0, 2.0, 0.0, 4.0, 4.0, 0.0, 6.0, 6.0, 0.0]);
    let upd = input(&mut g, "upd", DType::F32, &[4]);
    let sc = g.scatter_add(idx, upd, 0, 3).unwrap();
    // Repeated indices add up; out-of-range updates are dropped.
    let feeds3 = [("idx", i32v(&[4], &[2, -1, 2, 3])), ("upd", f32v(&[4], &[1.0, 10.0, 100.0, 1000.0]))];
    assert_eq!(eval(&mut g, sc, &feeds3), vec![0.0, 0.0, 101.0]);
}

#[test]
fn sources() {
    let mut g = Graph::unfolded();
    let io = g.iota(&[2, 3], 1).unwrap();
    assert_eq!(eval(&mut g, io, &[]), vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
    let lit = g.literal(&[1.0, 2.5, 0.1], Type::f32([3])).unwrap();
    assert_eq!(eval(&mut g, lit, &[]), vec![1.0, 2.5, 0.1f32 as f64]);
    let key = input(&mut g, "key", DType::I32, &[]);
    let r = g.random(key, 7, &[2, 2]).unwrap();
    let got = eval(&mut g, r, &[("key", i32v(&[], &[42]))]);
    let want: Vec<f64> = (0..4).map(|i| random_uniform(42, 7, i) as f64).collect();
    assert_eq!(got, want);
    assert!(got.iter().all(|v| (0.0..1.0).contains(v)));
    // Pinned values, computed independently (in Python) from the documented
    // definition: every backend must reproduce these bits.
    assert_eq!(random_uniform(0, 0, 0).to_bits(), 0x3e5e_064c);
    assert_eq!(random_uniform(42, 7, 3).to_bits(), 0x3e79_7d20);
    assert_eq!(random_uniform(-1, (1 << 40) + 5, 1000).to_bits(), 0x3e9e_ed6e);
}

#[test]
fn random_is_uniform_enough() {
    // Mean 1/2 and variance 1/12 within a few standard errors over 2^16 draws.
    let n = 1u32 << 16;
    let xs: Vec<f64> = (0..n).map(|i| random_uniform(3, 11, i) as f64).collect();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    assert!((var - 1.0 / 12.0).abs() < 0.002, "var {var}");
    // Different keys and salts decorrelate.
    assert_ne!(random_uniform(3, 11, 0), random_uniform(4, 11, 0));
    assert_ne!(random_uniform(3, 11, 0), random_uniform(3, 12, 0));
}

#[test]
fn f64_precision_keeps_digits() {
    let mut g = Graph::unfolded();
    let x = input(&mut g, "x", DType::F32, &[1]);
    let third = g.div(x, x).unwrap();
    let y = g.add(third, x).unwrap();
    g.set_output("y", y).unwrap();
    let feeds: HashMap<String, Value> = [("x".to_string(), Value::F64(ArrayD::from_elem(IxDyn(&[1]), 0.1)))].into();
    assert_eq!(run(&g, &feeds, Precision::F64).unwrap()[0].to_f64s(), vec![1.1]);
    assert_eq!(run(&g, &feeds, Precision::F32).unwrap()[0].to_f64s(), vec![1.1f32 as f64]);
    assert_eq!(run_all(&g, &feeds, Precision::F64).unwrap().len(), g.len());
}

#[test]
fn missing_or_mistyped_inputs_are_errors() {
    let mut g = Graph::unfolded();
    let x = input(&mut g, "x", DType::F32, &[2]);
    g.set_output("x", x).unwrap();
    let err = run(&g, &HashMap::new(), Precision::F32).unwrap_err();
    assert!(matches!(err, IrError::Input { .. }), "{err}");
    let feeds: HashMap<String, Value> = [("x".to_string(), f32v(&[3], &[1.0, 2.0, 3.0]))].into();
    assert!(matches!(run(&g, &feeds, Precision::F32), Err(IrError::Input { .. })));
    let feeds: HashMap<String, Value> = [("x".to_string(), i32v(&[2], &[1, 2]))].into();
    assert!(matches!(run(&g, &feeds, Precision::F32), Err(IrError::Input { .. })));
}
