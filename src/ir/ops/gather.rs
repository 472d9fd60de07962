//! Data-dependent indexing: `gather` (np.take) and its adjoint `scatter_add`.
//!
//! Out-of-range indices (negative or >= the axis length) are defined, never
//! undefined behaviour: gather yields 0 (false for bool) and scatter-add
//! drops the update. The two rules are exact adjoints of each other.

use ndarray::{ArrayD, Dimension, IxDyn};

use crate::ir::error::IrError;
use crate::ir::graph::Graph;
use crate::ir::op::{LoweringClass, Op, OpRule, VjpCtx, arity};
use crate::ir::tensor::{Elem, Tensor, same_elems, with_dtype};
use crate::ir::types::{DType, NodeId, Type};

/// `out = take(data, indices, axis)`: shape `data[..axis] ++ indices ++ data[axis+1..]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Gather {
    pub axis: usize,
}

/// The index in `data` of output element `ix` (whose `axis..axis+k` part
/// indexes `indices`), or `None` when the index is out of range.
fn source_index(ix: &[usize], axis: usize, indices: &ArrayD<i32>, dim: usize) -> Option<Vec<usize>> {
    let k = indices.ndim();
    let i = indices[&ix[axis..axis + k]];
    let i = usize::try_from(i).ok().filter(|&i| i < dim)?;
    Some(ix[..axis].iter().chain(std::iter::once(&i)).chain(&ix[axis + k..]).copied().collect())
}

impl OpRule for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Gather
    }
    fn attrs(&self) -> String {
        format!("axis={}", self.axis)
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("gather", ins, 2)?;
        let (data, idx) = (ins[0], ins[1]);
        if self.axis >= data.rank() || idx.dtype != DType::I32 {
            let msg = format!("expects data with an axis {} and i32 indices, got {data} and {idx}", self.axis);
            return Err(IrError::ty("gather", msg));
        }
        let shape: Vec<usize> = [&data.shape[..self.axis], &idx.shape, &data.shape[self.axis + 1..]].concat();
        Ok(data.with_shape(shape))
    }
    fn eval(&self, ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let idx = ins[1].int("gather")?;
        with_dtype!(ty.dtype, T => {
            let data = same_elems::<T>("gather", &ins[..1])?[0];
            let dim = data.shape()[self.axis];
            let out = ArrayD::from_shape_fn(IxDyn(&ty.shape), |ix| {
                source_index(ix.slice(), self.axis, idx, dim).map_or(T::from_f64(0.0), |s| data[&s[..]])
            });
            Ok(T::wrap(out))
        })
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        if !cx.wants[0] {
            return Ok(vec![None, None]);
        }
        let dim = g.ty(cx.inputs[0])?.shape[self.axis];
        let grad = g.insert(Op::ScatterAdd(ScatterAdd { axis: self.axis, dim }), &[cx.inputs[1], cx.cot])?;
        Ok(vec![Some(grad), None])
    }
}

/// `(indices, updates)` to zeros of shape `updates[..axis] ++ [dim] ++
/// updates[axis+k..]` (k = rank of indices) with each update added at its index.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ScatterAdd {
    pub axis: usize,
    pub dim: usize,
}

impl OpRule for ScatterAdd {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Gather
    }
    fn attrs(&self) -> String {
        format!("axis={} dim={}", self.axis, self.dim)
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("scatter_add", ins, 2)?;
        let (idx, upd) = (ins[0], ins[1]);
        let k = idx.rank();
        let ok = idx.dtype == DType::I32
            && upd.dtype == DType::F32
            && upd.rank() >= self.axis + k
            && upd.shape[self.axis..self.axis + k] == idx.shape[..];
        if !ok {
            let msg = format!("indices {idx} do not fit f32 updates {upd} at axis {}", self.axis);
            return Err(IrError::ty("scatter_add", msg));
        }
        let shape: Vec<usize> = [&upd.shape[..self.axis], &[self.dim], &upd.shape[self.axis + k..]].concat();
        Ok(upd.with_shape(shape))
    }
    fn eval(&self, ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let (idx, upd) = (ins[0].int("scatter_add")?, ins[1].float("scatter_add")?);
        let mut out = ArrayD::<f64>::zeros(IxDyn(&ty.shape));
        for (ix, &u) in upd.indexed_iter() {
            if let Some(dst) = source_index(ix.slice(), self.axis, idx, self.dim) {
                out[&dst[..]] += u;
            }
        }
        Ok(Tensor::Float(out))
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        let grad = g.gather(cx.cot, cx.inputs[0], self.axis)?;
        Ok(vec![None, Some(grad)])
    }
}
