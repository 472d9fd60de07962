//! Constant folding beyond the builder's: any non-source op whose inputs are
//! all constants (splat or literal) is evaluated with the reference
//! interpreter's rules at f32 precision, and replaced by a splat constant, or
//! by a literal when it is small. (The builder only folds splats, cheaply.)

use super::rebuild;
use crate::ir::{Graph, IrError, LoweringClass, Node, NodeId, Op, Tensor};

/// Largest non-uniform result turned into a literal: bigger constants are
/// cheaper to recompute in a kernel than to store and load.
pub const MAX_LITERAL: usize = 256;

pub fn run(g: &Graph) -> Result<Graph, IrError> {
    rebuild(g, &vec![true; g.len()], fold_node)
}

fn fold_node(out: &mut Graph, node: &Node, ins: &[NodeId]) -> Result<NodeId, IrError> {
    // Only when every input is a constant are any of them materialised: a
    // splat constant may be large (a zero gradient of a whole activation).
    let constant = |i: &NodeId| out.get(*i).is_ok_and(|n| matches!(n.op, Op::Const(_) | Op::Literal(_)));
    let values: Option<Vec<Tensor>> = if node.op.class() == LoweringClass::Source || !ins.iter().all(constant) {
        None
    } else {
        ins.iter().map(|&i| constant_value(out, i)).collect::<Result<Option<Vec<_>>, _>>()?
    };
    let Some(values) = values else {
        return out.insert(node.op.clone(), ins);
    };
    let refs: Vec<&Tensor> = values.iter().collect();
    let result = node.op.rule().eval(&node.ty, &refs)?.to_f64s();
    let rounded: Vec<f64> = result.iter().map(|&v| node.ty.dtype.round(v)).collect();
    let uniform = rounded.first().filter(|&&v| rounded.iter().all(|&w| w.to_bits() == v.to_bits()));
    match uniform {
        Some(&v) => Ok(out.constant(v, node.ty.clone())),
        None if rounded.len() <= MAX_LITERAL => out.literal(&rounded, node.ty.clone()),
        None => out.insert(node.op.clone(), ins),
    }
}

/// The value of `id` if it is a splat constant or a literal.
fn constant_value(g: &Graph, id: NodeId) -> Result<Option<Tensor>, IrError> {
    let n = g.get(id)?;
    match &n.op {
        Op::Const(_) | Op::Literal(_) => n.op.rule().eval(&n.ty, &[]).map(Some),
        Op::Input(_) | Op::Iota(_) | Op::Random(_) => Ok(None),
        Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Cast(_) | Op::StopGradient | Op::Reduce(_) => Ok(None),
        Op::Reshape(_) | Op::Permute(_) | Op::Broadcast(_) | Op::Slice(_) | Op::Pad(_) | Op::Concat(_) => Ok(None),
        Op::Contract(_) | Op::Conv(_) | Op::Gather(_) | Op::ScatterAdd(_) => Ok(None),
    }
}
