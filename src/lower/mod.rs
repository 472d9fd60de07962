//! Lowering: the checked program → graph IR, with every dim concrete.
//!
//! An evaluator over the AST that, instead of computing tensors, appends IR
//! nodes: functions and models are inlined, compile-time values (sizes,
//! axes, hyperparameters, initialisers) are computed on the spot. The
//! checker has already proved the program well-typed for all sizes; what
//! can still fail here is what depends on the numbers (a quotient that is
//! not whole, a window that does not fit), reported with its span.

mod builtins;
mod experiment;
mod expr;
mod predict;

use crate::builtins::{Builtin, SourceKind};
use crate::diag::Diag;
use crate::ir::{self, Graph, NodeId};
use crate::resolve::{Def, ItemRef, ModuleId, Program};
use crate::span::Span;
use crate::syntax::ast;
use std::collections::HashMap;
use std::rc::Rc;

pub use experiment::{
    DataField, DataPlan, InitMap, Layout, Lowered, ParamInfo, ParamKind, Rename, SCHEDULED_LR, Setup, SourceSpec,
    SplitPlan, StateInfo, lower_experiment,
};
pub use predict::{Meaning, Predict, lower_predict};

/// An initialiser: the distribution a parameter or state starts from.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Uniform { lo: f64, hi: f64 },
    Normal { mean: f64, std: f64 },
    Constant(f64),
}

/// A model instance: its parameters' values and its fields (parameter
/// fields are graph inputs named by path, `blocks.2.attn.qkv.w`).
#[derive(Debug)]
pub(crate) struct Model {
    pub item: ItemRef,
    pub name: String,
    /// The field path of this instance (`blocks.0.attn`); empty for the
    /// experiment's own model.
    pub path: String,
    pub env: Vec<(String, Val)>,
}

/// A model call as lowered, for `nnc summary`.
#[derive(Clone, Debug)]
pub struct LayerCall {
    /// The instance's field path (`blocks.0.attn`); empty for the experiment's model.
    pub path: String,
    /// The model it instantiates (`Block`).
    pub model: String,
    /// How many model calls it is nested in.
    pub depth: usize,
    /// Its output's type, when that is one tensor.
    pub output: Option<crate::ir::Type>,
}

/// A value during lowering: a graph node, or something known at compile time.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Node(NodeId),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Dims(Vec<usize>),
    List(Vec<Val>),
    Record(Vec<(String, Val)>),
    Init(Init),
    Fn(ItemRef),
    Builtin(Builtin),
    ModelClass(ItemRef),
    Model(Rc<Model>),
    Stack(Vec<Rc<Model>>),
    /// A model's buffer, by index into [`Lowerer::buffers`]: reading the
    /// name gives its current value, assigning it gives a new one.
    Buffer(usize),
    OptimizerClass(ItemRef),
    Optimizer(ItemRef, Vec<(String, Val)>),
    Dataset(ItemRef),
    Split(ItemRef, String, Vec<(String, Val)>),
    /// A data source, its options, and the span of its path (resolved
    /// against the directory of the file that wrote it).
    Source(SourceKind, Vec<(String, Val)>, Span),
    Module(ModuleId),
}

pub(crate) type LResult<T> = Result<T, Diag>;

/// The most elements one tensor may have: 2^31, so every flat index fits an
/// `i32` and one tensor stays within what a device can hold.
pub const MAX_ELEMENTS: u64 = 1 << 31;

/// The most models a stack `[Block(...); n]` may hold: lowering unrolls it.
pub const MAX_STACK: i64 = 4096;

/// The element count of `shape`, `None` if it overflows `u64`.
pub(crate) fn numel(shape: &[usize]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
}

/// An error if a tensor of `shape` would exceed [`MAX_ELEMENTS`].
pub(crate) fn check_size(shape: &[usize], span: Span) -> LResult<()> {
    let count = match numel(shape) {
        Some(n) if n <= MAX_ELEMENTS => return Ok(()),
        Some(n) => n.to_string(),
        None => "more than 2^64".to_string(),
    };
    Err(Diag::error(format!("tensor of {count} elements is too large: the limit is 2^31 ({MAX_ELEMENTS})"))
        .at(span, format!("this has shape {shape:?}"))
        .help("check the sizes and `--set` values this shape is computed from"))
}

/// What a parameter or buffer field becomes when a model is instantiated.
pub(crate) struct ParamDecl {
    pub name: String,
    pub dtype: ir::DType,
    pub shape: Vec<usize>,
    pub init: Init,
    pub buffer: bool,
}

impl ParamDecl {
    /// Trained or a buffer; `freeze` makes a trained one frozen.
    pub fn kind(&self, frozen: bool) -> experiment::ParamKind {
        match () {
            _ if self.buffer => experiment::ParamKind::Buffer,
            _ if frozen => experiment::ParamKind::Frozen,
            _ => experiment::ParamKind::Trained,
        }
    }
}

/// A buffer during lowering: its graph input and its value so far in this
/// step (the input, until the model's code assigns it).
pub(crate) struct BufferVal {
    pub name: String,
    pub input: NodeId,
    pub value: NodeId,
}

pub(crate) struct Lowerer<'p> {
    program: &'p Program,
    pub g: Graph,
    /// Lexical scopes of the function being inlined, innermost last.
    scopes: Vec<HashMap<String, Val>>,
    module: ModuleId,
    /// Constants evaluated so far, starting from the checker's.
    consts: HashMap<ItemRef, Val>,
    /// Whether `training` is true: dropout and friends read it.
    pub training: bool,
    /// The scalar RNG key of the step, fed by the runner.
    pub rng_key: Option<NodeId>,
    /// Distinct salt per random call site, so two dropouts differ.
    salt: u64,
    /// Parameters and buffers created by model instantiation, in order.
    pub params: Vec<ParamDecl>,
    /// Every buffer's current value.
    pub buffers: Vec<BufferVal>,
    /// Inlining depth, to stop runaway recursion the checker missed.
    depth: usize,
    /// Model calls written in the experiment itself (`model(x)` in `loss`
    /// and in `metrics`), by model and argument nodes: one evaluation,
    /// with one set of random draws, however often it is written.
    experiment_calls: Vec<(Rc<Model>, Vec<NodeId>, Val)>,
    /// Every model call, in the order the calls begin.
    pub layers: Vec<LayerCall>,
    layer_depth: usize,
}

impl<'p> Lowerer<'p> {
    /// A lowerer starting from the constants the checker evaluated.
    pub fn new(program: &'p Program, consts: HashMap<ItemRef, Val>, training: bool) -> Lowerer<'p> {
        Lowerer {
            program,
            g: Graph::new(),
            scopes: vec![HashMap::new()],
            module: ModuleId(0),
            consts,
            training,
            rng_key: None,
            salt: 0,
            params: Vec::new(),
            buffers: Vec::new(),
            depth: 0,
            experiment_calls: Vec::new(),
            layers: Vec::new(),
            layer_depth: 0,
        }
    }

    fn item(&self, i: ItemRef) -> &'p ast::Item {
        self.program.item(i.module, i.index)
    }

    fn next_salt(&mut self) -> u64 {
        self.salt += 1;
        self.salt
    }

    /// Run `f` in a fresh function activation of `module` with `env` bound.
    fn in_frame<T>(&mut self, module: ModuleId, env: &[(String, Val)], f: impl FnOnce(&mut Self) -> T) -> T {
        let saved_scopes = std::mem::replace(&mut self.scopes, vec![env.iter().cloned().collect()]);
        let saved_module = std::mem::replace(&mut self.module, module);
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        self.scopes = saved_scopes;
        self.module = saved_module;
        out
    }

    fn bind(&mut self, name: &str, v: Val) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name.to_string(), v);
        }
    }

    fn lookup(&mut self, name: &str, span: Span) -> LResult<Val> {
        for s in self.scopes.iter().rev() {
            if let Some(v) = s.get(name) {
                return Ok(self.current(v.clone()));
            }
        }
        if let Some((def, _)) = self.program.module(self.module).scope.get(name).copied() {
            return self.def_value(def, span);
        }
        let b = Builtin::from_name(name)
            .ok_or_else(|| Diag::error(format!("unknown name `{name}`")).at(span, "not found"))?;
        Ok(if b == Builtin::Training { Val::Bool(self.training) } else { Val::Builtin(b) })
    }

    /// Each buffer the step assigned, as an output named like it: its next value.
    fn buffer_outputs(&mut self, span: Span) -> LResult<()> {
        for b in self.buffers.iter().filter(|b| b.value != b.input) {
            self.g.set_output(b.name.clone(), b.value).map_err(at(span))?;
        }
        Ok(())
    }

    /// A buffer's value now; any other value as it is.
    fn current(&self, v: Val) -> Val {
        match v {
            Val::Buffer(i) => Val::Node(self.buffers[i].value),
            v => v,
        }
    }

    fn def_value(&mut self, def: Def, span: Span) -> LResult<Val> {
        let (module, index) = match def {
            Def::Module(m) => return Ok(Val::Module(m)),
            Def::Item(m, i) => (m, i),
        };
        let item = ItemRef { module, index };
        Ok(match self.item(item) {
            ast::Item::Const(c) => self.const_value(item, c, span)?,
            ast::Item::Fn(_) => Val::Fn(item),
            ast::Item::Model(_) => Val::ModelClass(item),
            ast::Item::Optimizer(_) => Val::OptimizerClass(item),
            ast::Item::Dataset(_) => Val::Dataset(item),
            ast::Item::Experiment(_) | ast::Item::Use(_) => {
                return Err(Diag::error("an experiment is not a value").at(span, "here"));
            }
        })
    }

    fn const_value(&mut self, item: ItemRef, c: &ast::Const, span: Span) -> LResult<Val> {
        if let Some(v) = self.consts.get(&item) {
            return Ok(v.clone());
        }
        if self.depth > 64 {
            return Err(Diag::error("constant definitions nest too deeply").at(span, "here"));
        }
        // The checker knows every constant with one value per run, `--set`
        // ones included; what is left varies per run: an unpinned sweep,
        // which runs at its first value, and what depends on one.
        let v = match &c.value {
            ast::ConstValue::Expr(e) => self.in_frame(item.module, &[], |l| l.expr(e))?,
            ast::ConstValue::Sweep(values, s) => match values.first() {
                Some(e) => self.in_frame(item.module, &[], |l| l.expr(e))?,
                None => return Err(Diag::error("empty sweep").at(*s, "here")),
            },
        };
        let v = match (&c.ty, v) {
            (Some(ast::Type { kind: ast::TypeKind::Float, .. }), Val::Int(i)) => Val::Float(i as f64),
            (_, v) => v,
        };
        self.consts.insert(item, v.clone());
        Ok(v)
    }
}

/// An IR error at a span: the checker should have caught it, but the
/// numbers only exist here.
pub(crate) fn at(span: Span) -> impl Fn(ir::IrError) -> Diag {
    move |e| Diag::error(format!("{e}")).at(span, "while compiling this")
}

/// A snippet lowered on its own: `trace(program, "LayerNorm(8)(x)", ...)`.
pub struct Traced {
    /// Inputs: the given tensors (role Data), model parameters (role
    /// Param) and buffers (role State), and the i32 `rng` key; outputs:
    /// `out`, and the new value of each buffer the snippet assigned, named
    /// like the buffer (as in a training step).
    pub graph: Graph,
    pub params: Vec<experiment::ParamInfo>,
}

/// Lower one expression in the scope of the program's root module, with
/// `inputs` bound to graph inputs of the given types; `training` is true.
/// For tests that check std functions and layers one at a time.
pub fn trace(program: &mut Program, expr: &str, inputs: &[(&str, ir::DType, Vec<usize>)]) -> Result<Traced, Diag> {
    trace_in(program, expr, inputs, true)
}

/// [`trace`], with `training` as given.
pub fn trace_in(
    program: &mut Program,
    expr: &str,
    inputs: &[(&str, ir::DType, Vec<usize>)],
    training: bool,
) -> Result<Traced, Diag> {
    let file = program.sources.add("<snippet>".into(), None, expr);
    let e = crate::syntax::parse_expr(file, expr)?;
    let span = e.span;
    let mut l = Lowerer::new(program, HashMap::new(), training);
    let key =
        l.g.input("rng", ir::InputRole::RngKey, ir::Type::new(ir::DType::I32, Vec::<usize>::new()))
            .map_err(at(span))?;
    l.rng_key = Some(key);
    for (name, dtype, shape) in inputs {
        let n = l.g.input(name, ir::InputRole::Data, ir::Type::new(*dtype, shape.clone())).map_err(at(span))?;
        l.bind(name, Val::Node(n));
    }
    let out = l.expr(&e)?;
    let out = l.node(&out, Some(ir::DType::F32), span)?;
    l.g.set_output("out", out).map_err(at(span))?;
    l.buffer_outputs(span)?;
    let params = l.params.iter().map(|p| experiment::ParamInfo::new(p, p.kind(false))).collect();
    Ok(Traced { graph: l.g, params })
}
