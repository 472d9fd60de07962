//! The text form of a graph (stable: tests snapshot it) and Graphviz output.
//!
//! ```text
//! %0 = input["x" data] : f32[4,3]
//! %2 = contract[lb=[] rb=[] lc=[1] rc=[0]] %0, %1 : f32[4,5]
//! output "logits" = %2
//! ```

use std::fmt::{self, Write};

use super::graph::{Graph, Node};
use super::origin::Origin;
use super::types::NodeId;

/// One node as a line (without a newline).
pub fn node_line(id: NodeId, n: &Node) -> String {
    let mut s = format!("{id} = {}", n.op.name());
    let attrs = n.op.rule().attrs();
    if !attrs.is_empty() {
        let _ = write!(s, "[{attrs}]");
    }
    for (i, x) in n.inputs.iter().enumerate() {
        let _ = write!(s, "{}{x}", if i == 0 { " " } else { ", " });
    }
    let _ = write!(s, " : {}", n.ty);
    s
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Annotated(self, &|_| String::new()).fmt(f)
    }
}

/// The text form with a note after each node (`nnc ir` names its source
/// line there); an empty note adds nothing.
pub struct Annotated<'a>(pub &'a Graph, pub &'a dyn Fn(Origin) -> String);

impl fmt::Display for Annotated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Annotated(g, note) = self;
        for id in g.ids() {
            let n = note(g.origin(id));
            let sep = if n.is_empty() { "" } else { "  ; " };
            writeln!(f, "{}{sep}{n}", node_line(id, g.node(id)))?;
        }
        for (name, id) in g.outputs() {
            writeln!(f, "output {name:?} = {id}")?;
        }
        Ok(())
    }
}

/// The graph in Graphviz DOT: one box per node, edges from inputs to users,
/// outputs as extra ellipses.
pub fn dot(g: &Graph) -> String {
    let mut s = String::from("digraph nnc {\n  node [shape=box, fontname=monospace];\n");
    for id in g.ids() {
        let n = g.node(id);
        let label = node_line(id, n).replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(s, "  n{} [label=\"{label}\"];", id.0);
        for x in &n.inputs {
            let _ = writeln!(s, "  n{} -> n{};", x.0, id.0);
        }
    }
    for (i, (name, id)) in g.outputs().iter().enumerate() {
        let name = name.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(s, "  out{i} [shape=ellipse, label=\"{name}\"];\n  n{} -> out{i};", id.0);
    }
    s.push_str("}\n");
    s
}
