//! The inference graph of an experiment: what its model computes on one
//! batch of raw inputs, for `nnc build` and `nnc predict`.
//!
//! The model call is the one the experiment's `loss` (or else a metric)
//! applies to the data, `model(x)`: it is lowered in the evaluation scope
//! (`training` false, so dropout is off), over the raw fields it depends on
//! and the dataset's preprocessing of them (`x = f32(image) / 255.0`). Raw
//! fields it does not read (labels) are no inputs of the graph.
//!
//! Inputs: those raw fields with a batch axis in front, then the model's
//! parameters. Outputs: `logits`, the model's output, and, when that is a
//! matrix `[B, C]`, `probs`, its softmax over the classes.

use super::experiment::{Chosen, choose};
use super::{Lowerer, ParamInfo, at};
use crate::check::Checked;
use crate::check::spec::ExperimentSpec;
use crate::diag::{Diag, Diags};
use crate::ir::{BinaryOp, DType, Graph, IrError, NodeId, UnaryOp};
use crate::resolve::Program;
use crate::syntax::ast;

use super::experiment::{DataField, Setup};

/// An inference graph for one batch size.
pub struct Predict {
    pub graph: Graph,
    /// The raw fields the graph reads, per sample (no batch axis), in input order.
    pub inputs: Vec<DataField>,
    /// The parameters the graph reads, in input order.
    pub params: Vec<ParamInfo>,
    pub batch: usize,
}

/// Lower the inference graph of the experiment `setup` names, for `batch` samples.
pub fn lower_predict(program: &Program, checked: &Checked, setup: &Setup, batch: usize) -> Result<Predict, Diags> {
    let Chosen { spec, consts, data } = choose(program, checked, setup)?;
    let call = model_call(spec).ok_or_else(|| {
        vec![Diag::error("cannot tell what the model is applied to").at(spec.span, "in this experiment").help(
            "`nnc build` and `nnc predict` run the call `model(...)` that `loss` or a metric makes; write the loss as `f(model(x), y)`",
        )]
    })?;
    let mut l = Lowerer::new(program, consts, false);
    l.batch_scope(spec, &data.fields, batch).map_err(|d| vec![d])?;
    let out = l.expr(call).map_err(|d| vec![d])?;
    let out = l.node(&out, Some(DType::F32), call.span).map_err(|d| vec![d])?;
    outputs(&mut l.g, out).map_err(at(call.span)).map_err(|d| vec![d])?;
    let graph = crate::opt::dce::pruned(&l.g).map_err(at(call.span)).map_err(|d| vec![d])?;
    let read = |name: &str| graph.find_input(name).is_some();
    let inputs = data.fields.into_iter().filter(|f| read(&f.name)).collect();
    let params = l.params.iter().filter(|p| read(&p.name)).map(|p| ParamInfo::new(p, p.kind(false))).collect();
    Ok(Predict { graph, inputs, params, batch })
}

/// `logits`, and `probs` for a `[B, C]` output.
fn outputs(g: &mut Graph, logits: NodeId) -> Result<(), IrError> {
    g.set_output("logits", logits)?;
    if g.ty(logits)?.shape.len() != 2 {
        return Ok(());
    }
    // The max-shifted form of std.nn.softmax: exp never overflows.
    let max = g.max_axes(logits, &[1], true)?;
    let z = g.broadcast_binary(BinaryOp::Sub, logits, max)?;
    let e = g.unary(UnaryOp::Exp, z)?;
    let sum = g.sum_axes(e, &[1], true)?;
    let probs = g.broadcast_binary(BinaryOp::Div, e, sum)?;
    g.set_output("probs", probs)
}

/// The first `model(...)` call of `loss`, else of a metric.
fn model_call(spec: &ExperimentSpec) -> Option<&ast::Expr> {
    let metrics = spec.metrics.as_ref().and_then(|s| s.value.as_ref());
    spec.loss.value.as_ref().and_then(find_call).or_else(|| metrics.and_then(find_call))
}

fn find_call(e: &ast::Expr) -> Option<&ast::Expr> {
    use ast::ExprKind as K;
    match &e.kind {
        K::Call { callee, .. } if matches!(&callee.kind, K::Name(n) if n == "model") => Some(e),
        K::Call { callee, args } => find_call(callee).or_else(|| args.iter().find_map(|a| find_call(&a.value))),
        K::Unary(_, x) | K::Field { base: x, .. } | K::Index { base: x, .. } => find_call(x),
        K::Binary(_, a, b) => find_call(a).or_else(|| find_call(b)),
        K::List(xs) => xs.iter().find_map(find_call),
        K::Record(xs) => xs.iter().find_map(|(_, x)| find_call(x)),
        K::Block(b) => find_call(&b.tail),
        K::If { cond, els, then } => find_call(cond).or_else(|| find_call(&then.tail)).or_else(|| find_call(els)),
        K::Int(_) | K::Float(_) | K::Bool(_) | K::Str(_) | K::Name(_) => None,
    }
}
