//! The closed op set and the trait through which every per-op rule is reached.
//!
//! Each op's payload type lives in its family file under `ops/` together with
//! all of its rules (type inference, reference evaluation, VJP, local
//! simplification, lowering class). [`Op::rule`] is the only `match` that
//! needs a new row when an op is added; the compiler then asks for the rest.

use super::error::IrError;
use super::graph::Graph;
use super::ops::{
    contract::Contract,
    conv::Conv,
    elementwise::{BinaryOp, Cast, SelectOp, StopGradient, UnaryOp},
    gather::{Gather, ScatterAdd},
    movement::{Broadcast, Concat, Pad, Permute, Reshape, Slice},
    reduce::Reduce,
    source::{Const, Input, Iota, Literal, Random},
};
use super::tensor::Tensor;
use super::types::{NodeId, Type};

/// How a backend generates code for an op.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LoweringClass {
    /// One output element from the same element of each input.
    Elementwise,
    /// Folds whole axes (sum, max).
    Reduce,
    /// Dot-general: batched matrix products.
    Contraction,
    /// Data-dependent indexing (gather, scatter-add).
    Gather,
    /// Pure index arithmetic: views, no arithmetic on values.
    Movement,
    /// No tensor inputs: inputs, constants, iota, random.
    Source,
}

/// Every primitive. No wildcard arms on this enum anywhere: a new op must get
/// every rule.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    Input(Input),
    Const(Const),
    Literal(Literal),
    Iota(Iota),
    Random(Random),
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `select(cond: bool, a, b)`, elementwise.
    Select,
    Cast(Cast),
    /// Identity forward, zero gradient.
    StopGradient,
    Reduce(Reduce),
    Reshape(Reshape),
    Permute(Permute),
    Broadcast(Broadcast),
    Slice(Slice),
    Pad(Pad),
    Concat(Concat),
    Contract(Contract),
    Conv(Conv),
    Gather(Gather),
    ScatterAdd(ScatterAdd),
}

closed_enum! {
    /// The kinds of [`Op`], without payloads: per-op tests walk `ALL`.
    pub enum OpKind {
        Input, Const, Literal, Iota, Random, Unary, Binary, Select, Cast, StopGradient, Reduce, Reshape, Permute,
        Broadcast, Slice, Pad, Concat, Contract, Conv, Gather, ScatterAdd,
    }
}

impl Op {
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Input(_) => OpKind::Input,
            Op::Const(_) => OpKind::Const,
            Op::Literal(_) => OpKind::Literal,
            Op::Iota(_) => OpKind::Iota,
            Op::Random(_) => OpKind::Random,
            Op::Unary(_) => OpKind::Unary,
            Op::Binary(_) => OpKind::Binary,
            Op::Select => OpKind::Select,
            Op::Cast(_) => OpKind::Cast,
            Op::StopGradient => OpKind::StopGradient,
            Op::Reduce(_) => OpKind::Reduce,
            Op::Reshape(_) => OpKind::Reshape,
            Op::Permute(_) => OpKind::Permute,
            Op::Broadcast(_) => OpKind::Broadcast,
            Op::Slice(_) => OpKind::Slice,
            Op::Pad(_) => OpKind::Pad,
            Op::Concat(_) => OpKind::Concat,
            Op::Contract(_) => OpKind::Contract,
            Op::Conv(_) => OpKind::Conv,
            Op::Gather(_) => OpKind::Gather,
            Op::ScatterAdd(_) => OpKind::ScatterAdd,
        }
    }

    /// The rules of this op.
    pub fn rule(&self) -> &dyn OpRule {
        match self {
            Op::Input(x) => x,
            Op::Const(x) => x,
            Op::Literal(x) => x,
            Op::Iota(x) => x,
            Op::Random(x) => x,
            Op::Unary(x) => x,
            Op::Binary(x) => x,
            Op::Select => &SelectOp,
            Op::Cast(x) => x,
            Op::StopGradient => &StopGradient,
            Op::Reduce(x) => x,
            Op::Reshape(x) => x,
            Op::Permute(x) => x,
            Op::Broadcast(x) => x,
            Op::Slice(x) => x,
            Op::Pad(x) => x,
            Op::Concat(x) => x,
            Op::Contract(x) => x,
            Op::Conv(x) => x,
            Op::Gather(x) => x,
            Op::ScatterAdd(x) => x,
        }
    }

    pub fn name(&self) -> &'static str {
        self.rule().name()
    }

    pub fn class(&self) -> LoweringClass {
        self.rule().class()
    }
}

/// What the autodiff driver hands a VJP rule.
pub struct VjpCtx<'a> {
    /// The node being differentiated (its value, e.g. `exp`'s output, is reusable).
    pub out: NodeId,
    pub inputs: &'a [NodeId],
    /// The cotangent of `out`: same type as `out`.
    pub cot: NodeId,
    /// `wants[i]`: whether input `i` needs a cotangent (skip the work otherwise).
    pub wants: &'a [bool],
}

/// A local rewrite proposed when a node is inserted.
#[derive(Clone, Debug)]
pub enum Rewrite {
    /// Use this existing node instead.
    Node(NodeId),
    /// A splat constant of the node's type.
    Const(f64),
    /// Build this op instead (it is simplified in turn).
    Op(Op, Vec<NodeId>),
}

/// All rules of one op. Implemented once per op payload type in `ops/`.
pub trait OpRule {
    /// Lower-case name used by the printer and error messages.
    fn name(&self) -> &'static str;
    fn class(&self) -> LoweringClass;
    /// Attributes printed in brackets after the name; empty for none.
    fn attrs(&self) -> String {
        String::new()
    }
    /// The output type, or a descriptive error.
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError>;
    /// Reference semantics on dense values (`ty` is the node's inferred type).
    fn eval(&self, ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError>;
    /// Cotangents of the inputs (`None` = zero / not differentiable / not wanted).
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError>;
    /// A cheaper equivalent of this node, applied as it is inserted.
    fn simplify(&self, _g: &Graph, _ins: &[NodeId], _ty: &Type) -> Option<Rewrite> {
        None
    }
}

/// Checks the number of inputs.
pub(crate) fn arity(op: &'static str, ins: &[&Type], n: usize) -> Result<(), IrError> {
    if ins.len() == n { Ok(()) } else { Err(IrError::ty(op, format!("expects {n} input(s), got {}", ins.len()))) }
}

/// The VJP of an op with no differentiable inputs.
pub(crate) fn no_grad(cx: &VjpCtx) -> Vec<Option<NodeId>> {
    vec![None; cx.inputs.len()]
}
