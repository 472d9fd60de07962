//! Dead-code elimination: keeps the nodes the outputs depend on (and every
//! input, which the runner feeds by name whether used or not).

use super::{rebuild, reinsert};
use crate::ir::{Graph, IrError};

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
