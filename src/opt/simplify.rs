//! Algebraic simplification beyond the builder's local identities: rewrites
//! that look through an operand (the builder only looks at constants and
//! one level of the same op). All are exact up to the sign of zero.
//!
//! - `a + (-b)` → `a - b`, `(-a) + b` → `b - a`, `a - (-b)` → `a + b`
//!   (autodiff emits many negations);
//! - `x / c` → `x * (1/c)` when `c` is a splat power of two, so `1/c` is exact;
//! - `pad(a) + pad(b)` → `pad(concat(a, 0, b))` when the two are zero-padded
//!   along one axis into disjoint parts (the gradient of a split: `q, k, v`
//!   sliced from one product come back as three padded tensors), so no
//!   zeros are written and read again.

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
            (BinaryOp::Add, None, None) => {
                if let Some(joined) = disjoint_pads(out, a, b)? {
                    return Ok(joined);
                }
            }
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

/// `pad(a) + pad(b)` as one zero-padded concatenation, when both pad with
/// zeros, differ only along one axis and cover disjoint parts of it.
fn disjoint_pads(out: &mut Graph, a: NodeId, b: NodeId) -> Result<Option<NodeId>, IrError> {
    let part = |out: &Graph, x: NodeId| {
        let n = out.node(x);
        if let Op::Pad(p) = &n.op { (p.value.0 == 0.0).then(|| (p.clone(), n.inputs[0])) } else { None }
    };
    let (Some((pa, xa)), Some((pb, xb))) = (part(out, a), part(out, b)) else { return Ok(None) };
    let differ: Vec<usize> = (0..pa.lo.len()).filter(|&d| pa.lo[d] != pb.lo[d] || pa.hi[d] != pb.hi[d]).collect();
    let [axis] = differ[..] else { return Ok(None) };
    let (ta, tb) = (out.ty(xa)?, out.ty(xb)?);
    let (ea, eb) = (pa.lo[axis] + ta.shape[axis], pb.lo[axis] + tb.shape[axis]);
    // Lower one first; they must not overlap.
    let ((first, lo, end), (second, start, hi)) = match () {
        _ if ea <= pb.lo[axis] => ((xa, pa.lo[axis], ea), (xb, pb.lo[axis], pb.hi[axis])),
        _ if eb <= pa.lo[axis] => ((xb, pb.lo[axis], eb), (xa, pa.lo[axis], pa.hi[axis])),
        _ => return Ok(None),
    };
    let mut parts = concat_parts(out, first, axis);
    if start > end {
        let mut gap = out.ty(first)?;
        gap.shape[axis] = start - end;
        parts.push(out.constant(0.0, gap));
    }
    parts.extend(concat_parts(out, second, axis));
    let joined = out.concat(&parts, axis)?;
    let (mut lo_all, mut hi_all) = (pa.lo.clone(), pa.hi.clone());
    (lo_all[axis], hi_all[axis]) = (lo, hi);
    out.pad(joined, &lo_all, &hi_all, 0.0).map(Some)
}

/// The inputs of `x` if it concatenates along `axis`, else `x` alone.
fn concat_parts(out: &Graph, x: NodeId, axis: usize) -> Vec<NodeId> {
    let n = out.node(x);
    if let Op::Concat(c) = &n.op
        && c.axis == axis
    {
        return n.inputs.clone();
    }
    vec![x]
}
