//! Reverse-mode automatic differentiation on the graph IR.
//!
//! [`grad`] sweeps the nodes between the parameters and the loss in reverse
//! id order (a reverse topological order, by the IR's invariant) and asks each
//! op's VJP rule for its inputs' cotangents, which it emits as new nodes of the
//! same graph; contributions to one node are summed. The backward pass is then
//! ordinary IR: optimised, fused and compiled like the forward one.
//!
//! Only f32 nodes carry gradients; `stop_gradient` blocks them; the sum over
//! broadcast copies is the `broadcast` VJP.

#![warn(clippy::wildcard_enum_match_arm)]

use crate::ir::{DType, Graph, IrError, NodeId, Op, Origin, Phase, Type, VjpCtx};

/// The gradients of the scalar f32 `loss` with respect to each of `wrt`, as
/// new nodes of `g`. A `wrt` node the loss does not depend on gets zeros.
pub fn grad(g: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, IrError> {
    if g.ty(loss)? != Type::scalar(DType::F32) {
        return Err(IrError::Grad(format!("the loss must be f32[], got {}", g.ty(loss)?)));
    }
    for &w in wrt {
        if !g.ty(w)?.dtype.is_float() {
            return Err(IrError::Grad(format!("cannot differentiate with respect to {w} of type {}", g.ty(w)?)));
        }
    }
    let outer = g.current_origin();
    let grads = sweep(g, loss, wrt);
    g.set_origin(outer);
    grads
}

fn sweep(g: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, IrError> {
    let live = on_path(g, loss, wrt);
    let mut adj: Vec<Option<NodeId>> = vec![None; loss.index() + 1];
    adj[loss.index()] = Some(g.scalar(1.0));
    for i in (0..=loss.index()).rev() {
        let Some(cot) = adj[i] else { continue };
        let node = g.node(NodeId(i as u32));
        if node.inputs.is_empty() {
            continue;
        }
        let (op, inputs) = (node.op.clone(), node.inputs.clone());
        let wants: Vec<bool> = inputs.iter().map(|x| live[x.index()]).collect();
        if !wants.contains(&true) {
            continue;
        }
        let cx = VjpCtx { out: NodeId(i as u32), inputs: &inputs, cot, wants: &wants };
        // A gradient is the backward part of the line its forward node came from.
        g.set_origin(Origin { phase: Phase::Backward, ..g.origin(cx.out) });
        let grads = op.rule().vjp(g, &cx)?;
        for ((x, d), want) in inputs.iter().zip(grads).zip(&wants) {
            if let (Some(d), true) = (d, want) {
                adj[x.index()] = Some(match adj[x.index()] {
                    Some(prev) => g.add(prev, d)?,
                    None => d,
                });
            }
        }
    }
    wrt.iter()
        .map(|&w| match adj.get(w.index()).copied().flatten() {
            Some(d) => Ok(d),
            None => g.zeros_like(w),
        })
        .collect()
}

/// `live[i]`: node `i` is an f32 node that depends on some `wrt` node through
/// f32 nodes other than `stop_gradient` (only such nodes need cotangents).
fn on_path(g: &Graph, loss: NodeId, wrt: &[NodeId]) -> Vec<bool> {
    let mut live = vec![false; loss.index() + 1];
    for &w in wrt {
        if let Some(slot) = live.get_mut(w.index()) {
            *slot = true;
        }
    }
    for i in 0..=loss.index() {
        let n = g.node(NodeId(i as u32));
        let blocked = matches!(n.op, Op::StopGradient) || !n.ty.dtype.is_float();
        if !blocked && n.inputs.iter().any(|x| live[x.index()]) {
            live[i] = true;
        }
    }
    live
}
