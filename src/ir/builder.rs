//! Convenience constructors over [`Graph::insert`], for lowering and autodiff.
//!
//! Binary helpers (`add`, `mul`, …, `select`) broadcast with numpy rules;
//! [`Graph::binary`] does not. Axes are non-negative: the front end resolves
//! negative axes before it gets here.

use super::error::IrError;
use super::graph::Graph;
use super::op::Op;
use super::ops::{
    contract::Contract,
    conv::{Conv, ConvAttrs, ConvRole},
    elementwise::{BinaryOp, Cast, UnaryOp},
    gather::{Gather, ScatterAdd},
    movement::{Broadcast, Concat, Pad, Permute, Reshape, Slice},
    reduce::{Reduce, ReduceOp},
    source::{Input, InputRole, Iota, Random},
};
use super::types::{DType, NodeId, Scalar, Shape, ShapeDisplay, Type};

/// The numpy broadcast of two shapes, or an error naming both.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Shape, IrError> {
    crate::ir::dims::broadcast(a, b, |d| *d == 1).map_err(|_| {
        IrError::ty("broadcast", format!("shapes {} and {} do not broadcast", ShapeDisplay(a), ShapeDisplay(b)))
    })
}

macro_rules! unary_helpers {
    ($($name:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($name), "(x)`, elementwise.")]
        pub fn $name(&mut self, x: NodeId) -> Result<NodeId, IrError> {
            self.unary(UnaryOp::$op, x)
        }
    )*};
}

macro_rules! binary_helpers {
    ($($name:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($name), "(a, b)`, elementwise with numpy broadcasting.")]
        pub fn $name(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
            self.broadcast_binary(BinaryOp::$op, a, b)
        }
    )*};
}

impl Graph {
    /// Declares a named input (the same declaration twice is one node).
    pub fn input(&mut self, name: &str, role: InputRole, ty: Type) -> Result<NodeId, IrError> {
        self.insert(Op::Input(Input { name: name.to_string(), role, ty }), &[])
    }

    /// An f32 scalar constant.
    pub fn scalar(&mut self, value: f64) -> NodeId {
        self.constant(value, Type::scalar(DType::F32))
    }

    /// A constant of `x`'s type.
    pub fn full_like(&mut self, x: NodeId, value: f64) -> Result<NodeId, IrError> {
        let ty = self.ty(x)?;
        Ok(self.constant(value, ty))
    }

    pub fn zeros_like(&mut self, x: NodeId) -> Result<NodeId, IrError> {
        self.full_like(x, 0.0)
    }

    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId, IrError> {
        self.insert(Op::Unary(op), &[x])
    }

    unary_helpers! {
        neg => Neg, abs => Abs, exp => Exp, log => Log, sqrt => Sqrt, rsqrt => Rsqrt,
        tanh => Tanh, sigmoid => Sigmoid, sin => Sin, cos => Cos, floor => Floor,
        sign => Sign, not => Not, recip => Recip,
    }

    /// A binary op on operands of identical type (no broadcasting).
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.insert(Op::Binary(op), &[a, b])
    }

    /// A binary op after broadcasting both operands to their common shape.
    pub fn broadcast_binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        let shape = broadcast_shapes(&self.ty(a)?.shape, &self.ty(b)?.shape)?;
        let a = self.broadcast_to(a, &shape)?;
        let b = self.broadcast_to(b, &shape)?;
        self.binary(op, a, b)
    }

    binary_helpers! {
        add => Add, sub => Sub, mul => Mul, div => Div, pow => Pow, max => Max, min => Min,
        lt => Lt, le => Le, gt => Gt, ge => Ge, eq => Eq, ne => Ne, and => And, or => Or,
    }

    /// A scalar constant of `x`'s dtype.
    fn scalar_like(&mut self, x: NodeId, value: f64) -> Result<NodeId, IrError> {
        let dtype = self.ty(x)?.dtype;
        Ok(self.constant(value, Type::scalar(dtype)))
    }

    /// `x * value`.
    pub fn mul_scalar(&mut self, x: NodeId, value: f64) -> Result<NodeId, IrError> {
        let c = self.scalar_like(x, value)?;
        self.mul(x, c)
    }

    /// `x + value`.
    pub fn add_scalar(&mut self, x: NodeId, value: f64) -> Result<NodeId, IrError> {
        let c = self.scalar_like(x, value)?;
        self.add(x, c)
    }

    /// `x - value`.
    pub fn sub_scalar(&mut self, x: NodeId, value: f64) -> Result<NodeId, IrError> {
        let c = self.scalar_like(x, value)?;
        self.sub(x, c)
    }

    /// `value - x`.
    pub fn scalar_sub(&mut self, value: f64, x: NodeId) -> Result<NodeId, IrError> {
        let c = self.scalar_like(x, value)?;
        self.sub(c, x)
    }

    /// `a` where `cond`, else `b`; all three broadcast together.
    pub fn select(&mut self, cond: NodeId, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        let ab = broadcast_shapes(&self.ty(a)?.shape, &self.ty(b)?.shape)?;
        let shape = broadcast_shapes(&self.ty(cond)?.shape, &ab)?;
        let c = self.broadcast_to(cond, &shape)?;
        let a = self.broadcast_to(a, &shape)?;
        let b = self.broadcast_to(b, &shape)?;
        self.insert(Op::Select, &[c, a, b])
    }

    pub fn cast(&mut self, x: NodeId, to: DType) -> Result<NodeId, IrError> {
        self.insert(Op::Cast(Cast { to }), &[x])
    }

    pub fn stop_gradient(&mut self, x: NodeId) -> Result<NodeId, IrError> {
        self.insert(Op::StopGradient, &[x])
    }

    /// Reduces `axes` (any order, duplicates allowed); they are removed from the shape.
    pub fn reduce(&mut self, op: ReduceOp, x: NodeId, axes: &[usize]) -> Result<NodeId, IrError> {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        self.insert(Op::Reduce(Reduce { op, axes }), &[x])
    }

    /// Sum over `axes`, removing them.
    pub fn sum(&mut self, x: NodeId, axes: &[usize]) -> Result<NodeId, IrError> {
        self.reduce(ReduceOp::Sum, x, axes)
    }

    /// Sum of every element, as a scalar.
    pub fn sum_all(&mut self, x: NodeId) -> Result<NodeId, IrError> {
        let axes: Vec<usize> = (0..self.ty(x)?.rank()).collect();
        self.sum(x, &axes)
    }

    /// Reduces `axes`, keeping them as size-1 dims when `keepdims`.
    fn reduce_keep(&mut self, op: ReduceOp, x: NodeId, axes: &[usize], keepdims: bool) -> Result<NodeId, IrError> {
        let r = self.reduce(op, x, axes)?;
        if !keepdims {
            return Ok(r);
        }
        let mut shape = self.ty(x)?.shape;
        for &a in axes {
            if let Some(d) = shape.get_mut(a) {
                *d = 1;
            }
        }
        self.reshape(r, &shape)
    }

    pub fn sum_axes(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> Result<NodeId, IrError> {
        self.reduce_keep(ReduceOp::Sum, x, axes, keepdims)
    }

    pub fn max_axes(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> Result<NodeId, IrError> {
        self.reduce_keep(ReduceOp::Max, x, axes, keepdims)
    }

    /// Mean over `axes` (f32 only).
    pub fn mean(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> Result<NodeId, IrError> {
        let ty = self.ty(x)?;
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        let count: usize = axes.iter().filter_map(|&a| ty.shape.get(a)).product();
        let s = self.sum_axes(x, &axes, keepdims)?;
        self.mul_scalar(s, 1.0 / count as f64)
    }

    pub fn reshape(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, IrError> {
        self.insert(Op::Reshape(Reshape { shape: shape.to_vec() }), &[x])
    }

    /// `out.shape[i] = x.shape[perm[i]]`.
    pub fn permute(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId, IrError> {
        self.insert(Op::Permute(Permute { perm: perm.to_vec() }), &[x])
    }

    /// Swaps the last two axes.
    pub fn transpose(&mut self, x: NodeId) -> Result<NodeId, IrError> {
        let n = self.ty(x)?.rank();
        if n < 2 {
            return Err(IrError::ty("transpose", format!("needs rank >= 2, got {}", self.ty(x)?)));
        }
        let mut perm: Vec<usize> = (0..n).collect();
        perm.swap(n - 2, n - 1);
        self.permute(x, &perm)
    }

    /// Numpy broadcast of `x` to `shape` (no node when it already has that shape).
    pub fn broadcast_to(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, IrError> {
        if self.ty(x)?.shape == shape {
            return Ok(x);
        }
        self.insert(Op::Broadcast(Broadcast { shape: shape.to_vec() }), &[x])
    }

    pub fn slice(&mut self, x: NodeId, start: &[usize], end: &[usize], step: &[usize]) -> Result<NodeId, IrError> {
        let op = Slice { start: start.to_vec(), end: end.to_vec(), step: step.to_vec() };
        self.insert(Op::Slice(op), &[x])
    }

    /// `x[.., start..end, ..]` along one axis, step 1.
    pub fn slice_axis(&mut self, x: NodeId, axis: usize, start: usize, end: usize) -> Result<NodeId, IrError> {
        let shape = self.ty(x)?.shape;
        if axis >= shape.len() {
            return Err(IrError::ty("slice", format!("axis {axis} out of range for {}", self.ty(x)?)));
        }
        let (mut s, mut e) = (vec![0; shape.len()], shape.clone());
        (s[axis], e[axis]) = (start, end);
        self.slice(x, &s, &e, &vec![1; shape.len()])
    }

    pub fn pad(&mut self, x: NodeId, lo: &[usize], hi: &[usize], value: f64) -> Result<NodeId, IrError> {
        let op = Pad { lo: lo.to_vec(), hi: hi.to_vec(), value: Scalar(value) };
        self.insert(Op::Pad(op), &[x])
    }

    pub fn concat(&mut self, xs: &[NodeId], axis: usize) -> Result<NodeId, IrError> {
        self.insert(Op::Concat(Concat { axis }), xs)
    }

    pub fn contract(&mut self, a: NodeId, b: NodeId, dims: Contract) -> Result<NodeId, IrError> {
        self.insert(Op::Contract(dims), &[a, b])
    }

    /// Numpy `matmul`: `[..., M, K] @ [K, N]`, batched `[..., M, K] @ [..., K, N]`
    /// (batch dims broadcast), and rank-1 operands as vectors.
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        let (ta, tb) = (self.ty(a)?, self.ty(b)?);
        let (ra, rb) = (ta.rank(), tb.rank());
        let err = || IrError::ty("matmul", format!("cannot multiply {ta} by {tb}"));
        let simple =
            |lc, rc| Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![lc], rhs_contract: vec![rc] };
        match (ra, rb) {
            (0, _) | (_, 0) => Err(err()),
            // A vector or an unbatched matrix on the right: no batch dims needed.
            (_, 1) => self.contract(a, b, simple(ra - 1, 0)),
            (1, _) | (_, 2) => self.contract(a, b, simple(ra - 1, rb - 2)).map_err(|_| err()),
            _ => {
                let batch = broadcast_shapes(&ta.shape[..ra - 2], &tb.shape[..rb - 2]).map_err(|_| err())?;
                let nb = batch.len();
                let a = self.broadcast_to(a, &[&batch[..], &ta.shape[ra - 2..]].concat())?;
                let b = self.broadcast_to(b, &[&batch[..], &tb.shape[rb - 2..]].concat())?;
                let dims = Contract {
                    lhs_batch: (0..nb).collect(),
                    rhs_batch: (0..nb).collect(),
                    lhs_contract: vec![nb + 1],
                    rhs_contract: vec![nb],
                };
                self.contract(a, b, dims).map_err(|_| err())
            }
        }
    }

    /// A convolution of NHWC `x` with HWIO `w` (see `ops::conv`).
    pub fn conv(&mut self, x: NodeId, w: NodeId, attrs: ConvAttrs) -> Result<NodeId, IrError> {
        let (tx, tw) = (self.ty(x)?, self.ty(w)?);
        if tx.rank() < 3 || tw.rank() + 2 < tx.rank() {
            return Err(IrError::ty("conv", format!("cannot convolve {tx} with {tw}: NHWC image, HWIO kernel")));
        }
        let n = tx.rank() - 2;
        let (image, window) = (tx.shape[1..=n].to_vec(), tw.shape[..n].to_vec());
        self.insert(Op::Conv(Conv { role: ConvRole::Forward, attrs, image, window }), &[x, w])
    }

    /// `np.take(data, indices, axis)`; out-of-range indices give 0.
    pub fn gather(&mut self, data: NodeId, indices: NodeId, axis: usize) -> Result<NodeId, IrError> {
        self.insert(Op::Gather(Gather { axis }), &[data, indices])
    }

    /// The adjoint of `gather`: zeros with `data.shape[axis] = dim`, updates added.
    pub fn scatter_add(
        &mut self,
        indices: NodeId,
        updates: NodeId,
        axis: usize,
        dim: usize,
    ) -> Result<NodeId, IrError> {
        self.insert(Op::ScatterAdd(ScatterAdd { axis, dim }), &[indices, updates])
    }

    /// i32 indices along `axis` of `shape`.
    pub fn iota(&mut self, shape: &[usize], axis: usize) -> Result<NodeId, IrError> {
        self.insert(Op::Iota(Iota { axis, shape: shape.to_vec() }), &[])
    }

    /// Uniform [0, 1) f32 noise from an i32 scalar `key`; `salt` tells call sites apart.
    pub fn random(&mut self, key: NodeId, salt: u64, shape: &[usize]) -> Result<NodeId, IrError> {
        self.insert(Op::Random(Random { salt, shape: shape.to_vec() }), &[key])
    }
}
