//! What the checker knows about a value: its type, and for compile-time
//! values (ints, bools) as much of the value as is known.

use super::dim::{Dim, Shape};
use crate::resolve::{ItemRef, ModuleId};
use crate::span::Span;
use crate::syntax::ast::DType;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub struct TensorTy {
    pub dtype: DType,
    pub shape: Shape,
    /// For integer tensors: the values are ids in `0..n` (labels, tokens).
    pub classes: Option<Classes>,
}

/// Two tensors have the same type when dtype and shape agree; a class count
/// is checked where ids are used (one_hot, gathers, `classes C` parameters).
impl PartialEq for TensorTy {
    fn eq(&self, other: &TensorTy) -> bool {
        self.dtype == other.dtype && self.shape == other.shape
    }
}

impl TensorTy {
    pub fn with_shape(&self, shape: Shape) -> TensorTy {
        TensorTy { dtype: self.dtype, shape, classes: self.classes.clone() }
    }
}

/// `classes N` on an integer tensor, and where it was declared (a dataset
/// field or a signature), so a clash can point at the declaration.
#[derive(Clone, Debug)]
pub struct Classes {
    pub n: Dim,
    pub at: Span,
}

impl Classes {
    /// Whether ids in `0..self.n` are ids in `0..n`: a count is an upper
    /// bound (a table may have spare rows, a head more outputs); counts
    /// known only symbolically must be equal.
    pub fn fits_in(&self, n: &Dim) -> bool {
        match (self.n.as_const(), n.as_const()) {
            (Some(k), Some(m)) => k <= m,
            _ => &self.n == n,
        }
    }

    /// The count values from either `a` or `b` are sure to have.
    pub fn shared(a: &Option<Classes>, b: &Option<Classes>) -> Option<Classes> {
        match (a, b) {
            (Some(x), Some(y)) if x.n == y.n => Some(x.clone()),
            _ => None,
        }
    }
}

/// A model with its parameters bound: `Linear(784, hidden)`.
#[derive(Clone, Debug)]
pub struct ModelInst {
    pub item: ItemRef,
    pub name: String,
    pub args: Vec<(String, Val)>,
}

#[derive(Clone, Debug)]
pub enum Val {
    /// Poison: an error was already reported; suppresses follow-on errors.
    Error,
    Tensor(TensorTy),
    /// A compile-time int (sizes, axes, counts), with its value if known.
    Int(Option<Dim>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Str(String),
    Dims(Option<Vec<Dim>>),
    List(Vec<Val>),
    Record(Vec<(String, Val)>),
    Init,
    /// A named function item, callable or passable (`= glorot`).
    Fn(ItemRef),
    Builtin(crate::builtins::Builtin),
    ModelClass(ItemRef),
    Model(Rc<ModelInst>),
    /// `[Block(d); n]`: a stack applied in sequence.
    Stack(Rc<ModelInst>, Option<Dim>),
    OptimizerClass(ItemRef),
    Optimizer(ItemRef),
    Dataset(ItemRef),
    Split(ItemRef, String),
    Source(String),
    Module(ModuleId),
}

impl Val {
    pub fn tensor(dtype: DType, shape: Shape) -> Val {
        Val::Tensor(TensorTy { dtype, shape, classes: None })
    }

    pub fn scalar(dtype: DType) -> Val {
        Val::tensor(dtype, Shape::scalar())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Val::Error)
    }

    /// The kind of thing, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Val::Error => "an error",
            Val::Tensor(_) => "a tensor",
            Val::Int(_) => "an int",
            Val::Float(_) => "a float",
            Val::Bool(_) => "a bool",
            Val::Str(_) => "a string",
            Val::Dims(_) => "dims",
            Val::List(_) => "a list",
            Val::Record(_) => "a record",
            Val::Init => "an initialiser",
            Val::Fn(_) | Val::Builtin(_) => "a function",
            Val::ModelClass(_) => "a model definition",
            Val::Model(_) => "a model",
            Val::Stack(..) => "a stack of models",
            Val::OptimizerClass(_) | Val::Optimizer(_) => "an optimizer",
            Val::Dataset(_) => "a dataset",
            Val::Split(..) => "a dataset split",
            Val::Source(_) => "a data source",
            Val::Module(_) => "a module",
        }
    }
}
