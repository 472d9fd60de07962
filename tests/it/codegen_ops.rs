//! Every op, compiled vs the reference interpreter.
//!
//! Tolerances, per output element `|got - want| <= abs + rel |want|`:
//! - single IEEE ops (+ - * / sqrt, max/min, floor, compares, select,
//!   casts, movement, gather/scatter on exact data): exact (0, 0). The
//!   reference rounds each f32 node's f64 result once, which equals the
//!   correctly rounded f32 operation.
//! - rsqrt, recip of sqrt: 1/sqrt(x) rounds twice in f32: rel 2.4e-7 (2 ulp).
//! - exp/log/tanh/sigmoid polynomials: rel 4e-7 (3 ulp, see codegen::math).
//! - sums and matmuls: the reference accumulates in f64, we in f32 in
//!   another order: error <= n eps sum|x|; with |x| <= 2 and n terms we
//!   allow abs 1e-6 * n + rel 1e-5.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use nnc::ir::interp::{self, Precision, Value};
use nnc::ir::{BinaryOp, Contract, DType, Graph, InputRole, NodeId, ReduceOp, Type, UnaryOp};
use nnc::runtime::CompiledStep;
use proptest::prelude::*;

/// A deterministic pseudo-random stream for test data.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random data for every input of `g`: floats in [-2, 2], ints in [-4, 12),
/// with `specials` (NaN, ±inf, ±0, large) sprinkled into float inputs.
fn inputs(g: &Graph, seed: u64, specials: bool) -> HashMap<String, Value> {
    let mut r = Lcg(seed);
    let mut m = HashMap::new();
    for &id in g.inputs() {
        let nnc::ir::Op::Input(inp) = &g.node(id).op else { continue };
        let sh = IxDyn(&inp.ty.shape);
        let v = match inp.ty.dtype {
            DType::F32 => Value::F32(ArrayD::from_shape_fn(sh, |_| {
                let u = r.unit();
                let sp = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 300.7, -1e10, 1e-3];
                if specials && u < 0.25 { sp[(u * 32.0) as usize % sp.len()] } else { (u * 4.0 - 2.0) as f32 }
            })),
            DType::I32 => Value::I32(ArrayD::from_shape_fn(sh, |_| (r.unit() * 16.0) as i32 - 4)),
            DType::U8 => Value::U8(ArrayD::from_shape_fn(sh, |_| (r.unit() * 256.0) as u8)),
            DType::Bool => Value::Bool(ArrayD::from_shape_fn(sh, |_| r.unit() < 0.5)),
        };
        m.insert(inp.name.clone(), v);
    }
    m
}

fn close(got: f64, want: f64, abs: f64, rel: f64) -> bool {
    (got.is_nan() && want.is_nan()) || got == want || (got - want).abs() <= abs + rel * want.abs()
}

/// Compiles `g`, runs both on the same inputs, compares every output.
pub(crate) fn check_with(g: &Graph, seed: u64, specials: bool, abs: f64, rel: f64) -> Result<(), String> {
    let ins = inputs(g, seed, specials);
    let want = interp::run(g, &ins, Precision::F32).map_err(|e| format!("interp: {e}"))?;
    let mut step = CompiledStep::compile(g).map_err(|e| format!("compile: {e}"))?;
    let got = step.run_values(g, &ins).map_err(|e| format!("run: {e}"))?;
    for (((name, _), w), c) in g.outputs().iter().zip(&want).zip(&got) {
        if w.shape() != c.shape() {
            return Err(format!("{name}: shape {:?} vs {:?}", c.shape(), w.shape()));
        }
        for (i, (a, b)) in c.to_f64s().iter().zip(w.to_f64s()).enumerate() {
            if !close(*a, b, abs, rel) {
                return Err(format!("{name}[{i}]: got {a}, want {b}\n{}", step.schedule()));
            }
        }
    }
    Ok(())
}

fn check(g: &Graph, abs: f64, rel: f64) {
    if let Err(e) = check_with(g, 7, false, abs, rel) {
        panic!("{e}");
    }
}

fn input(g: &mut Graph, name: &str, dtype: DType, shape: &[usize]) -> NodeId {
    g.input(name, InputRole::Data, Type::new(dtype, shape.to_vec())).expect("input")
}

fn one_op(dtype: DType, shape: &[usize], f: impl Fn(&mut Graph, NodeId, NodeId) -> NodeId) -> Graph {
    let mut g = Graph::unfolded();
    let a = input(&mut g, "a", dtype, shape);
    let b = input(&mut g, "b", dtype, shape);
    let y = f(&mut g, a, b);
    g.set_output("y", y).expect("output");
    g
}

fn unary_f32() -> Vec<UnaryOp> {
    UnaryOp::ALL.iter().copied().filter(|u| u.row().accepts(DType::F32)).collect()
}

/// The float unary ops random chains are built from: all but those whose
/// result a last-ulp difference upstream (a sum in another order) can move
/// arbitrarily far: `sin`/`cos` of large values, and the jumps of `floor`
/// and `sign`. Each of those is compared exactly on its own above.
fn chain_unary() -> Vec<UnaryOp> {
    let ill_conditioned = [UnaryOp::Sin, UnaryOp::Cos, UnaryOp::Floor, UnaryOp::Sign];
    unary_f32().into_iter().filter(|u| !ill_conditioned.contains(u)).collect()
}

/// Every unary op of the IR's table, on every dtype its row accepts: a new
/// op is compiled and compared without being listed here.
#[test]
fn unary_ops_on_every_dtype_they_accept() {
    for &op in UnaryOp::ALL {
        let row = op.row();
        if row.accepts(DType::F32) {
            for shape in [&[3, 5][..], &[9], &[]] {
                let g = one_op(DType::F32, shape, |g, a, _| g.unary(op, a).expect("unary"));
                if let Err(e) = check_with(&g, 3, true, 0.0, 4e-7) {
                    panic!("{op:?} {shape:?}: {e}");
                }
            }
        }
        for dt in [DType::I32, DType::Bool, DType::U8].into_iter().filter(|d| row.accepts(*d)) {
            check(&one_op(dt, &[2, 7], |g, a, _| g.unary(op, a).expect("unary")), 0.0, 0.0);
        }
    }
}

#[test]
fn binary_ops_on_every_dtype() {
    for &op in BinaryOp::ALL {
        for dt in [DType::F32, DType::I32, DType::Bool, DType::U8] {
            for shape in [&[3, 6][..], &[11]] {
                let mut g = Graph::unfolded();
                let a = input(&mut g, "a", dt, shape);
                let b = input(&mut g, "b", dt, shape);
                let Ok(y) = g.binary(op, a, b) else { continue }; // not defined on dt
                g.set_output("y", y).expect("output");
                if let Err(e) = check_with(&g, 5, dt == DType::F32, 0.0, 0.0) {
                    panic!("{op:?} on {dt}: {e}");
                }
            }
        }
    }
}

#[test]
fn integer_division_edge_cases() {
    let mut g = Graph::unfolded();
    let a = [7.0, -7.0, 7.0, -7.0, -6.0, f64::from(i32::MIN), 5.0, 0.0];
    let b = [2.0, 2.0, -2.0, -2.0, 3.0, -1.0, 0.0, 0.0];
    let a = g.literal(&a, Type::new(DType::I32, vec![8])).expect("lit");
    let b = g.literal(&b, Type::new(DType::I32, vec![8])).expect("lit");
    let y = g.binary(BinaryOp::Div, a, b).expect("div");
    g.set_output("y", y).expect("output");
    check(&g, 0.0, 0.0);
}

#[test]
fn casts_between_every_dtype() {
    let all = [DType::F32, DType::I32, DType::Bool, DType::U8];
    for from in all {
        for to in all {
            for shape in [&[2, 9][..], &[4]] {
                let g = one_op(from, shape, |g, a, _| g.cast(a, to).expect("cast"));
                if let Err(e) = check_with(&g, 11, true, 0.0, 0.0) {
                    panic!("cast {from} -> {to}: {e}");
                }
            }
        }
    }
}

#[test]
fn select_on_every_dtype() {
    for dt in [DType::F32, DType::I32, DType::Bool, DType::U8] {
        let mut g = Graph::unfolded();
        let c = input(&mut g, "c", DType::Bool, &[5, 6]);
        let a = input(&mut g, "a", dt, &[5, 6]);
        let b = input(&mut g, "b", dt, &[5, 6]);
        let y = g.select(c, a, b).expect("select");
        g.set_output("y", y).expect("output");
        check(&g, 0.0, 0.0);
    }
}

/// Rows read across a stride (a transpose's) and bools read as masks, in
/// kernels that run four lanes: put together lane by lane, with a scalar
/// tail (7 = 4 + 3), a mask read both along its rows and across them.
#[test]
fn strided_and_bool_rows_in_vector_kernels() {
    for dt in [DType::F32, DType::I32, DType::U8, DType::Bool] {
        let mut g = Graph::unfolded();
        let c = input(&mut g, "c", DType::Bool, &[7, 7]);
        let a = input(&mut g, "a", dt, &[7, 7]);
        let ct = g.permute(c, &[1, 0]).expect("permute");
        let at = g.permute(a, &[1, 0]).expect("permute");
        let (a, at) = (g.cast(a, DType::F32).expect("cast"), g.cast(at, DType::F32).expect("cast"));
        let y = g.select(c, at, a).expect("select");
        let y = g.select(ct, y, at).expect("select");
        g.set_output("y", y).expect("output");
        check(&g, 0.0, 0.0);
    }
}

#[test]
fn reductions_over_every_axis_set() {
    let shape = [3, 5, 6];
    for mask in 0u32..8 {
        let axes: Vec<usize> = (0..3).filter(|a| mask & (1 << a) != 0).collect();
        for op in [ReduceOp::Sum, ReduceOp::Max] {
            for dt in [DType::F32, DType::I32] {
                let g = one_op(dt, &shape, |g, a, _| g.reduce(op, a, &axes).expect("reduce"));
                let specials = op == ReduceOp::Max && dt == DType::F32;
                if let Err(e) = check_with(&g, 13, specials, 1e-6 * 90.0, 1e-5) {
                    panic!("{op:?} {axes:?} {dt}: {e}");
                }
            }
        }
    }
}

#[test]
fn long_sums_use_several_accumulators() {
    let g = one_op(DType::F32, &[3, 1001], |g, a, _| g.reduce(ReduceOp::Sum, a, &[1]).expect("sum"));
    check(&g, 1e-6 * 1001.0, 1e-5);
}

/// Builds one case's output from its input.
type Case = Box<dyn Fn(&mut Graph, NodeId) -> NodeId>;

#[test]
fn movement_ops_as_views() {
    let cases: Vec<Case> = vec![
        Box::new(|g, a| g.reshape(a, &[6, 5, 3]).expect("reshape")),
        Box::new(|g, a| g.permute(a, &[2, 0, 1]).expect("permute")),
        Box::new(|g, a| {
            let p = g.permute(a, &[1, 0, 2]).expect("permute");
            g.reshape(p, &[15, 6]).expect("reshape of a transpose")
        }),
        Box::new(|g, a| g.slice(a, &[1, 0, 1], &[3, 5, 4], &[1, 2, 2]).expect("slice")),
        Box::new(|g, a| {
            let s = g.slice(a, &[0, 1, 0], &[3, 2, 6], &[1, 1, 1]).expect("slice");
            g.broadcast_to(s, &[2, 3, 4, 6]).expect("broadcast")
        }),
        Box::new(|g, a| g.pad(a, &[1, 0, 2], &[0, 3, 1], -1.5).expect("pad")),
        Box::new(|g, a| {
            let e = g.unary(UnaryOp::Exp, a).expect("exp");
            g.concat(&[a, e, a], 1).expect("concat")
        }),
    ];
    for (i, f) in cases.iter().enumerate() {
        let g = one_op(DType::F32, &[3, 5, 6][..], |g, a, _| f(g, a));
        if let Err(e) = check_with(&g, 17, false, 0.0, 4e-7) {
            panic!("case {i}: {e}");
        }
    }
}

#[test]
fn contractions() {
    let cases: Vec<(Vec<usize>, Vec<usize>, Contract)> = vec![
        (
            vec![5, 7],
            vec![7, 3],
            Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![1], rhs_contract: vec![0] },
        ),
        (
            vec![7, 5],
            vec![7, 3],
            Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![0], rhs_contract: vec![0] },
        ),
        (
            vec![2, 5, 7],
            vec![2, 3, 7],
            Contract { lhs_batch: vec![0], rhs_batch: vec![0], lhs_contract: vec![2], rhs_contract: vec![2] },
        ),
        (
            vec![4, 3, 2],
            vec![3, 2, 6],
            Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![1, 2], rhs_contract: vec![0, 1] },
        ),
        (
            vec![3, 2, 4],
            vec![4, 2],
            Contract { lhs_batch: vec![1], rhs_batch: vec![1], lhs_contract: vec![2], rhs_contract: vec![0] },
        ),
    ];
    for (i, (ls, rs, c)) in cases.into_iter().enumerate() {
        let mut g = Graph::unfolded();
        let a = input(&mut g, "a", DType::F32, &ls);
        let b = input(&mut g, "b", DType::F32, &rs);
        let e = g.unary(UnaryOp::Tanh, b).expect("tanh"); // a fused producer: packed
        let y = g.contract(a, e, c).expect("contract");
        g.set_output("y", y).expect("output");
        if let Err(err) = check_with(&g, 19, false, 1e-5, 1e-5) {
            panic!("case {i}: {err}");
        }
    }
}

#[test]
fn gather_and_scatter_with_out_of_range_indices() {
    let mut g = Graph::unfolded();
    let data = input(&mut g, "data", DType::F32, &[4, 5]);
    let idx = g.literal(&[0.0, 3.0, -1.0, 4.0, 100.0, 2.0], Type::new(DType::I32, vec![2, 3])).expect("lit");
    for axis in 0..2 {
        let y = g.gather(data, idx, axis).expect("gather");
        g.set_output(format!("gather{axis}"), y).expect("output");
    }
    let upd = input(&mut g, "upd", DType::F32, &[2, 3, 5]);
    let s = g.scatter_add(idx, upd, 0, 4).expect("scatter");
    g.set_output("scatter", s).expect("output");
    // Sums of up to 6 updates: reassociation only.
    check(&g, 1e-6, 1e-6);
}

#[test]
fn gather_from_an_empty_axis_reads_nothing() {
    let mut g = Graph::unfolded();
    let data = input(&mut g, "data", DType::F32, &[0, 3]);
    let idx = g.literal(&[0.0, 1.0], Type::new(DType::I32, vec![2])).expect("lit");
    let y = g.gather(data, idx, 0).expect("gather");
    g.set_output("y", y).expect("output");
    check(&g, 0.0, 0.0);
}

#[test]
fn iota_and_random_match_bit_for_bit() {
    let mut g = Graph::unfolded();
    let key = input(&mut g, "key", DType::I32, &[]);
    let r = g.random(key, 0x1234_5678_9abc, &[3, 7]).expect("random");
    let p = g.permute(r, &[1, 0]).expect("permute");
    let i = g.iota(&[4, 6], 1).expect("iota");
    g.set_output("r", p).expect("output");
    g.set_output("i", i).expect("output");
    // Four lanes at a time with a scalar tail, along the draws and across them.
    let r = g.random(key, 7, &[6, 9]).expect("random");
    let p = g.permute(r, &[1, 0]).expect("permute");
    g.set_output("rows", r).expect("output");
    g.set_output("columns", p).expect("output");
    check(&g, 0.0, 0.0);
}

#[test]
fn outputs_that_are_inputs_or_constants() {
    let mut g = Graph::unfolded();
    let a = input(&mut g, "a", DType::F32, &[3]);
    let c = g.constant(2.5, Type::f32(vec![3]));
    g.set_output("a_again", a).expect("output");
    g.set_output("c", c).expect("output");
    g.set_output("c2", c).expect("output");
    check(&g, 0.0, 0.0);
}

/// One step of a random fused chain.
#[derive(Clone, Debug)]
enum Step {
    Unary(usize),
    Binary(usize),
    Permute,
    ReduceAxis(usize, bool),
}

fn chain_strategy() -> impl Strategy<Value = (Vec<usize>, Vec<bool>, Vec<Step>, u64)> {
    let shape = prop::collection::vec(1usize..9, 1..4);
    let step = prop_oneof![
        (0usize..chain_unary().len()).prop_map(Step::Unary),
        (0usize..7).prop_map(Step::Binary),
        Just(Step::Permute),
        (0usize..3, any::<bool>()).prop_map(|(a, m)| Step::ReduceAxis(a, m)),
    ];
    (shape, prop::collection::vec(any::<bool>(), 3), prop::collection::vec(step, 1..7), any::<u64>())
}

/// Builds `steps` on input `a`; binary ops take `b`, which is broadcast
/// from a shape with some dims set to 1 (`ones`).
fn build_chain(shape: &[usize], ones: &[bool], steps: &[Step]) -> Graph {
    let mut g = Graph::unfolded();
    let mut x = input(&mut g, "a", DType::F32, shape);
    let bshape: Vec<usize> = shape.iter().zip(ones).map(|(&d, &one)| if one { 1 } else { d }).collect();
    let b = input(&mut g, "b", DType::F32, &bshape);
    for s in steps {
        let cur = g.ty(x).expect("ty").shape;
        x = match *s {
            Step::Unary(i) => g.unary(chain_unary()[i], x).expect("unary"),
            Step::Binary(i) if cur == shape => {
                let bb = g.broadcast_to(b, &cur).expect("broadcast");
                g.binary(BinaryOp::ALL[i], x, bb).expect("binary")
            }
            Step::Binary(i) => g.binary(BinaryOp::ALL[i], x, x).expect("binary"),
            Step::Permute => {
                let perm: Vec<usize> = (0..cur.len()).rev().collect();
                g.permute(x, &perm).expect("permute")
            }
            Step::ReduceAxis(a, max) if !cur.is_empty() => {
                let op = if max { ReduceOp::Max } else { ReduceOp::Sum };
                let axis = a % cur.len();
                let r = g.reduce(op, x, &[axis]).expect("reduce");
                // Keep the rank so later binary steps still broadcast `b`.
                let mut keep = cur.clone();
                keep[axis] = 1;
                let r = g.reshape(r, &keep).expect("reshape");
                g.broadcast_to(r, &cur).expect("broadcast")
            }
            Step::ReduceAxis(..) => x,
        };
    }
    g.set_output("y", x).expect("output");
    g
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Fused chains: elementwise ops, broadcasts with size-1 dims, permuted
    /// views, reductions on every axis. Chains amplify each op's error, so
    /// rel 1e-4 (tens of ulps) plus abs 1e-5 for cancellation near zero;
    /// NaN/inf must match exactly.
    #[test]
    fn random_fused_chains((shape, ones, steps, seed) in chain_strategy()) {
        let g = build_chain(&shape, &ones, &steps);
        prop_assert!(check_with(&g, seed, false, 1e-5, 1e-4).is_ok(), "{:?}", check_with(&g, seed, false, 1e-5, 1e-4));
    }
}
