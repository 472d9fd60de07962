//! Algebraic simplification beyond the builder's local identities: rewrites
//! that look through an operand (the builder only looks at constants and
//! one level of the same op). All are exact up to the sign of zero.
//!
//! - `a + (-b)` → `a - b`, `(-a) + b` → `b - a`, `a - (-b)` → `a + b`
//!   (autodiff emits many negations);
//! - `x / c` → `x * (1/c)` when `c` is a splat power of two, so `1/c` is exact.

use super::rebuild;
use crate::ir::{BinaryOp, Graph, IrError, Node, NodeId, Op, UnaryOp};

pub fn run(g: &Graph) -> Result<Graph, IrError> {
    rebuild(g, &vec![true; g.len()], simplify_node)
}

fn simplify_node(out: &mut Graph, node: &Node, ins: &[NodeId]) -> Result<NodeId, IrError> {
    if let Op::Binary(op) = node.op {
        let neg_of = |x: NodeId| {
            let n = out.node(x);
            (n.op == Op::Unary(UnaryOp::Neg)).then(|| n.inputs[0])
        };
        let (a, b) = (ins[0], ins[1]);
        match (op, neg_of(a), neg_of(b)) {
            (BinaryOp::Add, _, Some(nb)) => return out.binary(BinaryOp::Sub, a, nb),
            (BinaryOp::Add, Some(na), None) => return out.binary(BinaryOp::Sub, b, na),
            (BinaryOp::Sub, _, Some(nb)) => return out.binary(BinaryOp::Add, a, nb),
            (BinaryOp::Div, _, _) if out.node(a).ty.dtype.is_float() => {
                if let Some(inv) = out.splat(b).and_then(exact_reciprocal) {
                    let c = out.full_like(b, inv)?;
                    return out.binary(BinaryOp::Mul, a, c);
                }
            }
            _ => {}
        }
    }
    out.insert(node.op.clone(), ins)
}

/// `1/c` when it is exact in f32: `c` a power of two well inside the range.
fn exact_reciprocal(c: f64) -> Option<f64> {
    let e = c.abs().log2();
    (c != 0.0 && e.fract() == 0.0 && e.abs() < 100.0).then(|| 1.0 / c)
}
