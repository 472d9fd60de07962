//! Every primitive's VJP against central finite differences in f64 (see
//! `ir_util::grad_check` for the step and tolerance), on seeded random shapes
//! that include size-1 and broadcast dims; then composites built from them.

use crate::ir_util;

use ir_util::{Arg, Rng, grad_check};
use nnc::ir::{BinaryOp, Contract, DType, Graph, IrError, NodeId, ReduceOp, UnaryOp};

const TRIALS: u64 = 6;

/// Random shapes of rank 0..=3 with dims 1..=3.
fn any_shape(rng: &mut Rng) -> Vec<usize> {
    let rank = rng.below(4);
    rng.shape(rank, 3)
}

/// Every float unary op of the IR's table, on the interval its row says
/// it is smooth on: a new op is checked without being listed here.
#[test]
fn unary_ops() {
    for &op in UnaryOp::ALL.iter().filter(|u| u.row().accepts(DType::F32)) {
        let (lo, hi) = op.row().smooth;
        for seed in 0..TRIALS {
            let mut rng = Rng(seed);
            let shape = any_shape(&mut rng);
            let args = [Arg::f32(&mut rng, "x", &shape, lo, hi)];
            grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.unary(op, x[0]));
        }
    }
}

/// Where each binary op is differentiable; `None` for comparisons and
/// logic, which have no gradient. Exhaustive: a new op must say.
fn binary_domain(op: BinaryOp) -> Option<(f64, f64)> {
    use BinaryOp as B;
    match op {
        B::Add | B::Sub | B::Mul | B::Max | B::Min => Some((-2.0, 2.0)),
        B::Div | B::Pow => Some((0.5, 2.0)),
        B::Lt | B::Le | B::Gt | B::Ge | B::Eq | B::Ne | B::And | B::Or => None,
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    for &op in BinaryOp::ALL {
        let Some((lo, hi)) = binary_domain(op) else { continue };
        for seed in 0..TRIALS {
            let mut rng = Rng(100 + seed);
            // b's shape is a's with some dims set to 1 and maybe leading dims
            // dropped, so the broadcast VJP (a sum) is exercised on either side.
            let a_shape = any_shape(&mut rng);
            let mut b_shape: Vec<usize> = a_shape.iter().map(|&d| if rng.below(2) == 0 { 1 } else { d }).collect();
            b_shape.drain(..rng.below(b_shape.len() + 1));
            let (a_shape, b_shape) = if seed % 2 == 0 { (a_shape, b_shape) } else { (b_shape, a_shape) };
            let args = [Arg::f32(&mut rng, "a", &a_shape, lo, hi), Arg::f32(&mut rng, "b", &b_shape, lo, hi)];
            grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.broadcast_binary(op, x[0], x[1]));
        }
    }
}

#[test]
fn same_operand_twice_accumulates() {
    let mut rng = Rng(7);
    let args = [Arg::f32(&mut rng, "x", &[3], -2.0, 2.0)];
    // x * x + x / (x * x + 1): several paths into one node.
    grad_check(&args, &|g: &mut Graph, x: &[NodeId]| {
        let sq = g.mul(x[0], x[0])?;
        let den = g.add_scalar(sq, 1.0)?;
        let q = g.div(x[0], den)?;
        g.add(sq, q)
    });
}

#[test]
fn select_cast_and_stop_gradient() {
    for seed in 0..TRIALS {
        let mut rng = Rng(200 + seed);
        let shape = any_shape(&mut rng);
        let args = [
            Arg::f32(&mut rng, "a", &shape, -2.0, 2.0),
            Arg::f32(&mut rng, "b", &shape, -2.0, 2.0),
            Arg::f32(&mut rng, "c", &shape, -1.0, 1.0),
        ];
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| {
            let zero = g.scalar(0.0);
            let cond = g.gt(x[2], zero)?;
            g.select(cond, x[0], x[1])
        });
        // Through an integer cast the gradient is zero (floor-like steps).
        grad_check(&args[..1], &|g: &mut Graph, x: &[NodeId]| {
            let scaled = g.mul_scalar(x[0], 3.0)?;
            let i = g.cast(scaled, DType::I32)?;
            let f = g.cast(i, DType::F32)?;
            g.add(f, x[0])
        });
    }
}

#[test]
fn reductions() {
    for op in [ReduceOp::Sum, ReduceOp::Max] {
        for seed in 0..TRIALS {
            let mut rng = Rng(300 + seed);
            let rank = 1 + rng.below(3);
            let shape = rng.shape(rank, 4);
            let axes: Vec<usize> = (0..rank).filter(|_| rng.below(2) == 0).collect();
            let args = [Arg::f32(&mut rng, "x", &shape, -2.0, 2.0)];
            grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.reduce(op, x[0], &axes));
        }
    }
}

#[test]
fn movement_ops() {
    for seed in 0..TRIALS {
        let mut rng = Rng(400 + seed);
        let shape = rng.shape(3, 4);
        let args = [Arg::f32(&mut rng, "x", &shape, -2.0, 2.0)];
        let n: usize = shape.iter().product();
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.reshape(x[0], &[n]));
        let perm = [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0], [0, 2, 1], [1, 0, 2]][seed as usize];
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.permute(x[0], &perm));
        let mut wide = vec![2];
        wide.extend(shape.iter().map(|&d| if d == 1 { 3 } else { d }));
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.broadcast_to(x[0], &wide));
        let start: Vec<usize> = shape.iter().map(|&d| rng.below(d)).collect();
        let end: Vec<usize> = shape.iter().zip(&start).map(|(&d, &s)| s + 1 + rng.below(d - s)).collect();
        let step: Vec<usize> = (0..3).map(|_| 1 + rng.below(3)).collect();
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.slice(x[0], &start, &end, &step));
        let lo: Vec<usize> = (0..3).map(|_| rng.below(3)).collect();
        let hi: Vec<usize> = (0..3).map(|_| rng.below(3)).collect();
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.pad(x[0], &lo, &hi, 0.5));
        let axis = rng.below(3);
        let mut other = shape.clone();
        other[axis] = 1 + rng.below(3);
        let two = [args[0].clone(), Arg::f32(&mut rng, "y", &other, -2.0, 2.0)];
        grad_check(&two, &|g: &mut Graph, x: &[NodeId]| g.concat(&[x[0], x[1], x[0]], axis));
    }
}

#[test]
fn contractions() {
    let cases: [(&[usize], &[usize], Contract); 4] = [
        // matmul
        (
            &[3, 4],
            &[4, 2],
            Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![1], rhs_contract: vec![0] },
        ),
        // batched matmul
        (
            &[2, 3, 4],
            &[2, 4, 1],
            Contract { lhs_batch: vec![0], rhs_batch: vec![0], lhs_contract: vec![2], rhs_contract: vec![1] },
        ),
        // batch dims out of front, two contracted dims in swapped order
        (
            &[3, 2, 4, 2],
            &[3, 2, 5, 2],
            Contract { lhs_batch: vec![1], rhs_batch: vec![1], lhs_contract: vec![3, 0], rhs_contract: vec![3, 0] },
        ),
        // outer product
        (&[3], &[2], Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![], rhs_contract: vec![] }),
    ];
    for (i, (ls, rs, dims)) in cases.into_iter().enumerate() {
        let mut rng = Rng(500 + i as u64);
        let args = [Arg::f32(&mut rng, "a", ls, -1.0, 1.0), Arg::f32(&mut rng, "b", rs, -1.0, 1.0)];
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.contract(x[0], x[1], dims.clone()));
    }
}

#[test]
fn matmul_helper_shapes() {
    let cases: [(&[usize], &[usize]); 5] =
        [(&[3, 4], &[4, 2]), (&[2, 3, 4], &[4, 2]), (&[2, 1, 3, 4], &[3, 4, 2]), (&[4], &[4, 2]), (&[3, 4], &[4])];
    for (i, (ls, rs)) in cases.into_iter().enumerate() {
        let mut rng = Rng(600 + i as u64);
        let args = [Arg::f32(&mut rng, "a", ls, -1.0, 1.0), Arg::f32(&mut rng, "b", rs, -1.0, 1.0)];
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.matmul(x[0], x[1]));
    }
}

#[test]
fn gather_and_scatter_add() {
    for seed in 0..TRIALS {
        let mut rng = Rng(700 + seed);
        let shape = rng.shape(3, 4);
        let axis = rng.below(3);
        let dim = shape[axis];
        // Indices include repeats and out-of-range values (-1 and dim).
        let idx: Vec<i32> = (0..5).map(|_| rng.below(dim + 2) as i32 - 1).collect();
        let args = [Arg::f32(&mut rng, "data", &shape, -2.0, 2.0), Arg::i32("idx", &[5], idx.clone())];
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.gather(x[0], x[1], axis));
        let mut upd_shape = shape.clone();
        upd_shape[axis] = 5;
        let args = [Arg::i32("idx", &[5], idx), Arg::f32(&mut rng, "upd", &upd_shape, -2.0, 2.0)];
        grad_check(&args, &|g: &mut Graph, x: &[NodeId]| g.scatter_add(x[0], x[1], axis, dim));
    }
}

/// Softmax cross-entropy with integer labels, from primitives: subtract the
/// row max (under stop_gradient, as std does), log-sum-exp, one-hot via
/// iota == label.
fn cross_entropy(g: &mut Graph, logits: NodeId, labels: NodeId) -> Result<NodeId, IrError> {
    let shape = g.ty(logits)?.shape;
    let (b, c) = (shape[0], shape[1]);
    let m = g.max_axes(logits, &[1], true)?;
    let m = g.stop_gradient(m)?;
    let z = g.sub(logits, m)?;
    let e = g.exp(z)?;
    let s = g.sum_axes(e, &[1], true)?;
    let lse = g.log(s)?;
    let logp = g.sub(z, lse)?;
    let classes = g.iota(&[b, c], 1)?;
    let lab = g.reshape(labels, &[b, 1])?;
    let hit = g.eq(classes, lab)?;
    let onehot = g.cast(hit, DType::F32)?;
    let picked = g.mul(logp, onehot)?;
    let total = g.sum_all(picked)?;
    g.mul_scalar(total, -1.0 / b as f64)
}

#[test]
fn softmax_cross_entropy() {
    let mut rng = Rng(800);
    let args = [Arg::f32(&mut rng, "logits", &[4, 5], -3.0, 3.0), Arg::i32("y", &[4], vec![0, 4, 2, 2])];
    grad_check(&args, &|g: &mut Graph, x: &[NodeId]| cross_entropy(g, x[0], x[1]));
}

#[test]
fn layernorm() {
    let mut rng = Rng(900);
    let args = [
        Arg::f32(&mut rng, "x", &[3, 6], -2.0, 2.0),
        Arg::f32(&mut rng, "gamma", &[6], 0.5, 1.5),
        Arg::f32(&mut rng, "beta", &[6], -0.5, 0.5),
    ];
    grad_check(&args, &|g: &mut Graph, x: &[NodeId]| {
        let mu = g.mean(x[0], &[1], true)?;
        let d = g.sub(x[0], mu)?;
        let d2 = g.mul(d, d)?;
        let var = g.mean(d2, &[1], true)?;
        let ve = g.add_scalar(var, 1e-5)?;
        let inv = g.rsqrt(ve)?;
        let n = g.mul(d, inv)?;
        let s = g.mul(n, x[1])?;
        g.add(s, x[2])
    });
}

#[test]
fn two_layer_mlp_loss() {
    let mut rng = Rng(1000);
    let args = [
        Arg::f32(&mut rng, "x", &[4, 3], -1.0, 1.0).fixed(),
        Arg::i32("y", &[4], vec![1, 0, 1, 1]),
        Arg::f32(&mut rng, "w1", &[3, 5], -1.0, 1.0),
        Arg::f32(&mut rng, "b1", &[5], -0.5, 0.5),
        Arg::f32(&mut rng, "w2", &[5, 2], -1.0, 1.0),
        Arg::f32(&mut rng, "b2", &[2], -0.5, 0.5),
    ];
    grad_check(&args, &|g: &mut Graph, x: &[NodeId]| {
        let h = g.matmul(x[0], x[2])?;
        let h = g.add(h, x[3])?;
        let zero = g.scalar(0.0);
        let h = g.max(h, zero)?;
        let o = g.matmul(h, x[4])?;
        let o = g.add(o, x[5])?;
        cross_entropy(g, o, x[1])
    });
}

#[test]
fn embedding_lookup() {
    let mut rng = Rng(1100);
    let args = [Arg::f32(&mut rng, "table", &[5, 3], -1.0, 1.0), Arg::i32("tokens", &[2, 3], vec![0, 4, 4, 1, 0, 2])];
    grad_check(&args, &|g: &mut Graph, x: &[NodeId]| {
        let e = g.gather(x[0], x[1], 0)?; // [2, 3, 3]
        g.tanh(e)
    });
}

#[test]
fn causal_attention() {
    let mut rng = Rng(1200);
    let (b, t, d) = (2, 4, 3);
    let args = [
        Arg::f32(&mut rng, "q", &[b, t, d], -1.0, 1.0),
        Arg::f32(&mut rng, "k", &[b, t, d], -1.0, 1.0),
        Arg::f32(&mut rng, "v", &[b, t, d], -1.0, 1.0),
    ];
    grad_check(&args, &|g: &mut Graph, x: &[NodeId]| {
        let kt = g.transpose(x[1])?;
        let s = g.matmul(x[0], kt)?; // [b, t, t]
        let s = g.mul_scalar(s, 1.0 / (d as f64).sqrt())?;
        let row = g.iota(&[t, t], 0)?;
        let col = g.iota(&[t, t], 1)?;
        let allowed = g.le(col, row)?;
        let neg = g.scalar(-1e9);
        let s = g.select(allowed, s, neg)?;
        let m = g.max_axes(s, &[2], true)?;
        let m = g.stop_gradient(m)?;
        let z = g.sub(s, m)?;
        let e = g.exp(z)?;
        let den = g.sum_axes(e, &[2], true)?;
        let p = g.div(e, den)?;
        g.matmul(p, x[2])
    });
}

#[test]
fn stop_gradient_blocks() {
    // d/dx sum(x * stop_gradient(x)) = x, where finite differences would say 2x.
    let mut g = Graph::new();
    let x = g.input("x", nnc::ir::InputRole::Param, nnc::ir::Type::f32([3])).unwrap();
    let s = g.stop_gradient(x).unwrap();
    let p = g.mul(x, s).unwrap();
    let loss = g.sum_all(p).unwrap();
    let d = nnc::autodiff::grad(&mut g, loss, &[x]).unwrap()[0];
    g.set_output("d", d).unwrap();
    let args = [Arg { name: "x".into(), ty: nnc::ir::Type::f32([3]), data: vec![1.0, -2.0, 3.0], diff: true }];
    let out = nnc::ir::interp::run(&g, &ir_util::feeds(&args), nnc::ir::interp::Precision::F64).unwrap();
    assert_eq!(out[0].to_f64s(), vec![1.0, -2.0, 3.0]);
}

#[test]
fn unused_parameter_gets_zeros() {
    let mut g = Graph::new();
    let x = g.input("x", nnc::ir::InputRole::Param, nnc::ir::Type::f32([3])).unwrap();
    let unused = g.input("u", nnc::ir::InputRole::Param, nnc::ir::Type::f32([2, 2])).unwrap();
    let loss = g.sum_all(x).unwrap();
    let grads = nnc::autodiff::grad(&mut g, loss, &[x, unused]).unwrap();
    assert_eq!(g.splat(grads[1]), Some(0.0));
    assert_eq!(g.ty(grads[1]).unwrap(), nnc::ir::Type::f32([2, 2]));
    assert_eq!(g.splat(grads[0]), Some(1.0));
}

#[test]
fn grad_rejects_non_scalar_loss_and_integer_wrt() {
    let mut g = Graph::new();
    let x = g.input("x", nnc::ir::InputRole::Param, nnc::ir::Type::f32([3])).unwrap();
    let i = g.input("i", nnc::ir::InputRole::Data, nnc::ir::Type::new(DType::I32, [3])).unwrap();
    assert!(matches!(nnc::autodiff::grad(&mut g, x, &[x]), Err(IrError::Grad(_))));
    let loss = g.sum_all(x).unwrap();
    assert!(matches!(nnc::autodiff::grad(&mut g, loss, &[i]), Err(IrError::Grad(_))));
}
