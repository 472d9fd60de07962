//! Dead-code elimination: keeps the nodes the outputs depend on (and every
//! input, which the runner feeds by name whether used or not).

use super::{rebuild, reinsert};
use crate::ir::{Graph, IrError, NodeId};
use std::collections::HashMap;

pub fn run(g: &Graph) -> Result<Graph, IrError> {
    rebuild(g, &live(g), reinsert)
}

/// `live[i]`: some output depends on node `i`. One reverse sweep suffices
/// because inputs come before their users.
pub fn live(g: &Graph) -> Vec<bool> {
    let mut live = vec![false; g.len()];
    for (_, id) in g.outputs() {
        live[id.index()] = true;
    }
    for id in g.ids().rev() {
        if live[id.index()] {
            for x in &g.node(id).inputs {
                live[x.index()] = true;
            }
        }
    }
    live
}

/// `g` without the nodes no output depends on, inputs included: an
/// inference graph without the labels ([`run`] keeps every input: the
/// runner feeds inputs by name).
pub fn pruned(g: &Graph) -> Result<Graph, IrError> {
    let live = live(g);
    let mut out = Graph::new();
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    for id in g.ids().filter(|id| live[id.index()]) {
        let node = g.node(id);
        // Inputs come before their users (topological order), so every one is mapped.
        let ins: Vec<NodeId> = node.inputs.iter().map(|x| map[x]).collect();
        out.set_origin(g.origin(id));
        map.insert(id, out.insert(node.op.clone(), &ins)?);
    }
    for (name, id) in g.outputs() {
        out.set_output(name.clone(), map[id])?;
    }
    Ok(out)
}
