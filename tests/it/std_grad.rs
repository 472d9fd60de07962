//! Gradient check of every differentiable function and layer of std, as a
//! user calls it: the snippet is lowered with `nnc::lower::trace`,
//! differentiated by `nnc::autodiff`, and compared with central finite
//! differences of the same graph, all evaluated by the reference
//! interpreter in f64.
//!
//! Tolerance: |analytic - numeric| <= 1e-6 * max(1, |analytic|, |numeric|)
//! with eps = 1e-6. In f64 the central difference's truncation error is
//! O(eps^2 * f''') ~ 1e-12 and its rounding error ~ 1e-16 * |L| / eps
//! ~ 1e-10 * |L|; the losses here are O(10), so 1e-6 leaves a wide margin
//! while a wrong rule (a missing factor, a wrong axis) is off by O(1).
//! Inputs are drawn from N(0, 1), so landing within eps of a kink (relu,
//! max, abs, a clamp) has probability ~1e-6 per element.

use ndarray::{ArrayD, IxDyn};
use nnc::autodiff;
use nnc::ir::interp::{self, Precision, Value};
use nnc::ir::{DType, Graph, InputRole, NodeId, Op, Type};
use nnc::runner::data::{SplitMix64, mix64};
use std::collections::HashMap;

const PRELUDE: &str = "
use std.nn.{relu, gelu, silu, softmax, log_softmax, dropout, Linear, Conv2d, max_pool, avg_pool,
            global_avg_pool,
            Embedding, LayerNorm, BatchNorm, CausalSelfAttention, FeedForward, Block}
use std.loss.{cross_entropy, mse, bce, bce_with_logits}
use std.metrics.{accuracy, error_rate, binary_accuracy}
";

/// A snippet and its inputs: f32 inputs are random normals, i32 inputs are
/// ids below the given bound.
struct Case {
    expr: &'static str,
    inputs: Vec<(&'static str, DType, Vec<usize>, i32)>,
}

fn f(name: &'static str, shape: &[usize]) -> (&'static str, DType, Vec<usize>, i32) {
    (name, DType::F32, shape.to_vec(), 0)
}

fn ids(name: &'static str, shape: &[usize], below: i32) -> (&'static str, DType, Vec<usize>, i32) {
    (name, DType::I32, shape.to_vec(), below)
}

fn cases() -> Vec<Case> {
    let c = |expr, inputs| Case { expr, inputs };
    vec![
        c("relu(x)", vec![f("x", &[3, 4])]),
        c("gelu(x)", vec![f("x", &[3, 4])]),
        c("gelu(x, approximate: false)", vec![f("x", &[3, 4])]),
        c("silu(x)", vec![f("x", &[2, 5])]),
        c("sigmoid(x) + tanh(x)", vec![f("x", &[7])]),
        c("softmax(x)", vec![f("x", &[2, 3, 4])]),
        c("softmax(x, axis: 0)", vec![f("x", &[3, 1])]),
        c("log_softmax(x)", vec![f("x", &[4, 5])]),
        c("dropout(x, 0.3)", vec![f("x", &[4, 6])]),
        c("Linear(5, 3)(x)", vec![f("x", &[2, 5])]),
        c("Linear(4, 2, bias: false)(x)", vec![f("x", &[3, 1, 4])]),
        c("Conv2d(2, 3, 3, padding: 1)(x)", vec![f("x", &[2, 5, 5, 2])]),
        c("Conv2d(1, 2, 2, stride: 2)(x)", vec![f("x", &[1, 5, 4, 1])]),
        c("max_pool(x, 2)", vec![f("x", &[2, 4, 5, 3])]),
        c("avg_pool(x, 2)", vec![f("x", &[1, 4, 4, 2])]),
        c("Conv2d(4, 6, 3, stride: 2, padding: 1, dilation: 2, groups: 2)(x)", vec![f("x", &[1, 7, 6, 4])]),
        c("Conv2d(3, 3, 3, padding: 1, groups: 3, bias: false)(x)", vec![f("x", &[2, 5, 5, 3])]),
        c("conv(x, w, padding: \"same\", dilation: [1, 2])", vec![f("x", &[2, 5, 6, 3]), f("w", &[3, 3, 3, 2])]),
        c("conv(x, w, stride: 2)", vec![f("x", &[2, 9, 3]), f("w", &[4, 3, 2])]),
        c("max_pool(x, 3, stride: 2)", vec![f("x", &[1, 7, 6, 2])]),
        c("avg_pool(x, 2, stride: 1)", vec![f("x", &[1, 4, 5, 2])]),
        c("window_max(x, size: [2, 3])", vec![f("x", &[2, 5, 7, 2])]),
        c("global_avg_pool(x)", vec![f("x", &[2, 3, 4, 5])]),
        c("Embedding(7, 3)(ids)", vec![ids("ids", &[2, 4], 7)]),
        c("LayerNorm(6)(x)", vec![f("x", &[2, 3, 6])]),
        // Training mode: batch statistics, through the mean and the variance.
        c("BatchNorm(3)(x)", vec![f("x", &[5, 3])]),
        c("BatchNorm(2)(x)", vec![f("x", &[2, 3, 3, 2])]),
        c("CausalSelfAttention(8, 2)(x)", vec![f("x", &[2, 4, 8])]),
        c("FeedForward(4, 8)(x)", vec![f("x", &[2, 3, 4])]),
        c("Block(8, 2)(x)", vec![f("x", &[1, 3, 8])]),
        c("cross_entropy(x, y)", vec![f("x", &[4, 5]), ids("y", &[4], 5)]),
        c("cross_entropy(x, y)", vec![f("x", &[2, 3, 4]), ids("y", &[2, 3], 4)]),
        c("mse(a, b)", vec![f("a", &[3, 2]), f("b", &[3, 2])]),
        c("bce(sigmoid(z), sigmoid(t))", vec![f("z", &[5]), f("t", &[5])]),
        c("bce_with_logits(z, sigmoid(t))", vec![f("z", &[2, 3]), f("t", &[2, 3])]),
        c("accuracy(x, y) + error_rate(x, y)", vec![f("x", &[4, 3]), ids("y", &[4], 3)]),
        c("binary_accuracy(sigmoid(z), sigmoid(t))", vec![f("z", &[6]), f("t", &[6])]),
    ]
}

fn normal(rng: &mut SplitMix64) -> f64 {
    let u = 1.0 - (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let v = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn random_f64(shape: &[usize], rng: &mut SplitMix64, scale: f64) -> ArrayD<f64> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| scale * normal(rng)).collect()).unwrap()
}

/// Lower the case, then append `loss = sum(out * r)` and its gradients.
fn build(case: &Case) -> (Graph, Vec<String>, NodeId, Vec<NodeId>) {
    let (mut program, diags) = nnc::resolve::load_str("grad.nn", PRELUDE);
    assert!(diags.is_empty(), "prelude: {:?}", diags.iter().map(|d| &d.message).collect::<Vec<_>>());
    let inputs: Vec<(&str, DType, Vec<usize>)> = case.inputs.iter().map(|(n, d, s, _)| (*n, *d, s.clone())).collect();
    let traced =
        nnc::lower::trace(&mut program, case.expr, &inputs).unwrap_or_else(|d| panic!("{}: {}", case.expr, d.message));
    let mut g = traced.graph;
    let out = g.output("out").unwrap();
    let out_ty = g.ty(out).unwrap();
    let r = g.input("r", InputRole::Data, Type::new(DType::F32, out_ty.shape.clone())).unwrap();
    let prod = g.mul(out, r).unwrap();
    let loss = g.sum_all(prod).unwrap();
    g.set_output("loss", loss).unwrap();
    let wrt: Vec<String> = g
        .inputs()
        .iter()
        .filter(|&&id| g.ty(id).unwrap().dtype == DType::F32 && input_name(&g, id) != Some("r"))
        .map(|&id| input_name(&g, id).unwrap().to_string())
        .collect();
    let wrt_ids: Vec<NodeId> = wrt.iter().map(|n| g.find_input(n).unwrap()).collect();
    let grads = autodiff::grad(&mut g, loss, &wrt_ids).unwrap();
    for (n, gr) in wrt.iter().zip(&grads) {
        g.set_output(format!("grad/{n}"), *gr).unwrap();
    }
    (g, wrt, loss, grads)
}

fn input_name(g: &Graph, id: NodeId) -> Option<&str> {
    match &g.node(id).op {
        Op::Input(i) => Some(&i.name),
        _ => None,
    }
}

fn eval(g: &Graph, vals: &HashMap<String, Value>) -> HashMap<String, ArrayD<f64>> {
    let outs = interp::run(g, vals, Precision::F64).unwrap();
    g.outputs()
        .iter()
        .zip(outs)
        .filter_map(|((n, _), v)| match v {
            Value::F64(a) => Some((n.clone(), a)),
            Value::F32(a) => Some((n.clone(), a.mapv(f64::from))),
            _ => None,
        })
        .collect()
}

fn check(case: &Case, seed: u64) {
    let (g, wrt, _, _) = build(case);
    let mut rng = SplitMix64::new(seed);
    let mut vals: HashMap<String, Value> = HashMap::new();
    vals.insert("rng".into(), Value::I32(ArrayD::from_elem(IxDyn(&[]), 12345)));
    for &id in g.inputs() {
        let name = input_name(&g, id).unwrap().to_string();
        let ty = g.ty(id).unwrap();
        if vals.contains_key(&name) {
            continue;
        }
        let bound = case.inputs.iter().find(|(n, ..)| *n == name).map_or(0, |(_, _, _, b)| *b);
        let v = match ty.dtype {
            DType::I32 => {
                let n: usize = ty.shape.iter().product();
                let data = (0..n).map(|_| rng.below(bound.max(1) as u64) as i32).collect();
                Value::I32(ArrayD::from_shape_vec(IxDyn(&ty.shape), data).unwrap())
            }
            _ => Value::F64(random_f64(&ty.shape, &mut rng, if name == "r" { 1.0 } else { 0.7 })),
        };
        vals.insert(name, v);
    }
    let base = eval(&g, &vals);
    let eps = 1e-6;
    for name in &wrt {
        let analytic = &base[&format!("grad/{name}")];
        let Value::F64(x0) = vals[name].clone() else { unreachable!("f32 inputs are given as f64") };
        let n = x0.len();
        // Every element of small tensors; a fixed sample of large ones.
        let picks: Vec<usize> =
            if n <= 48 { (0..n).collect() } else { (0..48).map(|i| (mix64(seed + i) % n as u64) as usize).collect() };
        for k in picks {
            let mut plus = x0.clone();
            plus.as_slice_mut().unwrap()[k] += eps;
            let mut minus = x0.clone();
            minus.as_slice_mut().unwrap()[k] -= eps;
            vals.insert(name.clone(), Value::F64(plus));
            let lp = eval(&g, &vals)["loss"].iter().next().copied().unwrap();
            vals.insert(name.clone(), Value::F64(minus));
            let lm = eval(&g, &vals)["loss"].iter().next().copied().unwrap();
            vals.insert(name.clone(), Value::F64(x0.clone()));
            let numeric = (lp - lm) / (2.0 * eps);
            let a = analytic.as_slice().unwrap()[k];
            let tol = 1e-6 * 1f64.max(a.abs()).max(numeric.abs());
            assert!((a - numeric).abs() <= tol, "{}: d/d{name}[{k}] analytic {a} vs numeric {numeric}", case.expr);
        }
    }
}

#[test]
fn every_std_function_matches_finite_differences() {
    for (i, case) in cases().iter().enumerate() {
        check(case, 1000 + i as u64);
    }
}

#[test]
fn gradients_reach_every_parameter() {
    // A layer whose parameters get no gradient would pass the check above
    // vacuously; make sure each parameter's gradient is not identically zero.
    // `bias: false` leaves `b` unused on purpose: its zero gradient is right,
    // as are the zero gradients of buffers (role State), which training
    // never reads.
    for case in cases().iter().filter(|c| c.expr.contains(")(") && !c.expr.contains("bias: false")) {
        let (g, wrt, _, grads) = build(case);
        for (n, gr) in wrt.iter().zip(grads) {
            let buffer = matches!(&g.node(g.find_input(n).unwrap()).op, Op::Input(i) if i.role == InputRole::State);
            assert!(buffer || g.splat(gr) != Some(0.0), "{}: gradient of {n} is a constant zero", case.expr);
        }
    }
}

/// relu'(0) = 0, the peers' convention (PyTorch, Keras, jax.nn.relu), so a
/// blank input or a zero bias gets the gradient it gets there.
#[test]
fn relu_derivative_at_zero_is_zero() {
    let case = Case { expr: "relu(x)", inputs: vec![f("x", &[3])] };
    let (g, _, _, _) = build(&case);
    let mut vals: HashMap<String, Value> = HashMap::new();
    vals.insert("x".into(), Value::F64(ArrayD::from_shape_vec(IxDyn(&[3]), vec![-1.0, 0.0, 1.0]).unwrap()));
    vals.insert("r".into(), Value::F64(ArrayD::from_elem(IxDyn(&[3]), 1.0)));
    let out = eval(&g, &vals);
    assert_eq!(out["grad/x"].iter().copied().collect::<Vec<f64>>(), vec![0.0, 0.0, 1.0]);
}

/// A builtin on a compile-time number is folded by the IR's own rule:
/// `sign(0.0)` is 0 as `sign(x)` at x = 0 is (it was once 1, f64::signum's).
#[test]
fn folded_constants_agree_with_the_op_on_tensors() {
    let case = Case { expr: "x * sign(0.0) + sign(x)", inputs: vec![f("x", &[2])] };
    let (g, _, _, _) = build(&case);
    let mut vals: HashMap<String, Value> = HashMap::new();
    vals.insert("x".into(), Value::F64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![0.0, 3.0]).unwrap()));
    vals.insert("r".into(), Value::F64(ArrayD::from_elem(IxDyn(&[2]), 1.0)));
    let out = eval(&g, &vals);
    assert_eq!(out["out"].iter().copied().collect::<Vec<f64>>(), vec![0.0, 1.0]);
}

fn run_f64(expr: &'static str, xs: &[f64]) -> Vec<f64> {
    let case = Case { expr, inputs: vec![f("x", &[xs.len()])] };
    let (g, _, _, _) = build(&case);
    let mut vals: HashMap<String, Value> = HashMap::new();
    vals.insert("x".into(), Value::F64(ArrayD::from_shape_vec(IxDyn(&[xs.len()]), xs.to_vec()).unwrap()));
    vals.insert("r".into(), Value::F64(ArrayD::from_elem(IxDyn(&[xs.len()]), 1.0)));
    eval(&g, &vals)["out"].iter().copied().collect()
}

/// Exact GELU is x Phi(x): the values PyTorch's `gelu(approximate="none")`
/// gives, and the tanh form within 1e-3 of them.
#[test]
fn exact_gelu_is_x_times_the_normal_cdf() {
    let xs = [-3.0, -0.5, 0.0, 1.0, 2.5];
    let want = [-0.004049694094890, -0.154268769362993, 0.0, 0.841344746068543, 2.48447583668556];
    let exact = run_f64("gelu(x, approximate: false)", &xs);
    let tanh = run_f64("gelu(x)", &xs);
    for ((e, t), w) in exact.iter().zip(&tanh).zip(want) {
        assert!((e - w).abs() < 1e-8, "exact {e} vs {w}");
        assert!((t - w).abs() < 1e-3 && (t != e || *e == 0.0), "tanh form {t} vs {w}");
    }
}

/// Every elementwise builtin is reachable by name from a program and lowers
/// to its own IR op: called on a tensor it gives the op's scalar function,
/// and on a compile-time number the same value (folded by the same row).
#[test]
fn every_elementwise_builtin_lowers_to_its_op() {
    let unary = nnc::builtins::Builtin::all().filter_map(|b| match b {
        nnc::builtins::Builtin::Unary(op) => Some(op),
        _ => None,
    });
    for op in unary {
        let name = op.row().name;
        let x = 0.375; // exact in f32, the inputs' dtype
        let want = op.fold_f64(x).expect("a builtin takes floats");
        let tensor: &'static str = Box::leak(format!("{name}(x)").into_boxed_str());
        let folded: &'static str = Box::leak(format!("x * 0.0 + {name}({x})").into_boxed_str());
        // Folded constants are stored as f32: compare to f32 rounding.
        let close = |got: Vec<f64>| got.len() == 1 && (got[0] - want).abs() <= 1e-7 * want.abs().max(1.0);
        assert!(close(run_f64(tensor, &[x])), "{name}(x)");
        assert!(close(run_f64(folded, &[x])), "{name}({x})");
    }
}
