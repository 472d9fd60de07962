//! Every kind of IR op, from the IR's own list (`OpKind::ALL`): one small
//! graph each, gradient-checked against finite differences in f64 and
//! compiled against the interpreter. [`case`] is an exhaustive match, so a
//! new op does not compile until it has a case here. (Elementwise ops are
//! rows of their families' tables, walked op by op in `ir_grad` and
//! `codegen_ops`.)

use crate::codegen_ops::check_with;
use crate::ir_util::{Arg, Rng, declare, grad_check};
use nnc::ir::{BinaryOp, ConvAttrs, DType, Graph, IrError, NodeId, OpKind, ReduceOp, Type, UnaryOp};

pub(crate) type Build = Box<dyn Fn(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>>;

/// Inputs and a graph in which `kind` occurs (checked below). `a` is
/// f32[2, 3] and `b` f32[3, 2], both differentiable.
pub(crate) fn case(kind: OpKind, rng: &mut Rng) -> (Vec<Arg>, Build) {
    let ab = |rng: &mut Rng| vec![Arg::f32(rng, "a", &[2, 3], -1.5, 1.5), Arg::f32(rng, "b", &[3, 2], 0.5, 2.0)];
    let build = |f: Build| f;
    let (args, f): (Vec<Arg>, Build) = match kind {
        OpKind::Input => (ab(rng), build(Box::new(|_, x| Ok(x[0])))),
        OpKind::Const => (ab(rng), build(Box::new(|g, x| g.add_scalar(x[0], 1.5)))),
        OpKind::Literal => (
            ab(rng),
            build(Box::new(|g, x| {
                let l = g.literal(&[1.0, -2.0, 3.0, 0.5, 4.0, -1.0], Type::f32(vec![2, 3]))?;
                g.mul(x[0], l)
            })),
        ),
        OpKind::Iota => (
            ab(rng),
            build(Box::new(|g, x| {
                let i = g.iota(&[2, 3], 1)?;
                let f = g.cast(i, DType::F32)?;
                g.mul(x[0], f)
            })),
        ),
        OpKind::Random => {
            let mut args = ab(rng);
            args.push(Arg::i32("key", &[], vec![7]));
            (
                args,
                build(Box::new(|g, x| {
                    let r = g.random(x[2], 3, &[2, 3])?;
                    g.mul(x[0], r)
                })),
            )
        }
        OpKind::Unary => (ab(rng), build(Box::new(|g, x| g.unary(UnaryOp::Tanh, x[0])))),
        OpKind::Binary => (ab(rng), build(Box::new(|g, x| g.binary(BinaryOp::Mul, x[0], x[0])))),
        OpKind::Select => (
            ab(rng),
            build(Box::new(|g, x| {
                let z = g.zeros_like(x[0])?;
                let c = g.binary(BinaryOp::Gt, x[0], z)?;
                let n = g.neg(x[0])?;
                g.select(c, x[0], n)
            })),
        ),
        OpKind::Cast => (
            ab(rng),
            build(Box::new(|g, x| {
                let i = g.cast(x[0], DType::I32)?;
                let f = g.cast(i, DType::F32)?;
                g.add(x[0], f)
            })),
        ),
        // Finite differences see through `stop_gradient`: stop what they
        // cannot move, a fixed input, and check its zero gradient is kept.
        OpKind::StopGradient => {
            let mut args = ab(rng);
            args.push(Arg::f32(rng, "c", &[2, 3], -1.0, 1.0).fixed());
            (
                args,
                build(Box::new(|g, x| {
                    let s = g.stop_gradient(x[2])?;
                    g.mul(x[0], s)
                })),
            )
        }
        OpKind::Reduce => (ab(rng), build(Box::new(|g, x| g.reduce(ReduceOp::Max, x[0], &[1])))),
        OpKind::Reshape => (ab(rng), build(Box::new(|g, x| g.reshape(x[0], &[3, 2])))),
        OpKind::Permute => (ab(rng), build(Box::new(|g, x| g.permute(x[0], &[1, 0])))),
        OpKind::Broadcast => (ab(rng), build(Box::new(|g, x| g.broadcast_to(x[0], &[4, 2, 3])))),
        OpKind::Slice => (ab(rng), build(Box::new(|g, x| g.slice(x[0], &[0, 1], &[2, 3], &[1, 1])))),
        OpKind::Pad => (ab(rng), build(Box::new(|g, x| g.pad(x[0], &[1, 0], &[0, 2], 0.0)))),
        OpKind::Concat => (ab(rng), build(Box::new(|g, x| g.concat(&[x[0], x[0]], 1)))),
        OpKind::Contract => (ab(rng), build(Box::new(|g, x| g.matmul(x[0], x[1])))),
        // Every stride, padding, dilation and groups combination, and each
        // of the three roles, is in `conv`.
        OpKind::Conv => {
            let args = vec![Arg::f32(rng, "x", &[2, 5, 4, 2], -1.0, 1.0), Arg::f32(rng, "w", &[3, 2, 2, 3], -1.0, 1.0)];
            let attrs = ConvAttrs { stride: vec![2, 1], pad: vec![[1, 1], [0, 1]], dilation: vec![1, 1], groups: 1 };
            (args, build(Box::new(move |g, x| g.conv(x[0], x[1], attrs.clone()))))
        }
        OpKind::Gather | OpKind::ScatterAdd => {
            let mut args = ab(rng);
            args.push(Arg::i32("ids", &[4], vec![1, 0, 1, 1]));
            let f: Build = if kind == OpKind::Gather {
                Box::new(|g, x| g.gather(x[0], x[2], 0))
            } else {
                // Rows of `b` added into 5 rows by id: the adjoint of gather.
                Box::new(|g, x| {
                    let rows = g.gather(x[1], x[2], 0)?;
                    g.scatter_add(x[2], rows, 0, 5)
                })
            };
            (args, f)
        }
    };
    (args, f)
}

#[test]
fn every_op_kind_is_gradient_checked_and_compiled() {
    for (k, &kind) in OpKind::ALL.iter().enumerate() {
        let mut rng = Rng(40 + k as u64);
        let (args, f) = case(kind, &mut rng);
        // The case must really contain the op (the unfolded builder keeps
        // what a folding one might simplify away).
        let mut g = Graph::unfolded();
        let ids = declare(&mut g, &args);
        let out = f(&mut g, &ids).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert!(g.ids().any(|id| g.node(id).op.kind() == kind), "{kind:?}: the case does not use the op");
        grad_check(&args, &*f);
        g.set_output("y", out).expect("output");
        if let Err(e) = check_with(&g, 11, false, 1e-6, 1e-6) {
            panic!("{kind:?}: {e}");
        }
    }
}
