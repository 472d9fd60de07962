//! The graph IR: a tensor program as an arena of typed nodes.
//!
//! A [`Graph`] is a `Vec<Node>` addressed by [`NodeId`] (`%7`). Each node is an
//! [`Op`] from a closed set, its input ids and its [`Type`] (dtype and concrete
//! shape). Invariants, checked by [`verify`] and relied on everywhere else:
//!
//! 1. **Topological by construction**: every input id of a node is smaller
//!    than the node's own id, so id order is an evaluation order.
//! 2. Each node's stored type is what its op's inference rule gives for its
//!    inputs' types.
//! 3. The input list is exactly the `Input` nodes in id order, with distinct
//!    names; outputs name existing nodes, with distinct names.
//!
//! The builder ([`Graph::insert`] and the helpers in `builder.rs`) type-checks
//! each node, folds constants and local identities, and hash-conses: an
//! identical op applied to identical inputs returns the existing node, so
//! common subexpressions are shared for free.
//!
//! Per-op rules (inference, reference evaluation, VJP, simplification,
//! lowering class) live together per op family under `ops/`.

#![warn(clippy::wildcard_enum_match_arm)]

/// An op-kind enum and `ALL`, the list of its variants: per-op tests walk
/// `ALL`, so a new variant is tested without anyone listing it again.
macro_rules! closed_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($v:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $name { $($v),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];
        }
    };
}

mod builder;
pub mod dims;
mod error;
mod graph;
pub mod interp;
mod op;
pub mod ops;
mod origin;
mod print;
pub(crate) mod tensor;
mod types;
mod verify;

pub use builder::broadcast_shapes;
pub use error::IrError;
pub use graph::{Graph, Node};
pub use op::{LoweringClass, Op, OpKind, OpRule, Rewrite, VjpCtx};
pub use ops::contract::Contract;
pub use ops::conv::{Conv, ConvAttrs, ConvRole};
pub use ops::elementwise::{BinaryOp, Cast, UnaryOp};
pub use ops::gather::{Gather, ScatterAdd};
pub use ops::movement::{Broadcast, Concat, Pad, Permute, Reshape, Slice};
pub use ops::reduce::{Reduce, ReduceOp};
pub use ops::source::{Const, Input, InputRole, Iota, Literal, Random, random_uniform};
pub use origin::{Origin, Phase};
pub use print::{Annotated, dot, node_line};
pub use tensor::Tensor;
pub use types::{DType, NodeId, Scalar, Shape, Type};
pub use verify::verify;
