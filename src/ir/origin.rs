//! Where each node came from, for the profiler and `nnc ir`: the source
//! expression it was lowered from and the part of the step it belongs to.
//!
//! The builder stamps every new node with the graph's current origin, which
//! lowering sets per expression, autodiff per forward node it differentiates
//! and the optimizer's lowering for its update; passes that rebuild a graph
//! copy each node's origin to its replacement. A node found by hash-consing
//! keeps the origin it was first made with.

use crate::span::Span;

/// The part of a training step a node belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    #[default]
    Forward,
    Backward,
    Optimizer,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Forward, Phase::Backward, Phase::Optimizer];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
            Phase::Optimizer => "optimizer",
        }
    }
}

/// A node's source expression in a user's file (none for nodes no such
/// expression made, such as the step counter), the innermost expression
/// anywhere (inside a library layer, its line there) and its phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    pub span: Option<Span>,
    pub inner: Option<Span>,
    pub phase: Phase,
}
