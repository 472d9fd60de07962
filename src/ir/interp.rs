//! The reference interpreter: the executable specification of every op.
//!
//! Evaluates a graph node by node with ndarray, slowly and obviously. Float
//! nodes are computed in f64; with [`Precision::F32`] each f32 node's result is
//! then rounded to f32 (so `+ - * / sqrt` match an f32 kernel exactly, while
//! sums and matmuls are the more accurate f64-accumulated reference). With
//! [`Precision::F64`] nothing is rounded: that is what gradient checks use.

use std::collections::HashMap;

use ndarray::ArrayD;

use super::error::IrError;
use super::graph::Graph;
use super::op::Op;
use super::tensor::Tensor;
use super::types::{DType, Type};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Precision {
    /// Round every f32 node to f32, as compiled code does.
    F32,
    /// Keep f32 nodes in f64 (for finite-difference checks).
    F64,
}

/// A value going into or out of the interpreter.
#[derive(Clone, PartialEq, Debug)]
pub enum Value {
    F32(ArrayD<f32>),
    /// An f32-typed value held in f64 (output under `Precision::F64`; also
    /// accepted as input for f32 inputs).
    F64(ArrayD<f64>),
    I32(ArrayD<i32>),
    Bool(ArrayD<bool>),
    U8(ArrayD<u8>),
}

impl Value {
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => a.shape(),
            Value::F64(a) => a.shape(),
            Value::I32(a) => a.shape(),
            Value::Bool(a) => a.shape(),
            Value::U8(a) => a.shape(),
        }
    }

    /// Every element as f64, row-major.
    pub fn to_f64s(&self) -> Vec<f64> {
        match self {
            Value::F32(a) => a.iter().map(|&v| f64::from(v)).collect(),
            Value::F64(a) => a.iter().copied().collect(),
            Value::I32(a) => a.iter().map(|&v| f64::from(v)).collect(),
            Value::Bool(a) => a.iter().map(|&v| f64::from(u8::from(v))).collect(),
            Value::U8(a) => a.iter().map(|&v| f64::from(v)).collect(),
        }
    }

    /// The value as a tensor of type `ty`, or why it cannot be one.
    fn to_tensor(&self, ty: &Type, prec: Precision) -> Result<Tensor, String> {
        if self.shape() != ty.shape.as_slice() {
            return Err(format!("expected {ty}, got shape {:?}", self.shape()));
        }
        let t = match (ty.dtype, self) {
            (DType::F32, Value::F32(a)) => Tensor::Float(a.mapv(f64::from)),
            (DType::F32, Value::F64(a)) => Tensor::Float(a.clone()),
            (DType::I32, Value::I32(a)) => Tensor::Int(a.clone()),
            (DType::Bool, Value::Bool(a)) => Tensor::Bool(a.clone()),
            (DType::U8, Value::U8(a)) => Tensor::Byte(a.clone()),
            _ => return Err(format!("expected {ty}, got a value of another dtype")),
        };
        Ok(round(t, prec))
    }

    fn from_tensor(t: Tensor, prec: Precision) -> Value {
        match (t, prec) {
            (Tensor::Float(a), Precision::F32) => Value::F32(a.mapv(|v| v as f32)),
            (Tensor::Float(a), Precision::F64) => Value::F64(a),
            (Tensor::Int(a), _) => Value::I32(a),
            (Tensor::Bool(a), _) => Value::Bool(a),
            (Tensor::Byte(a), _) => Value::U8(a),
        }
    }
}

/// Rounds float tensors to f32 under `Precision::F32`.
fn round(t: Tensor, prec: Precision) -> Tensor {
    match (t, prec) {
        (Tensor::Float(a), Precision::F32) => Tensor::Float(a.mapv(|v| v as f32 as f64)),
        (t, _) => t,
    }
}

/// Evaluates `g` and returns its outputs, in order. `inputs` maps input names
/// to values; a missing or mistyped input is an error.
pub fn run(g: &Graph, inputs: &HashMap<String, Value>, prec: Precision) -> Result<Vec<Value>, IrError> {
    let vals = eval_tensors(g, inputs, prec, &needed(g))?;
    g.outputs()
        .iter()
        .map(|(_, id)| vals[id.index()].clone().map(|t| Value::from_tensor(t, prec)).ok_or(IrError::UnknownNode(*id)))
        .collect()
}

/// The nodes the outputs depend on: only these are evaluated (and only their
/// inputs need values).
fn needed(g: &Graph) -> Vec<bool> {
    let mut need = vec![false; g.len()];
    for (_, id) in g.outputs() {
        if let Some(slot) = need.get_mut(id.index()) {
            *slot = true;
        }
    }
    for id in g.ids().rev() {
        if need[id.index()] {
            for x in &g.node(id).inputs {
                need[x.index()] = true;
            }
        }
    }
    need
}

/// Evaluates `g` and returns every node's value, indexed by node id (for
/// debugging and tests).
pub fn run_all(g: &Graph, inputs: &HashMap<String, Value>, prec: Precision) -> Result<Vec<Value>, IrError> {
    let vals = eval_tensors(g, inputs, prec, &vec![true; g.len()])?;
    Ok(vals.into_iter().flatten().map(|t| Value::from_tensor(t, prec)).collect())
}

/// The core loop: every wanted node in id order (inputs always come first).
fn eval_tensors(
    g: &Graph,
    inputs: &HashMap<String, Value>,
    prec: Precision,
    want: &[bool],
) -> Result<Vec<Option<Tensor>>, IrError> {
    let mut vals: Vec<Option<Tensor>> = Vec::with_capacity(g.len());
    for id in g.ids() {
        let n = g.node(id);
        if !want[id.index()] {
            vals.push(None);
            continue;
        }
        let t = if let Op::Input(inp) = &n.op {
            let err = |message: String| IrError::Input { name: inp.name.clone(), message };
            let v = inputs.get(&inp.name).ok_or_else(|| err("no value supplied".into()))?;
            v.to_tensor(&n.ty, prec).map_err(err)?
        } else {
            let ins = n.inputs.iter().map(|x| vals[x.index()].as_ref().ok_or(IrError::UnknownNode(*x)));
            let ins: Vec<&Tensor> = ins.collect::<Result<_, _>>()?;
            round(n.op.rule().eval(&n.ty, &ins)?, prec)
        };
        if t.shape() != n.ty.shape.as_slice() || t.dtype() != n.ty.dtype {
            let msg = format!("{} evaluated to {}{:?}, expected {}", n.op.name(), t.dtype(), t.shape(), n.ty);
            return Err(IrError::invalid(Some(id), msg));
        }
        vals.push(Some(t));
    }
    Ok(vals)
}
