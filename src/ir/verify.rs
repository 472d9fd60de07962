//! The verifier: checks every invariant stated in the module doc once, so
//! passes and backends can rely on them.

use std::collections::HashSet;

use super::error::IrError;
use super::graph::Graph;
use super::op::Op;
use super::types::{NodeId, Type};

/// Checks that `g` is well formed: inputs precede users, every stored type is
/// what inference gives, inputs are listed and uniquely named, and outputs
/// exist with distinct names.
pub fn verify(g: &Graph) -> Result<(), IrError> {
    for (i, node) in g.nodes().iter().enumerate() {
        let id = NodeId(i as u32);
        if let Some(&bad) = node.inputs.iter().find(|inp| inp.index() >= i) {
            return Err(IrError::invalid(Some(id), format!("uses {bad}, which does not come before it")));
        }
        let tys: Vec<&Type> = node.inputs.iter().map(|&x| &g.node(x).ty).collect();
        let ty = node.op.rule().infer(&tys).map_err(|e| IrError::invalid(Some(id), e.to_string()))?;
        if ty != node.ty {
            return Err(IrError::invalid(Some(id), format!("stored type {} but inferred {ty}", node.ty)));
        }
    }
    verify_inputs(g)?;
    let mut names = HashSet::new();
    for (name, id) in g.outputs() {
        g.get(*id).map_err(|_| IrError::invalid(None, format!("output `{name}` is {id}, not a node")))?;
        if !names.insert(name) {
            return Err(IrError::invalid(None, format!("two outputs named `{name}`")));
        }
    }
    Ok(())
}

/// The input list is exactly the `Input` nodes, in id order, names distinct.
fn verify_inputs(g: &Graph) -> Result<(), IrError> {
    let listed: Vec<NodeId> = g.ids().filter(|&id| matches!(g.node(id).op, Op::Input(_))).collect();
    if listed != g.inputs() {
        return Err(IrError::invalid(None, "the input list does not match the input nodes"));
    }
    let mut names = HashSet::new();
    for &id in g.inputs() {
        if let Op::Input(inp) = &g.node(id).op
            && !names.insert(&inp.name)
        {
            return Err(IrError::invalid(Some(id), format!("second input named `{}`", inp.name)));
        }
    }
    Ok(())
}
