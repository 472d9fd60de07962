//! The passes: each preserves interpreter results, and does its job.

use crate::ir_util;

use std::collections::HashMap;

use ir_util::{Arg, Rng, feeds, scalar_loss};
use nnc::autodiff::grad;
use nnc::ir::interp::{Precision, Value, run};
use nnc::ir::{BinaryOp, Graph, InputRole, NodeId, Op, Type, UnaryOp, verify};
use nnc::opt::{cse, dce, fold, optimize, simplify};

/// Bitwise equality at f32 precision, except that NaNs match each other and
/// ±0 match (the documented freedom of `x + 0 → x`).
fn same_results(a: &[Value], b: &[Value]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| x.to_f64s().iter().zip(y.to_f64s()).all(|(p, q)| *p == q || (p.is_nan() && q.is_nan())))
}

/// A random expression DAG over two inputs: every op kind with constants mixed
/// in, so simplification and folding rules all get a chance to fire.
fn random_graph(rng: &mut Rng, unfolded: bool) -> Graph {
    let mut g = if unfolded { Graph::unfolded() } else { Graph::new() };
    let mut pool: Vec<NodeId> = vec![
        g.input("a", InputRole::Data, Type::f32([3])).unwrap(),
        g.input("b", InputRole::Data, Type::f32([3])).unwrap(),
    ];
    let unary =
        [UnaryOp::Neg, UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Abs, UnaryOp::Sqrt, UnaryOp::Recip, UnaryOp::Floor];
    let binary = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min];
    let consts = [0.0, 1.0, -1.0, 2.0, 0.5, 0.25, 3.0];
    for _ in 0..12 {
        let pick = |rng: &mut Rng, pool: &[NodeId]| pool[rng.below(pool.len())];
        let node = match rng.below(4) {
            0 => {
                let c = consts[rng.below(consts.len())];
                g.constant(c, Type::f32([3]))
            }
            1 => {
                let x = pick(rng, &pool);
                g.unary(unary[rng.below(unary.len())], x).unwrap()
            }
            _ => {
                let (x, y) = (pick(rng, &pool), pick(rng, &pool));
                g.binary(binary[rng.below(binary.len())], x, y).unwrap()
            }
        };
        pool.push(node);
    }
    let last = *pool.last().unwrap();
    g.set_output("out", last).unwrap();
    g.set_output("mid", pool[pool.len() / 2]).unwrap();
    g
}

#[test]
fn optimize_preserves_random_graphs() {
    let args = [Arg::f32(&mut Rng(1), "a", &[3], -2.0, 2.0), Arg::f32(&mut Rng(2), "b", &[3], -2.0, 2.0)];
    let inputs: HashMap<String, Value> = feeds(&args);
    for seed in 0..300 {
        let mut rng = Rng(seed);
        let g = random_graph(&mut rng, seed % 2 == 0);
        let before = run(&g, &inputs, Precision::F32).unwrap();
        let opt = optimize(&g).unwrap();
        verify(&opt).unwrap();
        let after = run(&opt, &inputs, Precision::F32).unwrap();
        assert!(same_results(&before, &after), "seed {seed}: {before:?} vs {after:?}\n{g}\n{opt}");
        assert!(opt.len() <= g.len(), "seed {seed} grew the graph");
    }
}

#[test]
fn optimize_preserves_training_graphs() {
    // The MLP loss and its gradients, built without insert-time folding so
    // the passes have everything to do.
    let mut rng = Rng(42);
    let args = [
        Arg::f32(&mut rng, "x", &[4, 3], -1.0, 1.0).fixed(),
        Arg::f32(&mut rng, "w1", &[3, 5], -1.0, 1.0),
        Arg::f32(&mut rng, "b1", &[5], -0.5, 0.5),
        Arg::f32(&mut rng, "w2", &[5, 2], -1.0, 1.0),
    ];
    for mut g in [Graph::unfolded(), Graph::new()] {
        let build = |g: &mut Graph, x: &[NodeId]| {
            let h = g.matmul(x[0], x[1])?;
            let h = g.add(h, x[2])?;
            let h = g.tanh(h)?;
            let o = g.matmul(h, x[3])?;
            let o2 = g.mul(o, o)?;
            g.mean(o2, &[0, 1], false)
        };
        let (ids, loss) = scalar_loss(&mut g, &args, &build).unwrap();
        let grads = grad(&mut g, loss, &ids[1..]).unwrap();
        g.set_output("loss", loss).unwrap();
        for (k, d) in grads.into_iter().enumerate() {
            g.set_output(format!("d{k}"), d).unwrap();
        }
        let before = run(&g, &feeds(&args), Precision::F64).unwrap();
        ir_util::check_optimized(&g, &args, &before);
    }
}

#[test]
fn cse_merges_duplicates_from_unfolded_graphs() {
    let mut g = Graph::unfolded();
    let a = g.input("a", InputRole::Data, Type::f32([2])).unwrap();
    let b = g.input("b", InputRole::Data, Type::f32([2])).unwrap();
    let s1 = g.add(a, b).unwrap();
    let s2 = g.add(b, a).unwrap();
    assert_eq!(s1, s2, "commutative operands are ordered even without folding");
    // The builder never makes duplicates; a raw graph can.
    let mut nodes = g.nodes().to_vec();
    nodes.push(nodes[s1.index()].clone());
    let dup = NodeId(nodes.len() as u32 - 1);
    let mul = nnc::ir::Node { op: Op::Binary(BinaryOp::Mul), inputs: vec![s1, dup], ty: Type::f32([2]) };
    nodes.push(mul);
    let raw = Graph::from_raw(nodes, vec![("m".into(), NodeId(dup.0 + 1))]);
    verify(&raw).unwrap();
    let merged = cse::run(&raw).unwrap();
    assert_eq!(merged.len(), raw.len() - 1);
    let m = merged.node(merged.output("m").unwrap());
    assert_eq!(m.inputs[0], m.inputs[1]);
}

#[test]
fn dce_keeps_inputs_and_live_nodes_only() {
    let mut g = Graph::new();
    let a = g.input("a", InputRole::Data, Type::f32([2])).unwrap();
    let unused = g.input("u", InputRole::Param, Type::f32([2])).unwrap();
    let _dead = g.exp(unused).unwrap();
    let live = g.tanh(a).unwrap();
    g.set_output("o", live).unwrap();
    let out = dce::run(&g).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out.inputs().len(), 2);
    assert!(out.find_input("u").is_some());
}

#[test]
fn fold_evaluates_literal_subgraphs() {
    let mut g = Graph::new();
    let l = g.literal(&[1.0, 2.0, 3.0], Type::f32([3])).unwrap();
    let e = g.exp(l).unwrap();
    let s = g.sum_all(e).unwrap();
    g.set_output("s", s).unwrap();
    let folded = fold::run(&g).unwrap();
    let out = dce::run(&folded).unwrap();
    assert_eq!(out.len(), 1, "{out}");
    let want = (1f64.exp() as f32 as f64 + 2f64.exp() as f32 as f64 + 3f64.exp() as f32 as f64) as f32 as f64;
    let got = out.splat(out.output("s").unwrap()).unwrap();
    assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
}

#[test]
fn simplify_removes_negations_and_divisions() {
    let mut g = Graph::new();
    let a = g.input("a", InputRole::Data, Type::f32([2])).unwrap();
    let b = g.input("b", InputRole::Data, Type::f32([2])).unwrap();
    let nb = g.neg(b).unwrap();
    let s = g.add(a, nb).unwrap();
    let four = g.constant(4.0, Type::f32([2]));
    let q = g.div(s, four).unwrap();
    g.set_output("q", q).unwrap();
    let out = dce::run(&simplify::run(&g).unwrap()).unwrap();
    let text = out.to_string();
    assert!(text.contains("= sub %0, %1"), "{text}");
    assert!(text.contains("= mul") && text.contains("const[0.25]"), "{text}");
    assert!(!text.contains("neg") && !text.contains("div"), "{text}");
}

/// The gradient of a split (`q, k, v` sliced from one product): zero-padded
/// parts summed become one concatenation, with a zero block where a gap is
/// left, in either order, the same values as before.
#[test]
fn simplify_joins_disjoint_pads() {
    let args = [
        Arg::f32(&mut Rng(1), "a", &[2, 1, 3], -2.0, 2.0),
        Arg::f32(&mut Rng(2), "b", &[2, 2, 3], -2.0, 2.0),
        Arg::f32(&mut Rng(3), "c", &[2, 1, 3], -2.0, 2.0),
    ];
    let inputs = feeds(&args);
    // (lo, hi) along axis 1 of a 5-wide result: a at 0, b at 1-2, c at 4 (3 is a gap).
    let mut g = Graph::new();
    let [a, b, c] = [0, 1, 2].map(|i| g.input(&args[i].name, InputRole::Data, args[i].ty.clone()).unwrap());
    let pa = g.pad(a, &[0, 0, 0], &[0, 4, 0], 0.0).unwrap();
    let pb = g.pad(b, &[0, 1, 0], &[0, 2, 0], 0.0).unwrap();
    let pc = g.pad(c, &[0, 4, 0], &[0, 0, 0], 0.0).unwrap();
    let ab = g.add(pb, pa).unwrap();
    let abc = g.add(ab, pc).unwrap();
    g.set_output("y", abc).unwrap();
    // Overlapping parts stay as they are.
    let pb2 = g.pad(b, &[0, 0, 0], &[0, 3, 0], 0.0).unwrap();
    let kept = g.add(pa, pb2).unwrap();
    g.set_output("kept", kept).unwrap();
    let opt = optimize(&g).unwrap();
    verify(&opt).unwrap();
    let text = opt.to_string();
    assert_eq!(text.matches("concat").count(), 1, "{text}");
    assert_eq!(text.matches("pad").count(), 2, "only `kept`'s two pads are left:\n{text}");
    let (before, after) = (run(&g, &inputs, Precision::F32).unwrap(), run(&opt, &inputs, Precision::F32).unwrap());
    assert!(same_results(&before, &after), "{before:?} vs {after:?}\n{opt}");
}
