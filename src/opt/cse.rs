//! Common-subexpression elimination: re-interning every node merges identical
//! (op, inputs) pairs, including operands of commutative ops in either order.
//! Graphs made by the builder are already shared; this matters for graphs
//! from elsewhere (`Graph::from_raw`, `Graph::unfolded`) and after rewrites.

use super::{rebuild, reinsert};
use crate::ir::{Graph, IrError};

pub fn run(g: &Graph) -> Result<Graph, IrError> {
    rebuild(g, &vec![true; g.len()], reinsert)
}
