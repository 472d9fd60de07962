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
//! parameters. Outputs: `logits`, the model's output as it is, and, where
//! the loss says what it means ([`Meaning`]), `probs`: the softmax of class
//! scores `[B, C]`, the sigmoid of binary logits.

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
    pub meaning: Meaning,
}

/// What the model's output means, read off the loss applied to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    /// `cross_entropy(model(x), y)`: scores over classes on the last axis.
    ClassScores,
    /// `bce_with_logits(model(x), y)`: each value the logit of a yes.
    BinaryLogits,
    /// `bce(model(x), y)`: each value the probability of a yes.
    Probabilities,
    /// Any other loss (`mse`, ...): values to take as they are.
    Values,
}

impl Meaning {
    /// Of the loss `f(model(x), ...)` whose argument `call` is.
    fn of(spec: &ExperimentSpec, call: &ast::Expr) -> Meaning {
        use ast::ExprKind as K;
        let Some(loss) = spec.loss.value.as_ref() else { return Meaning::Values };
        let K::Call { callee, args } = &loss.kind else { return Meaning::Values };
        if args.first().is_none_or(|a| a.value.span != call.span) {
            return Meaning::Values;
        }
        let name = match &callee.kind {
            K::Name(n) => n.as_str(),
            K::Field { name, .. } => name.name.as_str(),
            _ => return Meaning::Values,
        };
        match name {
            "cross_entropy" => Meaning::ClassScores,
            "bce_with_logits" => Meaning::BinaryLogits,
            "bce" => Meaning::Probabilities,
            _ => Meaning::Values,
        }
    }
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
    let meaning = Meaning::of(spec, call);
    outputs(&mut l.g, out, meaning).map_err(at(call.span)).map_err(|d| vec![d])?;
    let graph = crate::opt::dce::pruned(&l.g).map_err(at(call.span)).map_err(|d| vec![d])?;
    let read = |name: &str| graph.find_input(name).is_some();
    let inputs = data.fields.into_iter().filter(|f| read(&f.name)).collect();
    let params = l.params.iter().filter(|p| read(&p.name)).map(|p| ParamInfo::new(p, p.kind(false))).collect();
    Ok(Predict { graph, inputs, params, batch, meaning })
}

/// `logits`, and `probs` where the output's meaning gives it one.
fn outputs(g: &mut Graph, logits: NodeId, meaning: Meaning) -> Result<(), IrError> {
    g.set_output("logits", logits)?;
    let last = g.ty(logits)?.shape.len().saturating_sub(1);
    let probs = match meaning {
        // The max-shifted form of std.nn.softmax: exp never overflows. Only
        // for one score vector per sample: a language model's `[B, T, V]`
        // is read position by position (its classes, or the raw scores).
        Meaning::ClassScores if last == 1 => {
            let max = g.max_axes(logits, &[last], true)?;
            let z = g.broadcast_binary(BinaryOp::Sub, logits, max)?;
            let e = g.unary(UnaryOp::Exp, z)?;
            let sum = g.sum_axes(e, &[last], true)?;
            g.broadcast_binary(BinaryOp::Div, e, sum)?
        }
        Meaning::BinaryLogits => g.unary(UnaryOp::Sigmoid, logits)?,
        _ => return Ok(()),
    };
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
