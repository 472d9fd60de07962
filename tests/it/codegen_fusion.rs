//! Fusion and threading, compiled vs the reference interpreter: each test
//! checks both the shape of the schedule (the fusion happened) and the
//! numbers (it computes the same thing), and threaded runs against one
//! thread, bit for bit where the split does not reorder any sum.
//!
//! Tolerances as in codegen_ops: elementwise IEEE ops exact; sums and
//! products abs 1e-6 * n + rel 1e-5 (the reference accumulates in f64).

use std::collections::HashMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use nnc::ir::interp::{self, Precision, Value};
use nnc::ir::{BinaryOp, Contract, DType, Graph, InputRole, NodeId, ReduceOp, Type, UnaryOp};
use nnc::runtime::{CompiledStep, Options};
use nnc::schedule::{KernelBody, Schedule};

struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Floats in [-2, 2] (positive for inputs named `v*`), ints in [0, 10).
fn inputs(g: &Graph, seed: u64) -> HashMap<String, Value> {
    let mut r = Lcg(seed);
    let mut m = HashMap::new();
    for &id in g.inputs() {
        let nnc::ir::Op::Input(inp) = &g.node(id).op else { continue };
        let sh = IxDyn(&inp.ty.shape);
        let positive = inp.name.starts_with('v');
        let v = match inp.ty.dtype {
            DType::F32 => Value::F32(ArrayD::from_shape_fn(sh, |_| {
                let u = r.unit() as f32;
                if positive { u + 0.1 } else { u * 4.0 - 2.0 }
            })),
            DType::I32 => Value::I32(ArrayD::from_shape_fn(sh, |_| (r.unit() * 10.0) as i32)),
            DType::U8 => Value::U8(ArrayD::from_shape_fn(sh, |_| (r.unit() * 256.0) as u8)),
            DType::Bool => Value::Bool(ArrayD::from_shape_fn(sh, |_| r.unit() < 0.5)),
        };
        m.insert(inp.name.clone(), v);
    }
    m
}

fn compile(g: &Graph, in_place: bool, threads: usize) -> CompiledStep {
    CompiledStep::compile_with(g, Options { in_place, threads, c_products: false }).expect("compile")
}

/// Runs compiled and interpreted on the same inputs; compares every output.
fn check(g: &Graph, step: &mut CompiledStep, abs: f64, rel: f64) {
    let ins = inputs(g, 3);
    let want = interp::run(g, &ins, Precision::F32).expect("interp");
    let got = step.run_values(g, &ins).expect("run");
    for (((name, _), w), c) in g.outputs().iter().zip(&want).zip(&got) {
        for (i, (a, b)) in c.to_f64s().iter().zip(w.to_f64s()).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= abs + rel * b.abs();
            assert!(ok, "{name}[{i}]: got {a}, want {b}\n{}", step.schedule());
        }
    }
}

fn input(g: &mut Graph, name: &str, shape: &[usize]) -> NodeId {
    g.input(name, InputRole::Data, Type::f32(shape.to_vec())).expect("input")
}

fn scalar(g: &mut Graph, v: f64) -> NodeId {
    g.constant(v, Type::f32(vec![]))
}

fn bin(g: &mut Graph, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
    g.broadcast_binary(op, a, b).expect("binary")
}

fn loops(s: &Schedule) -> usize {
    s.kernels.iter().filter(|k| matches!(k.body, KernelBody::Loop(_))).count()
}

/// An Adam-like update: three outputs that read each other's values.
fn adam_graph(shape: &[usize]) -> Graph {
    let mut g = Graph::unfolded();
    let (p, gr, m, v) =
        (input(&mut g, "p", shape), input(&mut g, "g", shape), input(&mut g, "m", shape), input(&mut g, "v", shape));
    let c1 = g.input("c1", InputRole::Scalar, Type::f32(vec![])).expect("c1");
    let (b1, nb1, b2, nb2) = (scalar(&mut g, 0.9), scalar(&mut g, 0.1), scalar(&mut g, 0.999), scalar(&mut g, 0.001));
    let t = bin(&mut g, BinaryOp::Mul, m, b1);
    let u = bin(&mut g, BinaryOp::Mul, gr, nb1);
    let m2 = bin(&mut g, BinaryOp::Add, t, u);
    let t = bin(&mut g, BinaryOp::Mul, v, b2);
    let gg = bin(&mut g, BinaryOp::Mul, gr, gr);
    let u = bin(&mut g, BinaryOp::Mul, gg, nb2);
    let v2 = bin(&mut g, BinaryOp::Add, t, u);
    let mh = bin(&mut g, BinaryOp::Div, m2, c1);
    let sq = g.unary(UnaryOp::Sqrt, v2).expect("sqrt");
    let eps = scalar(&mut g, 1e-8);
    let den = bin(&mut g, BinaryOp::Add, sq, eps);
    let step = bin(&mut g, BinaryOp::Div, mh, den);
    let p2 = bin(&mut g, BinaryOp::Sub, p, step);
    g.set_output("p", p2).expect("p");
    g.set_output("m", m2).expect("m");
    g.set_output("v", v2).expect("v");
    g
}

#[test]
fn sibling_updates_fuse_into_one_multi_output_loop() {
    for in_place in [false, true] {
        let g = adam_graph(&[37, 21]);
        let mut step = compile(&g, in_place, 1);
        assert_eq!(loops(step.schedule()), 1, "{}", step.schedule());
        check(&g, &mut step, 0.0, 0.0);
    }
}

/// `relu(x @ w + b)` and a row sum of it.
fn dense_graph(m: usize, k: usize, n: usize) -> Graph {
    let mut g = Graph::unfolded();
    let x = input(&mut g, "x", &[m, k]);
    let w = input(&mut g, "w", &[k, n]);
    let b = input(&mut g, "b", &[n]);
    let c = Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![1], rhs_contract: vec![0] };
    let y = g.contract(x, w, c).expect("contract");
    let bb = g.broadcast_to(b, &[m, n]).expect("broadcast");
    let z = bin(&mut g, BinaryOp::Add, y, bb);
    let zero = scalar(&mut g, 0.0);
    let zero = g.broadcast_to(zero, &[m, n]).expect("broadcast");
    let h = bin(&mut g, BinaryOp::Max, z, zero);
    let s = g.reduce(ReduceOp::Sum, h, &[1]).expect("sum");
    g.set_output("h", h).expect("h");
    g.set_output("s", s).expect("s");
    g
}

#[test]
fn bias_and_activation_run_as_the_product_epilogue() {
    for (m, k, n) in [(5, 7, 9), (64, 40, 33)] {
        let g = dense_graph(m, k, n);
        let mut step = compile(&g, false, 1);
        let s = step.schedule();
        assert_eq!(s.kernels.len(), 1, "{s}");
        assert!(matches!(&s.kernels[0].body, KernelBody::Gemm(gk) if gk.epilogue.is_some()), "{s}");
        check(&g, &mut step, 1e-6 * k as f64 * 4.0, 1e-5);
    }
}

#[test]
fn a_transposed_product_is_written_transposed() {
    // w_grad = (h^T x)^T read elementwise, as in a weight gradient.
    let mut g = Graph::unfolded();
    let h = input(&mut g, "h", &[16, 12]);
    let x = input(&mut g, "x", &[16, 20]);
    let c = Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![0], rhs_contract: vec![0] };
    let y = g.contract(h, x, c).expect("contract"); // [12, 20]
    let t = g.permute(y, &[1, 0]).expect("permute"); // [20, 12]
    let w = input(&mut g, "w", &[20, 12]);
    let out = bin(&mut g, BinaryOp::Sub, w, t);
    g.set_output("w", out).expect("w");
    let mut step = compile(&g, true, 1);
    let s = step.schedule();
    let gemm = s.kernels.iter().find_map(|k| match &k.body {
        KernelBody::Gemm(gk) => Some(gk.clone()),
        KernelBody::Loop(_) | KernelBody::Conv(_) => None,
    });
    let gemm = gemm.expect("a gemm kernel");
    assert_eq!((gemm.out.rs, gemm.out.cs), (1, 12), "{s}");
    let contiguous = s.kernels.iter().all(|k| match &k.body {
        KernelBody::Loop(l) => l.nodes.iter().all(|n| match &n.expr {
            nnc::schedule::Expr::Load { view, .. } => view.inner_stride() <= 1,
            _ => true,
        }),
        KernelBody::Gemm(_) | KernelBody::Conv(_) => true,
    });
    assert!(contiguous, "{s}");
    check(&g, &mut step, 1e-6 * 16.0 * 4.0, 1e-5);
}

/// Every output of `g` from `threads` threads and from one, bit for bit.
fn same_bits(g: &Graph, in_place: bool, threads: usize) {
    let ins = inputs(g, 11);
    let one = compile(g, in_place, 1).run_values(g, &ins).expect("1 thread");
    let mut many = compile(g, in_place, threads);
    assert_eq!(many.threads(), threads);
    // Twice: the second run finds the workers spinning rather than asleep.
    for _ in 0..2 {
        let got = many.run_values(g, &ins).expect("threads");
        for (((name, _), a), b) in g.outputs().iter().zip(&one).zip(&got) {
            let (a, b) = (a.to_f64s(), b.to_f64s());
            let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
            assert!(same, "{name} differs with {threads} threads");
        }
    }
}

#[test]
fn threaded_loops_match_one_thread_bit_for_bit() {
    same_bits(&adam_graph(&[300, 257]), true, 2);
    same_bits(&adam_graph(&[300, 257]), false, 3);
    // Row sums split by rows; a column sum (over the split axis) is not split.
    let mut g = Graph::unfolded();
    let a = input(&mut g, "a", &[513, 129]);
    let e = g.unary(UnaryOp::Exp, a).expect("exp");
    let rows = g.reduce(ReduceOp::Sum, e, &[1]).expect("rows");
    let cols = g.reduce(ReduceOp::Max, e, &[0]).expect("cols");
    g.set_output("rows", rows).expect("rows");
    g.set_output("cols", cols).expect("cols");
    same_bits(&g, false, 2);
}

#[test]
fn threaded_products_match_one_thread() {
    for (m, k, n) in [(256, 64, 100), (40, 64, 300)] {
        let g = dense_graph(m, k, n);
        let mut step = compile(&g, false, 2);
        check(&g, &mut step, 1e-6 * k as f64 * 4.0, 1e-5);
        same_bits(&g, false, 2);
    }
}

/// The optimized training step of the experiment in `path`.
fn train_step(path: &str) -> Graph {
    let c = nnc::compile(Path::new(path), &[], nnc::lower::Setup::default())
        .unwrap_or_else(|_| panic!("{path} does not compile"));
    nnc::opt::optimize(&c.lowered.train).expect("optimize")
}

#[test]
fn threaded_mnist_step_matches_one_thread() {
    same_bits(&train_step("examples/mnist.nn"), true, 2);
}

/// Big enough that the input-gradient product of each layer is split
/// across threads while its epilogue sums the bias gradient over rows:
/// splitting rows there made two threads add into the same sums.
#[test]
fn threaded_large_mlp_step_matches_one_thread() {
    same_bits(&train_step("benches/mlp_large.nn"), true, 2);
}

/// `dY W^T` (B column-major, C row-major) deep and wide enough to take one
/// of the runtime's two routes around the gemm crate's slow layout (few
/// rows: the product column-major into scratch, then a blocked transpose;
/// many rows, 130 and 300: `B` transposed into scratch first), at sizes
/// that leave partial 8 x 8 blocks, on 1 and 2 threads.
#[test]
fn input_gradient_products_match_the_interpreter() {
    for (m, k, n) in [(64, 300, 260), (9, 256, 2001), (130, 512, 127), (300, 200, 70)] {
        let mut g = Graph::unfolded();
        let dy = input(&mut g, "dy", &[m, k]);
        let w = input(&mut g, "w", &[n, k]);
        let c = Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![1], rhs_contract: vec![1] };
        let dx = g.contract(dy, w, c).expect("contract");
        g.set_output("dx", dx).expect("dx");
        let step = compile(&g, false, 1);
        let gemm = step.schedule().kernels.iter().find_map(|k| match &k.body {
            KernelBody::Gemm(gk) => Some(gk.clone()),
            KernelBody::Loop(_) | KernelBody::Conv(_) => None,
        });
        let gemm = gemm.expect("a gemm kernel");
        assert_eq!((gemm.rhs.rs, gemm.out.cs), (1, 1), "not the detour's layout: {}", step.schedule());
        for threads in [1, 2] {
            check(&g, &mut compile(&g, false, threads), 1e-6 * k as f64 * 4.0, 1e-5);
        }
        same_bits(&g, false, 2);
    }
}

/// Every convolution role split across threads (images; for the kernel
/// gradients, blocks of images into partial copies, through the products
/// and the direct kernels): the units, not the thread count, fix the order
/// of every sum.
#[test]
fn threaded_cnn_step_matches_one_thread() {
    let g = train_step("examples/mnist_cnn.nn");
    same_bits(&g, true, 2);
    same_bits(&g, true, 3);
}
