//! The general contraction (XLA DotGeneral): matmul, batched matmul, outer
//! products, inner products. Output dims: batch (in `lhs_batch` order), then
//! the lhs free dims, then the rhs free dims (free dims in ascending order).

use ndarray::{Array3, ArrayD, Axis, IxDyn};

use crate::ir::error::IrError;
use crate::ir::graph::Graph;
use crate::ir::op::{LoweringClass, Op, OpRule, VjpCtx, arity};
use crate::ir::tensor::{Tensor, reshaped};
use crate::ir::types::{DType, NodeId, ShapeDisplay, Type};

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Contract {
    pub lhs_batch: Vec<usize>,
    pub rhs_batch: Vec<usize>,
    pub lhs_contract: Vec<usize>,
    pub rhs_contract: Vec<usize>,
}

/// Dims of a rank-`rank` operand that are neither batch nor contracted, ascending.
pub fn free_dims(rank: usize, batch: &[usize], contract: &[usize]) -> Vec<usize> {
    (0..rank).filter(|d| !batch.contains(d) && !contract.contains(d)).collect()
}

fn check_dims(rank: usize, batch: &[usize], contract: &[usize]) -> bool {
    let all: Vec<usize> = batch.iter().chain(contract).copied().collect();
    all.iter().all(|&d| d < rank) && all.iter().enumerate().all(|(i, d)| !all[..i].contains(d))
}

impl OpRule for Contract {
    fn name(&self) -> &'static str {
        "contract"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Contraction
    }
    fn attrs(&self) -> String {
        let s = |v: &Vec<usize>| ShapeDisplay(v).to_string();
        format!(
            "lb={} rb={} lc={} rc={}",
            s(&self.lhs_batch),
            s(&self.rhs_batch),
            s(&self.lhs_contract),
            s(&self.rhs_contract)
        )
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("contract", ins, 2)?;
        let (l, r) = (ins[0], ins[1]);
        let err = |m: &str| Err(IrError::ty("contract", format!("{m} ({l} and {r}, {})", self.attrs())));
        if l.dtype != DType::F32 || r.dtype != DType::F32 {
            return err("operands must be f32");
        }
        if self.lhs_batch.len() != self.rhs_batch.len() || self.lhs_contract.len() != self.rhs_contract.len() {
            return err("batch and contracting dim lists must pair up");
        }
        if !check_dims(l.rank(), &self.lhs_batch, &self.lhs_contract)
            || !check_dims(r.rank(), &self.rhs_batch, &self.rhs_contract)
        {
            return err("dims must be distinct and in range");
        }
        let pairs = self.lhs_batch.iter().zip(&self.rhs_batch).chain(self.lhs_contract.iter().zip(&self.rhs_contract));
        if pairs.clone().any(|(&a, &b)| l.shape[a] != r.shape[b]) {
            return err("paired dims differ in size");
        }
        let lf = free_dims(l.rank(), &self.lhs_batch, &self.lhs_contract);
        let rf = free_dims(r.rank(), &self.rhs_batch, &self.rhs_contract);
        let shape = self.lhs_batch.iter().chain(&lf).map(|&d| l.shape[d]).chain(rf.iter().map(|&d| r.shape[d]));
        Ok(Type::f32(shape.collect::<Vec<_>>()))
    }
    fn eval(&self, ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        // Permute to [batch, free, contract] x [batch, contract, free], flatten
        // to three dims and multiply batch by batch.
        let (l, r) = (ins[0].float("contract")?, ins[1].float("contract")?);
        let lf = free_dims(l.ndim(), &self.lhs_batch, &self.lhs_contract);
        let rf = free_dims(r.ndim(), &self.rhs_batch, &self.rhs_contract);
        let size = |a: &ArrayD<f64>, dims: &[usize]| dims.iter().map(|&d| a.shape()[d]).product::<usize>();
        let (b, m, k, n) = (size(l, &self.lhs_batch), size(l, &lf), size(l, &self.lhs_contract), size(r, &rf));
        let lp: Vec<usize> = [&self.lhs_batch[..], &lf, &self.lhs_contract].concat();
        let rp: Vec<usize> = [&self.rhs_batch[..], &self.rhs_contract, &rf].concat();
        let to3 = |a: &ArrayD<f64>, p: &[usize], dims: (usize, usize, usize)| {
            let v: Vec<f64> = a.view().permuted_axes(IxDyn(p)).iter().copied().collect();
            Array3::from_shape_vec(dims, v).map_err(|e| IrError::ty("contract", e.to_string()))
        };
        let (l3, r3) = (to3(l, &lp, (b, m, k))?, to3(r, &rp, (b, k, n))?);
        let mut out = Array3::<f64>::zeros((b, m, n));
        for i in 0..b {
            out.index_axis_mut(Axis(0), i).assign(&l3.index_axis(Axis(0), i).dot(&r3.index_axis(Axis(0), i)));
        }
        Ok(Tensor::Float(reshaped(&out.into_dyn(), &ty.shape)?))
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        let (l, r, ct) = (cx.inputs[0], cx.inputs[1], cx.cot);
        let (lr, rr) = (g.ty(l)?.rank(), g.ty(r)?.rank());
        let nb = self.lhs_batch.len();
        let lf = free_dims(lr, &self.lhs_batch, &self.lhs_contract).len();
        let rf = free_dims(rr, &self.rhs_batch, &self.rhs_contract).len();
        let lhs = Side { rank: lr, batch: &self.lhs_batch, contract: &self.lhs_contract };
        let rhs = Side { rank: rr, batch: &self.rhs_batch, contract: &self.rhs_contract };
        let gl = if cx.wants[0] {
            Some(operand_grad(g, ct, r, &lhs, &rhs, (nb + lf..nb + lf + rf).collect())?)
        } else {
            None
        };
        let gr = if cx.wants[1] { Some(operand_grad(g, ct, l, &rhs, &lhs, (nb..nb + lf).collect())?) } else { None };
        Ok(vec![gl, gr])
    }
}

/// One operand's dims.
struct Side<'a> {
    rank: usize,
    batch: &'a [usize],
    contract: &'a [usize],
}

/// The cotangent of operand `x`: contract `ct` with the other operand over the
/// other's free dims (found at `ct_other_free` in `ct`), which yields
/// [batch, x free, x contract (in the other's contract-dim order, sorted)],
/// then permute back into `x`'s layout.
fn operand_grad(
    g: &mut Graph,
    ct: NodeId,
    other: NodeId,
    x: &Side,
    o: &Side,
    ct_other_free: Vec<usize>,
) -> Result<NodeId, IrError> {
    let nb = x.batch.len();
    let spec = Contract {
        lhs_batch: (0..nb).collect(),
        rhs_batch: o.batch.to_vec(),
        lhs_contract: ct_other_free,
        rhs_contract: free_dims(o.rank, o.batch, o.contract),
    };
    let res = g.insert(Op::Contract(spec), &[ct, other])?;
    let x_free = free_dims(x.rank, x.batch, x.contract);
    let mut sorted = o.contract.to_vec();
    sorted.sort_unstable();
    let mut perm = vec![0; x.rank];
    for (i, &d) in x.batch.iter().enumerate() {
        perm[d] = i;
    }
    for (j, &d) in x_free.iter().enumerate() {
        perm[d] = nb + j;
    }
    for (k, &d) in x.contract.iter().enumerate() {
        let rank_in_other = sorted.iter().position(|&c| c == o.contract[k]).unwrap_or(0);
        perm[d] = nb + x_free.len() + rank_in_other;
    }
    g.permute(res, &perm)
}
