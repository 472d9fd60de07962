//! Source ops: no tensor inputs (except `random`'s key). Graph inputs,
//! splat constants, literals, `iota` and the counter-based `random`.

use ndarray::{ArrayD, IxDyn};

use crate::ir::error::IrError;
use crate::ir::graph::Graph;
use crate::ir::op::{LoweringClass, OpRule, Rewrite, VjpCtx, arity, no_grad};
use crate::ir::tensor::Tensor;
use crate::ir::types::{DType, NodeId, Scalar, Shape, ShapeDisplay, Type};

/// What a graph input is for; the runner feeds each role differently.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum InputRole {
    /// A batch of data.
    Data,
    /// A trainable parameter.
    Param,
    /// Carried state that is not trained (optimizer moments, running stats).
    State,
    /// A scalar hyperparameter or counter (step, learning rate).
    Scalar,
    /// The i32 key that `random` ops hash.
    RngKey,
}

impl InputRole {
    pub fn name(self) -> &'static str {
        match self {
            InputRole::Data => "data",
            InputRole::Param => "param",
            InputRole::State => "state",
            InputRole::Scalar => "scalar",
            InputRole::RngKey => "rng_key",
        }
    }
}

/// A named graph input. Two inputs are one node only if name, role and type agree.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Input {
    pub name: String,
    pub role: InputRole,
    pub ty: Type,
}

impl OpRule for Input {
    fn name(&self) -> &'static str {
        "input"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Source
    }
    fn attrs(&self) -> String {
        format!("{:?} {}", self.name, self.role.name())
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("input", ins, 0)?;
        Ok(self.ty.clone())
    }
    fn eval(&self, _ty: &Type, _ins: &[&Tensor]) -> Result<Tensor, IrError> {
        Err(IrError::Input { name: self.name.clone(), message: "no value supplied".into() })
    }
    fn vjp(&self, _g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        Ok(no_grad(cx))
    }
}

/// `value` at every element of `ty` (the value is stored rounded to the dtype).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Const {
    pub value: Scalar,
    pub ty: Type,
}

impl OpRule for Const {
    fn name(&self) -> &'static str {
        "const"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Source
    }
    fn attrs(&self) -> String {
        self.value.to_string()
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("const", ins, 0)?;
        Ok(self.ty.clone())
    }
    fn eval(&self, ty: &Type, _ins: &[&Tensor]) -> Result<Tensor, IrError> {
        Ok(Tensor::full(ty, self.value.0))
    }
    fn vjp(&self, _g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        Ok(no_grad(cx))
    }
}

/// A tensor literal: row-major values of `ty`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Literal {
    pub values: Vec<Scalar>,
    pub ty: Type,
}

impl OpRule for Literal {
    fn name(&self) -> &'static str {
        "literal"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Source
    }
    fn attrs(&self) -> String {
        // Long literals are abbreviated: the printed IR must stay readable.
        const SHOWN: usize = 8;
        let mut s: Vec<String> = self.values.iter().take(SHOWN).map(|v| v.to_string()).collect();
        if self.values.len() > SHOWN {
            s.push(format!("... ({} values)", self.values.len()));
        }
        s.join(", ")
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("literal", ins, 0)?;
        if self.values.len() != self.ty.numel() {
            let msg = format!("{} values cannot fill {}", self.values.len(), self.ty);
            return Err(IrError::ty("literal", msg));
        }
        Ok(self.ty.clone())
    }
    fn eval(&self, ty: &Type, _ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let values: Vec<f64> = self.values.iter().map(|v| v.0).collect();
        Tensor::from_f64s(ty, &values)
    }
    fn vjp(&self, _g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        Ok(no_grad(cx))
    }
    fn simplify(&self, _g: &Graph, _ins: &[NodeId], _ty: &Type) -> Option<Rewrite> {
        // A literal of identical values is a splat.
        let first = *self.values.first()?;
        self.values.iter().all(|&v| v == first).then_some(Rewrite::Const(first.0))
    }
}

/// i32 tensor of `shape` whose element is its own index along `axis`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Iota {
    pub axis: usize,
    pub shape: Shape,
}

impl OpRule for Iota {
    fn name(&self) -> &'static str {
        "iota"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Source
    }
    fn attrs(&self) -> String {
        format!("axis={}", self.axis)
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("iota", ins, 0)?;
        if self.axis >= self.shape.len() {
            let msg = format!("axis {} out of range for shape {}", self.axis, ShapeDisplay(&self.shape));
            return Err(IrError::ty("iota", msg));
        }
        if self.shape[self.axis] > i32::MAX as usize {
            return Err(IrError::ty("iota", "indices do not fit in i32"));
        }
        Ok(Type::new(DType::I32, self.shape.clone()))
    }
    fn eval(&self, _ty: &Type, _ins: &[&Tensor]) -> Result<Tensor, IrError> {
        Ok(Tensor::Int(ArrayD::from_shape_fn(IxDyn(&self.shape), |ix| ix[self.axis] as i32)))
    }
    fn vjp(&self, _g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        Ok(no_grad(cx))
    }
}

/// Uniform f32 noise in [0, 1) of `shape` from an i32 scalar key; see
/// [`random_uniform`] for the exact, backend-independent definition.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Random {
    pub salt: u64,
    pub shape: Shape,
}

impl OpRule for Random {
    fn name(&self) -> &'static str {
        "random"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Source
    }
    fn attrs(&self) -> String {
        format!("salt={}", self.salt)
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("random", ins, 1)?;
        if *ins[0] != Type::scalar(DType::I32) {
            return Err(IrError::ty("random", format!("key must be i32[], got {}", ins[0])));
        }
        let ty = Type::f32(self.shape.clone());
        if ty.numel() > u32::MAX as usize {
            return Err(IrError::ty("random", "more than 2^32 elements: flat indices must fit in u32"));
        }
        Ok(ty)
    }
    fn eval(&self, ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let key = ins[0].int("random")?.iter().next().copied().unwrap_or(0);
        let values: Vec<f64> = (0..ty.numel() as u32).map(|i| f64::from(random_uniform(key, self.salt, i))).collect();
        Tensor::from_f64s(ty, &values)
    }
    fn vjp(&self, _g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        Ok(no_grad(cx))
    }
}

/// The murmur3 32-bit finaliser: a bijection with full avalanche.
pub fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The specification of `random`, which every backend must reproduce bit for
/// bit: the element at row-major flat index `i` is
///
/// ```text
/// s = mix32(mix32(mix32(key ^ 0x9e3779b9) ^ lo32(salt)) ^ hi32(salt))
/// h = mix32(mix32(s ^ i) + s)            (wrapping add)
/// u = (h >> 8) * 2^-24                   (exact in f32, in [0, 1))
/// ```
///
/// `s` depends only on the key and salt, so a kernel computes it once.
pub fn random_uniform(key: i32, salt: u64, i: u32) -> f32 {
    let s = mix32(mix32(mix32(key as u32 ^ 0x9e37_79b9) ^ salt as u32) ^ (salt >> 32) as u32);
    let h = mix32(mix32(s ^ i).wrapping_add(s));
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}
