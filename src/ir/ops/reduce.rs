//! Reductions over a set of axes; reduced axes are removed from the shape.
//!
//! Float sums are accumulated in f64 by the reference interpreter. A max over
//! an empty axis is -inf (i32::MIN for integers); NaN propagates.

use ndarray::Axis;

use super::elementwise::nan_max;
use crate::ir::error::IrError;
use crate::ir::graph::Graph;
use crate::ir::op::{LoweringClass, OpRule, Rewrite, VjpCtx, arity};
use crate::ir::tensor::Tensor;
use crate::ir::types::{DType, NodeId, ShapeDisplay, Type};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReduceOp {
    Sum,
    Max,
}

/// Reduces `axes` (strictly increasing) with `op`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reduce {
    pub op: ReduceOp,
    pub axes: Vec<usize>,
}

impl Reduce {
    /// The input shape with every reduced axis set to 1.
    fn keepdims(&self, shape: &[usize]) -> Vec<usize> {
        let mut s = shape.to_vec();
        for &a in &self.axes {
            s[a] = 1;
        }
        s
    }

    /// `y` (reduced) reshaped and broadcast back to the input shape.
    fn expand(&self, g: &mut Graph, y: NodeId, in_shape: &[usize]) -> Result<NodeId, IrError> {
        let kept = g.reshape(y, &self.keepdims(in_shape))?;
        g.broadcast_to(kept, in_shape)
    }
}

impl OpRule for Reduce {
    fn name(&self) -> &'static str {
        match self.op {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max_reduce",
        }
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Reduce
    }
    fn attrs(&self) -> String {
        format!("axes={}", ShapeDisplay(&self.axes))
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity(self.name(), ins, 1)?;
        let x = ins[0];
        if !matches!(x.dtype, DType::F32 | DType::I32) {
            return Err(IrError::ty(self.name(), format!("not defined on {x}")));
        }
        let increasing = self.axes.windows(2).all(|w| w[0] < w[1]);
        if !increasing || self.axes.last().is_some_and(|&a| a >= x.rank()) {
            let msg = format!("axes {} must be increasing and within {x}", ShapeDisplay(&self.axes));
            return Err(IrError::ty(self.name(), msg));
        }
        let shape = (0..x.rank()).filter(|a| !self.axes.contains(a)).map(|a| x.shape[a]).collect::<Vec<_>>();
        Ok(x.with_shape(shape))
    }
    fn eval(&self, _ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        // Reduce the highest axis first so the lower indices stay valid.
        let axes = self.axes.iter().rev().map(|&a| Axis(a));
        Ok(match (self.op, ins[0]) {
            (ReduceOp::Sum, Tensor::Float(a)) => Tensor::Float(axes.fold(a.clone(), |a, ax| a.sum_axis(ax))),
            (ReduceOp::Max, Tensor::Float(a)) => {
                Tensor::Float(axes.fold(a.clone(), |a, ax| a.fold_axis(ax, f64::NEG_INFINITY, |&m, &x| nan_max(m, x))))
            }
            (ReduceOp::Sum, Tensor::Int(a)) => {
                Tensor::Int(axes.fold(a.clone(), |a, ax| a.fold_axis(ax, 0, |&s, &x| s.wrapping_add(x))))
            }
            (ReduceOp::Max, Tensor::Int(a)) => {
                Tensor::Int(axes.fold(a.clone(), |a, ax| a.fold_axis(ax, i32::MIN, |&m, &x| m.max(x))))
            }
            (_, t @ (Tensor::Bool(_) | Tensor::Byte(_))) => {
                return Err(IrError::ty(self.name(), format!("not defined on {}", t.dtype())));
            }
        })
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        let x = cx.inputs[0];
        let shape = g.ty(x)?.shape;
        let ct = self.expand(g, cx.cot, &shape)?;
        let grad = match self.op {
            ReduceOp::Sum => ct,
            ReduceOp::Max => {
                // Ties share the cotangent equally (as in JAX).
                let y = self.expand(g, cx.out, &shape)?;
                let hit = g.eq(x, y)?;
                let mask = g.cast(hit, DType::F32)?;
                let count = g.reduce(ReduceOp::Sum, mask, &self.axes)?;
                let count = self.expand(g, count, &shape)?;
                let share = g.div(mask, count)?;
                g.mul(ct, share)?
            }
        };
        Ok(vec![Some(grad)])
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], _ty: &Type) -> Option<Rewrite> {
        if self.axes.is_empty() {
            return Some(Rewrite::Node(ins[0]));
        }
        let v = g.splat(ins[0])?;
        let shape = &g.node(ins[0]).ty.shape;
        let count: usize = self.axes.iter().map(|&a| shape[a]).product();
        // An empty reduction of a constant is left to the interpreter's rule.
        let folded = match self.op {
            ReduceOp::Sum => v * count as f64,
            ReduceOp::Max => v,
        };
        (count > 0).then_some(Rewrite::Const(folded))
    }
}
