//! Movement ops: values are copied, never computed, so backends turn them into
//! index arithmetic. Each folds a splat constant to a splat constant.

use ndarray::{ArrayD, Axis, IxDyn, Slice as NdSlice};

use crate::ir::error::IrError;
use crate::ir::graph::Graph;
use crate::ir::op::{LoweringClass, Op, OpRule, Rewrite, VjpCtx, arity};
use crate::ir::tensor::{Elem, Tensor, reshaped, same_elems, with_dtype, with_elem};
use crate::ir::types::{NodeId, Scalar, Shape, ShapeDisplay, Type};

/// `3,4` (the brackets come from the printer).
fn dims(d: &[usize]) -> String {
    d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

/// Same elements, row-major, new shape of the same size.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reshape {
    pub shape: Shape,
}

impl OpRule for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Movement
    }
    fn attrs(&self) -> String {
        dims(&self.shape)
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("reshape", ins, 1)?;
        let out = ins[0].with_shape(self.shape.clone());
        if out.numel() != ins[0].numel() {
            return Err(IrError::ty("reshape", format!("cannot reshape {} to {}", ins[0], ShapeDisplay(&self.shape))));
        }
        Ok(out)
    }
    fn eval(&self, _ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        with_elem!(ins[0], a => Ok(Elem::wrap(reshaped(a, &self.shape)?)))
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        let shape = g.ty(cx.inputs[0])?.shape;
        Ok(vec![Some(g.reshape(cx.cot, &shape)?)])
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], ty: &Type) -> Option<Rewrite> {
        let inner = g.node(ins[0]);
        if inner.ty.shape == ty.shape {
            return Some(Rewrite::Node(ins[0]));
        }
        if let Op::Reshape(_) = inner.op {
            return Some(Rewrite::Op(Op::Reshape(self.clone()), inner.inputs.clone()));
        }
        g.splat(ins[0]).map(Rewrite::Const)
    }
}

/// `out.shape[i] = in.shape[perm[i]]` (numpy `transpose`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Permute {
    pub perm: Vec<usize>,
}

impl OpRule for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Movement
    }
    fn attrs(&self) -> String {
        dims(&self.perm)
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("permute", ins, 1)?;
        let n = ins[0].rank();
        let mut seen = vec![false; n];
        let valid = self.perm.len() == n && self.perm.iter().all(|&p| p < n && !std::mem::replace(&mut seen[p], true));
        if !valid {
            let msg = format!("{} is not a permutation of the axes of {}", ShapeDisplay(&self.perm), ins[0]);
            return Err(IrError::ty("permute", msg));
        }
        Ok(ins[0].with_shape(self.perm.iter().map(|&p| ins[0].shape[p]).collect::<Vec<_>>()))
    }
    fn eval(&self, _ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        with_elem!(ins[0], a => Ok(Elem::wrap(a.view().permuted_axes(IxDyn(&self.perm)).as_standard_layout().into_owned())))
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        let mut inv = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inv[p] = i;
        }
        Ok(vec![Some(g.permute(cx.cot, &inv)?)])
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], _ty: &Type) -> Option<Rewrite> {
        if self.perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Some(Rewrite::Node(ins[0]));
        }
        let inner = g.node(ins[0]);
        if let Op::Permute(p1) = &inner.op {
            // out[i] = mid[p2[i]] = in[p1[p2[i]]]
            let perm = self.perm.iter().map(|&p| p1.perm[p]).collect();
            return Some(Rewrite::Op(Op::Permute(Permute { perm }), inner.inputs.clone()));
        }
        g.splat(ins[0]).map(Rewrite::Const)
    }
}

/// Numpy broadcasting to `shape`: the input is right-aligned to the output
/// rank and each of its dims is 1 or equal to the output dim.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Broadcast {
    pub shape: Shape,
}

impl Broadcast {
    /// Output axes that the input does not have or has as size 1 (to be summed
    /// in the VJP).
    fn expanded_axes(&self, input: &[usize]) -> Vec<usize> {
        let off = self.shape.len() - input.len();
        (0..self.shape.len()).filter(|&j| j < off || (input[j - off] == 1 && self.shape[j] != 1)).collect()
    }
}

impl OpRule for Broadcast {
    fn name(&self) -> &'static str {
        "broadcast"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Movement
    }
    fn attrs(&self) -> String {
        dims(&self.shape)
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("broadcast", ins, 1)?;
        let x = &ins[0].shape;
        let ok =
            x.len() <= self.shape.len() && x.iter().rev().zip(self.shape.iter().rev()).all(|(&a, &b)| a == 1 || a == b);
        if !ok {
            return Err(IrError::ty(
                "broadcast",
                format!("cannot broadcast {} to {}", ins[0], ShapeDisplay(&self.shape)),
            ));
        }
        Ok(ins[0].with_shape(self.shape.clone()))
    }
    fn eval(&self, _ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        with_elem!(ins[0], a => {
            let view = a.broadcast(IxDyn(&self.shape)).ok_or_else(|| IrError::ty("broadcast", "shape mismatch"))?;
            Ok(Elem::wrap(view.to_owned()))
        })
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        // The adjoint of copying is summing the copies.
        let shape = g.ty(cx.inputs[0])?.shape;
        let summed = g.sum(cx.cot, &self.expanded_axes(&shape))?;
        Ok(vec![Some(g.reshape(summed, &shape)?)])
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], ty: &Type) -> Option<Rewrite> {
        let inner = g.node(ins[0]);
        if inner.ty.shape == ty.shape {
            return Some(Rewrite::Node(ins[0]));
        }
        if let Op::Broadcast(_) = inner.op {
            // Broadcasts compose: a dim that is 1 or equal stays so.
            return Some(Rewrite::Op(Op::Broadcast(self.clone()), inner.inputs.clone()));
        }
        g.splat(ins[0]).map(Rewrite::Const)
    }
}

/// Per axis: elements `start, start+step, …` below `end` (`step >= 1`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Slice {
    pub start: Vec<usize>,
    pub end: Vec<usize>,
    pub step: Vec<usize>,
}

impl OpRule for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Movement
    }
    fn attrs(&self) -> String {
        let axes: Vec<String> =
            (0..self.start.len()).map(|i| format!("{}:{}:{}", self.start[i], self.end[i], self.step[i])).collect();
        axes.join(", ")
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("slice", ins, 1)?;
        let x = ins[0];
        let n = x.rank();
        let lens_ok = self.start.len() == n && self.end.len() == n && self.step.len() == n;
        let ok =
            lens_ok && (0..n).all(|i| self.start[i] <= self.end[i] && self.end[i] <= x.shape[i] && self.step[i] >= 1);
        if !ok {
            return Err(IrError::ty("slice", format!("[{}] is not a valid slice of {x}", self.attrs())));
        }
        Ok(x.with_shape((0..n).map(|i| (self.end[i] - self.start[i]).div_ceil(self.step[i])).collect::<Vec<_>>()))
    }
    fn eval(&self, _ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let range = |ax: ndarray::AxisDescription| {
            let i = ax.axis.index();
            NdSlice::new(self.start[i] as isize, Some(self.end[i] as isize), self.step[i] as isize)
        };
        with_elem!(ins[0], a => Ok(Elem::wrap(a.slice_each_axis(range).to_owned())))
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        let shape = g.ty(cx.inputs[0])?.shape;
        let mut ct = cx.cot;
        for (axis, &n) in shape.iter().enumerate() {
            ct = unslice_axis(g, ct, axis, self.start[axis], self.step[axis], n)?;
        }
        Ok(vec![Some(ct)])
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], ty: &Type) -> Option<Rewrite> {
        let inner = g.node(ins[0]);
        if inner.ty.shape == ty.shape {
            // Same extent on every axis means start 0 and step 1 (or size <= 1).
            return Some(Rewrite::Node(ins[0]));
        }
        g.splat(ins[0]).map(Rewrite::Const)
    }
}

/// Places `ct` (the cotangent of a strided slice along `axis`) back into a
/// length-`n` axis, zeros elsewhere: interleave `step - 1` zeros by reshaping
/// to [m, 1], padding to [m, step] and flattening, then pad to position.
fn unslice_axis(
    g: &mut Graph,
    ct: NodeId,
    axis: usize,
    start: usize,
    step: usize,
    n: usize,
) -> Result<NodeId, IrError> {
    let shape = g.ty(ct)?.shape;
    let m = shape[axis];
    let pad_axis = |g: &mut Graph, x: NodeId, ax: usize, lo: usize, hi: usize| {
        let rank = g.ty(x)?.rank();
        let (mut l, mut h) = (vec![0; rank], vec![0; rank]);
        (l[ax], h[ax]) = (lo, hi);
        g.pad(x, &l, &h, 0.0)
    };
    if step == 1 || m <= 1 {
        return pad_axis(g, ct, axis, start, n - start - m);
    }
    let mut split = shape.clone();
    split.insert(axis + 1, 1);
    let x = g.reshape(ct, &split)?;
    let x = pad_axis(g, x, axis + 1, 0, step - 1)?;
    let mut flat = shape.clone();
    flat[axis] = m * step;
    let x = g.reshape(x, &flat)?;
    let len = (m - 1) * step + 1;
    let x = g.slice_axis(x, axis, 0, len)?;
    pad_axis(g, x, axis, start, n - start - len)
}

/// Per axis: `lo` and `hi` extra elements of `value` (non-negative padding).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Pad {
    pub lo: Vec<usize>,
    pub hi: Vec<usize>,
    pub value: Scalar,
}

impl OpRule for Pad {
    fn name(&self) -> &'static str {
        "pad"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Movement
    }
    fn attrs(&self) -> String {
        format!("lo={} hi={} value={}", ShapeDisplay(&self.lo), ShapeDisplay(&self.hi), self.value)
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("pad", ins, 1)?;
        let x = ins[0];
        if self.lo.len() != x.rank() || self.hi.len() != x.rank() {
            return Err(IrError::ty("pad", format!("[{}] does not match the rank of {x}", self.attrs())));
        }
        Ok(x.with_shape((0..x.rank()).map(|i| self.lo[i] + x.shape[i] + self.hi[i]).collect::<Vec<_>>()))
    }
    fn eval(&self, ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        with_dtype!(ty.dtype, T => {
            let a = same_elems::<T>("pad", ins)?[0];
            let mut out = ArrayD::from_elem(IxDyn(&ty.shape), T::from_f64(self.value.0));
            out.slice_each_axis_mut(|ax| {
                let i = ax.axis.index();
                NdSlice::from(self.lo[i]..self.lo[i] + a.shape()[i])
            })
            .assign(a);
            Ok(T::wrap(out))
        })
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        let shape = g.ty(cx.inputs[0])?.shape;
        let end: Vec<usize> = self.lo.iter().zip(&shape).map(|(l, d)| l + d).collect();
        let step = vec![1; shape.len()];
        Ok(vec![Some(g.slice(cx.cot, &self.lo, &end, &step)?)])
    }
    fn simplify(&self, g: &Graph, ins: &[NodeId], ty: &Type) -> Option<Rewrite> {
        if g.node(ins[0]).ty.shape == ty.shape {
            return Some(Rewrite::Node(ins[0]));
        }
        let v = g.splat(ins[0])?;
        (Scalar(v) == Scalar(ty.dtype.round(self.value.0))).then_some(Rewrite::Const(v))
    }
}

/// Joins the inputs along `axis`; all other dims must agree.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Concat {
    pub axis: usize,
}

impl OpRule for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Movement
    }
    fn attrs(&self) -> String {
        format!("axis={}", self.axis)
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        let first = ins.first().ok_or_else(|| IrError::ty("concat", "needs at least one input"))?;
        let same_elsewhere = |t: &Type| {
            t.dtype == first.dtype
                && t.rank() == first.rank()
                && (0..t.rank()).all(|i| i == self.axis || t.shape[i] == first.shape[i])
        };
        if self.axis >= first.rank() || !ins.iter().all(|t| same_elsewhere(t)) {
            let tys: Vec<String> = ins.iter().map(|t| t.to_string()).collect();
            return Err(IrError::ty("concat", format!("cannot join {} along axis {}", tys.join(", "), self.axis)));
        }
        let mut shape = first.shape.clone();
        shape[self.axis] = ins.iter().map(|t| t.shape[self.axis]).sum();
        Ok(first.with_shape(shape))
    }
    fn eval(&self, ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        with_dtype!(ty.dtype, T => {
            let views: Vec<_> = same_elems::<T>("concat", ins)?.into_iter().map(|a| a.view()).collect();
            let out = ndarray::concatenate(Axis(self.axis), &views).map_err(|e| IrError::ty("concat", e.to_string()))?;
            Ok(T::wrap(out))
        })
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        let mut offset = 0;
        let mut grads = Vec::with_capacity(cx.inputs.len());
        for (&x, &want) in cx.inputs.iter().zip(cx.wants) {
            let len = g.ty(x)?.shape[self.axis];
            grads.push(if want { Some(g.slice_axis(cx.cot, self.axis, offset, offset + len)?) } else { None });
            offset += len;
        }
        Ok(grads)
    }
    fn simplify(&self, _g: &Graph, ins: &[NodeId], _ty: &Type) -> Option<Rewrite> {
        (ins.len() == 1).then_some(Rewrite::Node(ins[0]))
    }
}
