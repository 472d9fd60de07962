//! Graph-to-graph optimisation passes, one per file, each `run(&Graph) ->
//! Result<Graph, IrError>`. Every pass rebuilds the graph through the
//! folding, hash-consing builder, so local simplification and CSE also apply
//! to whatever a pass produces. [`optimize`] runs them to a fixed point, with
//! the verifier between passes in debug builds.

#![warn(clippy::wildcard_enum_match_arm)]

pub mod cse;
pub mod dce;
pub mod fold;
pub mod simplify;

use crate::ir::{Graph, IrError, Node, NodeId};

/// A pass: graph in, graph out.
pub type Pass = fn(&Graph) -> Result<Graph, IrError>;

/// The pipeline, in order.
pub const PASSES: [(&str, Pass); 4] =
    [("simplify", simplify::run), ("fold", fold::run), ("cse", cse::run), ("dce", dce::run)];

/// Round limit: each round can only shrink or rewrite the graph, so a fixed
/// point comes quickly; the cap guards against a rule pair that oscillates.
const MAX_ROUNDS: usize = 16;

/// Runs every pass until the graph stops changing.
pub fn optimize(g: &Graph) -> Result<Graph, IrError> {
    let mut g = g.clone();
    for _ in 0..MAX_ROUNDS {
        let before = g.clone();
        for (name, pass) in PASSES {
            g = pass(&g)?;
            if cfg!(debug_assertions) {
                crate::ir::verify(&g)
                    .map_err(|e| IrError::Invalid { node: None, message: format!("after {name}: {e}") })?;
            }
        }
        if g.nodes() == before.nodes() && g.outputs() == before.outputs() {
            break;
        }
    }
    Ok(g)
}

/// Rebuilds the nodes of `g` for which `keep` holds (plus every input, in
/// order, so the input list survives) into a fresh graph. `map` builds each
/// node's replacement from its remapped inputs; [`reinsert`] copies it.
pub fn rebuild(
    g: &Graph,
    keep: &[bool],
    mut map: impl FnMut(&mut Graph, &Node, &[NodeId]) -> Result<NodeId, IrError>,
) -> Result<Graph, IrError> {
    let mut out = Graph::new();
    let mut new_id: Vec<Option<NodeId>> = vec![None; g.len()];
    for &id in g.inputs() {
        out.set_origin(g.origin(id));
        new_id[id.index()] = Some(out.insert(g.node(id).op.clone(), &[])?);
    }
    for id in g.ids() {
        if new_id[id.index()].is_some() || !keep.get(id.index()).copied().unwrap_or(false) {
            continue;
        }
        let node = g.node(id);
        let ins = node
            .inputs
            .iter()
            .map(|x| {
                new_id[x.index()].ok_or_else(|| IrError::invalid(Some(id), format!("kept, but its input {x} was not")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Whatever replaces a node stands for the same source.
        out.set_origin(g.origin(id));
        new_id[id.index()] = Some(map(&mut out, node, &ins)?);
    }
    for (name, id) in g.outputs() {
        let new = new_id
            .get(id.index())
            .copied()
            .flatten()
            .ok_or_else(|| IrError::invalid(Some(*id), "output was dropped"))?;
        out.set_output(name.clone(), new)?;
    }
    Ok(out)
}

/// Re-inserts `node`'s op on the remapped inputs.
pub fn reinsert(out: &mut Graph, node: &Node, ins: &[NodeId]) -> Result<NodeId, IrError> {
    out.insert(node.op.clone(), ins)
}
