//! The one error type of the IR, its builder, verifier, interpreter and autodiff.

use std::fmt;

use super::types::NodeId;

/// Everything that can go wrong while building, checking or running a graph.
/// Shape errors here mean the front end let something through: the messages
/// name the op and the offending types so the bug is easy to find.
#[derive(Clone, PartialEq, Debug)]
pub enum IrError {
    /// An op was given inputs it cannot accept (arity, dtype, shape, attributes).
    Type { op: &'static str, message: String },
    /// A node id that is not (yet) in the graph.
    UnknownNode(NodeId),
    /// The graph breaks one of its invariants (found by the verifier).
    Invalid { node: Option<NodeId>, message: String },
    /// A graph input was missing or had the wrong type when interpreting.
    Input { name: String, message: String },
    /// A differentiation request that makes no sense (non-scalar loss, …).
    Grad(String),
}

impl IrError {
    pub(crate) fn ty(op: &'static str, message: impl Into<String>) -> IrError {
        IrError::Type { op, message: message.into() }
    }

    pub(crate) fn invalid(node: Option<NodeId>, message: impl Into<String>) -> IrError {
        IrError::Invalid { node, message: message.into() }
    }
}

impl fmt::Display for IrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrError::Type { op, message } => write!(f, "{op}: {message}"),
            IrError::UnknownNode(id) => write!(f, "node {id} is not in the graph"),
            IrError::Invalid { node: Some(id), message } => write!(f, "invalid graph at {id}: {message}"),
            IrError::Invalid { node: None, message } => write!(f, "invalid graph: {message}"),
            IrError::Input { name, message } => write!(f, "input `{name}`: {message}"),
            IrError::Grad(message) => write!(f, "autodiff: {message}"),
        }
    }
}

impl std::error::Error for IrError {}
