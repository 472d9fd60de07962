//! An experiment → its training step and evaluation step, as two graphs,
//! plus what the runner needs: parameters and their initialisers, optimizer
//! states, the data plan and the schedule.
//!
//! The training graph's inputs are the batch's raw fields, every parameter
//! and buffer (`bn.running_mean`), every optimizer state (`l1.w@m`), and the
//! scalars `step` (1-based), `total_steps`, `lr` and the i32 `rng` key. Its
//! outputs are `loss`, `metric/<name>` for each metric, and the new value of
//! every trained parameter, optimizer state and assigned buffer under the
//! input's own name, so the runner swaps them in place. The evaluation
//! graph reads parameters and buffers and writes neither: evaluation never
//! changes the model.

use super::expr::Arg;
use super::{Init, LResult, Lowerer, Val, at};
use crate::autodiff;
use crate::builtins::{Builtin, SourceKind};
use crate::check::Checked;
use crate::check::spec::{EarlyStop, ExperimentSpec, KeepBest, Literal, OnReload, Period, ReloadPolicy};
use crate::diag::{Diag, Diags};
use crate::ir::{DType, Graph, InputRole, NodeId, Origin, Phase, Type};
use crate::resolve::ItemRef;
use crate::resolve::{ModuleId, Program};
use crate::span::Span;
use crate::syntax::ast;
use std::collections::HashMap;

/// Choices made outside the file, besides `--set` (the checker parsed
/// those into [`Checked::overrides`]).
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Which experiment, when the file has several.
    pub experiment: Option<String>,
    /// Lower the evaluation step for this batch size instead of the file's
    /// (the last, partial batch of an evaluation).
    pub eval_batch: Option<usize>,
}

/// A tensor of the model: a parameter or a buffer. All of them start from
/// their initialiser, live in checkpoints, carry over in a hot reload and
/// are embedded by a build; only `Trained` ones get gradients.
#[derive(Clone, Debug)]
pub struct ParamInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub kind: ParamKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Trained,
    /// Named by the experiment's `freeze`.
    Frozen,
    /// A `buffer`: updated by the model's own code, never by the optimizer.
    Buffer,
}

impl ParamKind {
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Trained => "trained",
            ParamKind::Frozen => "frozen",
            ParamKind::Buffer => "buffer",
        }
    }
}

impl ParamInfo {
    pub(crate) fn new(p: &super::ParamDecl, kind: ParamKind) -> ParamInfo {
        ParamInfo { name: p.name.clone(), shape: p.shape.clone(), init: p.init.clone(), kind }
    }
}

#[derive(Clone, Debug)]
pub struct StateInfo {
    /// `l1.w@m`.
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// Where the data comes from, as written in the file.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    Idx {
        dir: String,
    },
    /// `label`: the column the last declared field reads, if any;
    /// `label_names`: that column holds class names, not ids.
    Csv {
        path: String,
        label: Option<String>,
        test_fraction: f64,
        label_names: bool,
    },
    Text {
        path: String,
        context: usize,
        test_fraction: f64,
        stride: usize,
    },
}

/// One raw per-sample field the loader must provide.
#[derive(Clone, Debug, PartialEq)]
pub struct DataField {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub classes: Option<usize>,
}

/// `init_map = [{ from: "fc1.weight", to: "l1.w", layout: "linear" }, { skip: "fc3" }]`.
#[derive(Clone, Debug, Default)]
pub struct InitMap {
    pub renames: Vec<Rename>,
    /// Tensors of the file to leave unused: a name, or the part of one
    /// before or after a `.` (`fc3` skips `fc3.weight`,
    /// `num_batches_tracked` skips `bn1.num_batches_tracked`).
    pub skips: Vec<String>,
}

impl InitMap {
    pub fn is_empty(&self) -> bool {
        self.renames.is_empty() && self.skips.is_empty()
    }

    pub fn skips(&self, name: &str) -> bool {
        self.skips.iter().any(|s| {
            name == s
                || name.strip_prefix(s.as_str()).is_some_and(|r| r.starts_with('.'))
                || name.strip_suffix(s.as_str()).is_some_and(|r| r.ends_with('.'))
        })
    }
}

/// One tensor of the file, renamed and laid out as the model's `to`.
#[derive(Clone, Debug)]
pub struct Rename {
    pub from: String,
    pub to: String,
    pub layout: Layout,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// No `layout` written: fine for a vector, refused for a matrix or
    /// kernel, whose layouts PyTorch and nnc disagree on (a square weight
    /// loaded as it is would train transposed without a word).
    Unstated,
    Same,
    /// Axis `i` of the result is axis `perm[i]` of the file's tensor.
    Permute(Vec<usize>),
    /// A convolution kernel `[O, I, spatial...]` (PyTorch) to
    /// `[spatial..., I, O]` (nnc's HWIO), whatever its rank.
    Conv,
}

#[derive(Clone, Debug)]
pub struct SplitPlan {
    pub source: SourceSpec,
    /// Where the source's path is written, for a missing file's error.
    pub source_at: Span,
    pub split: String,
    pub batch: usize,
    pub shuffle: bool,
    pub keep_last: bool,
    /// `take: N`: only the split's first N samples.
    pub take: Option<usize>,
    pub fields: Vec<DataField>,
}

#[derive(Clone, Debug)]
pub struct DataPlan {
    pub train: SplitPlan,
    pub eval: Option<SplitPlan>,
}

pub struct Lowered {
    pub name: String,
    pub train: Graph,
    pub eval: Graph,
    pub params: Vec<ParamInfo>,
    pub states: Vec<StateInfo>,
    pub metrics: Vec<String>,
    pub data: DataPlan,
    pub epochs: usize,
    pub seed: u64,
    /// The optimizer's base learning rate, fed each step as `lr`.
    pub lr: f64,
    /// When to evaluate (default: every epoch) and checkpoint (default: every
    /// epoch and at the end).
    pub eval_every: Period,
    pub checkpoint_every: Period,
    /// `log = every N steps`: a `train_step` event each N steps.
    pub log_every: Option<u64>,
    /// `checkpoint = best(metric)`.
    pub keep_best: Option<KeepBest>,
    pub early_stop: Option<EarlyStop>,
    /// Initial weights to load by name (e.g. saved from PyTorch).
    pub init_from: Option<String>,
    /// `init_map`: how that file names and lays out the model's tensors.
    pub init_map: InitMap,
    /// Every top-level constant after `--set`, for the run's config record.
    pub hyperparameters: Vec<(String, String)>,
    /// What `nnc watch` does with the step counter and data position when
    /// it swaps in an edited program.
    pub on_reload: ReloadPolicy,
    /// The model calls of the training step's forward pass, outermost first.
    pub layers: Vec<super::LayerCall>,
}

/// The training step's output holding the learning rate after the
/// schedule (present when there is a schedule).
pub const SCHEDULED_LR: &str = "schedule/lr";

/// What every lowering of an experiment starts from: the checked spec of
/// the experiment `setup` names, the `--set` values, and its training data
/// plan.
pub(super) struct Chosen<'c> {
    pub spec: &'c ExperimentSpec,
    /// The constants the checker evaluated.
    pub consts: HashMap<ItemRef, Val>,
    pub data: SplitPlan,
}

pub(super) fn choose<'c>(program: &Program, checked: &'c Checked, setup: &Setup) -> Result<Chosen<'c>, Diags> {
    let spec = find_experiment(checked, setup).map_err(|d| vec![d])?;
    let consts = checked.constants.iter().map(|(k, v)| (*k, literal(v))).collect();
    let data = split_plan(program, &consts, &spec.data, None).map_err(|d| vec![d])?;
    Ok(Chosen { spec, consts, data })
}

fn literal(v: &Literal) -> Val {
    match v {
        Literal::Int(i) => Val::Int(*i),
        Literal::Float(f) => Val::Float(*f),
        Literal::Bool(b) => Val::Bool(*b),
        Literal::Str(s) => Val::Str(s.clone()),
    }
}

/// Lower the experiment chosen by `setup` in the root module.
pub fn lower_experiment(program: &Program, checked: &Checked, setup: &Setup) -> Result<Lowered, Diags> {
    let Chosen { spec, consts, data } = choose(program, checked, setup)?;
    let eval = match &spec.eval {
        Some(s) => Some(split_plan(program, &consts, s, Some(data.batch)).map_err(|d| vec![d])?),
        None => None,
    };
    let mut train = Lowerer::new(program, consts.clone(), true);
    let step = train.train_step(spec, &data).map_err(|d| vec![d])?;
    let mut ev = Lowerer::new(program, consts.clone(), false);
    let eval_batch = setup.eval_batch.unwrap_or(eval.as_ref().map_or(data.batch, |e| e.batch));
    ev.eval_step(spec, &data.fields, eval_batch).map_err(|d| vec![d])?;
    let mut settings = Lowerer::new(program, consts, false);
    let epochs = settings.int_setting(spec.epochs.as_ref(), 1).map_err(|d| vec![d])?.max(1) as usize;
    let seed = settings.int_setting(spec.seed.as_ref(), 0).map_err(|d| vec![d])? as u64;
    let extras = settings.run_settings(spec).map_err(|d| vec![d])?;
    let hyperparameters = settings.hyperparameters();
    let init_map = init_map(&mut settings, spec, &step.params).map_err(|d| vec![d])?;
    Ok(Lowered {
        name: spec.name.clone(),
        train: train.g,
        eval: ev.g,
        params: step.params,
        states: step.states,
        metrics: step.metrics,
        data: DataPlan { train: data, eval },
        epochs,
        seed,
        lr: step.lr,
        eval_every: extras.eval_every,
        checkpoint_every: extras.checkpoint_every,
        log_every: extras.log_every,
        keep_best: extras.keep_best,
        early_stop: extras.early_stop,
        init_from: extras.init_from,
        init_map,
        hyperparameters,
        on_reload: extras.on_reload,
        layers: train.layers,
    })
}

/// The settings that steer the runner rather than the graphs.
struct RunSettings {
    eval_every: Period,
    checkpoint_every: Period,
    log_every: Option<u64>,
    keep_best: Option<KeepBest>,
    early_stop: Option<EarlyStop>,
    init_from: Option<String>,
    on_reload: ReloadPolicy,
}

fn period(every: Option<&ast::Every>) -> Period {
    let Some(e) = every else { return Period::Epochs(1) };
    let n = e.count.map_or(1, |(n, _)| n.max(1) as u64);
    if e.unit.name.starts_with("step") { Period::Steps(n) } else { Period::Epochs(n) }
}

/// The span of the string `name` in `freeze = [...]`, else of the setting.
fn freeze_span(spec: &ExperimentSpec, name: &str) -> Span {
    let Some(e) = spec.freeze.as_ref().and_then(|s| s.value.as_ref()) else {
        return Span::new(crate::span::FileId(0), 0, 0);
    };
    match &e.kind {
        ast::ExprKind::List(xs) => {
            xs.iter().find(|x| matches!(&x.kind, ast::ExprKind::Str(s) if s == name)).map_or(e.span, |x| x.span)
        }
        _ => e.span,
    }
}

fn find_experiment<'c>(checked: &'c Checked, setup: &Setup) -> Result<&'c ExperimentSpec, Diag> {
    let exps = &checked.experiments;
    match &setup.experiment {
        Some(n) => exps.iter().find(|e| e.name == *n).ok_or_else(|| {
            Diag::error(format!("no experiment `{n}` in this file"))
                .help(format!("experiments: {}", exps.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")))
        }),
        None => exps.first().ok_or_else(|| {
            Diag::error("this file has no experiment")
                .help("add `experiment name { model = ..., data = ..., loss = ..., optimizer = ... }`")
        }),
    }
}

/// What a data split setting asks for: source, fields and batching.
fn split_plan(
    program: &Program,
    consts: &HashMap<ItemRef, Val>,
    s: &ast::Setting,
    default_batch: Option<usize>,
) -> Result<SplitPlan, Diag> {
    let e = s.value.as_ref().ok_or_else(|| Diag::error("`data` needs a value").at(s.key.span, "here"))?;
    let mut l = Lowerer::new(program, consts.clone(), false);
    let (item, split, args) = match l.expr(e)? {
        Val::Split(item, split, args) => (item, split, args),
        _ => return Err(Diag::error("expected a dataset split").at(e.span, "here")),
    };
    let ast::Item::Dataset(d) = l.item(item) else { return Err(Diag::error("expected a dataset").at(e.span, "here")) };
    let get = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let batch = match get("batch") {
        Some(Val::Int(b)) if b >= 1 => b as usize,
        Some(_) => return Err(Diag::error("`batch` must be a positive int").at(e.span, "here")),
        None => default_batch.unwrap_or(32),
    };
    let take = match get("take") {
        Some(Val::Int(n)) if n >= 1 => Some(n as usize),
        Some(_) => return Err(Diag::error("`take` must be a positive int").at(e.span, "here")),
        None => None,
    };
    let source = l.in_frame(item.module, &[], |l| l.expr(&d.source))?;
    let fields = l.in_frame(item.module, &[], |l| l.raw_fields(d))?;
    let (source, source_at) = source_spec(source, d.source.span)?;
    Ok(SplitPlan {
        source,
        source_at,
        split,
        batch,
        shuffle: matches!(get("shuffle"), Some(Val::Bool(true))),
        keep_last: matches!(get("last"), Some(Val::Str(s)) if s == "keep"),
        take,
        fields,
    })
}

/// The source and where its path is written.
fn source_spec(v: Val, span: Span) -> Result<(SourceSpec, Span), Diag> {
    let Val::Source(kind, args, path_at) = v else {
        return Err(Diag::error("expected a data source").at(span, "here"));
    };
    let get = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let string = |k: &str| match get(k) {
        Some(Val::Str(s)) => Ok(s),
        _ => Err(Diag::error(format!("`{}` needs a string `{k}`", Builtin::Source(kind).name())).at(span, "here")),
    };
    let float = |k: &str, d: f64| match get(k) {
        Some(Val::Float(f)) => f,
        Some(Val::Int(i)) => i as f64,
        _ => d,
    };
    // Domains were checked where the source was written (`source_options`).
    let uint = |k: &str, d: usize| match get(k) {
        Some(Val::Int(i)) => usize::try_from(i).unwrap_or(d),
        _ => d,
    };
    let spec = match kind {
        SourceKind::Idx => SourceSpec::Idx { dir: string("dir")? },
        SourceKind::Csv => SourceSpec::Csv {
            path: string("path")?,
            label: get("label").and_then(|v| if let Val::Str(s) = v { Some(s) } else { None }),
            test_fraction: float("test_fraction", 0.0),
            label_names: matches!(get("label_names"), Some(Val::Bool(true))),
        },
        SourceKind::Text => SourceSpec::Text {
            path: string("path")?,
            context: uint("context", 64),
            test_fraction: float("test_fraction", 0.1),
            stride: uint("stride", 1),
        },
    };
    Ok((spec, path_at))
}

/// What the training step lowering hands back besides the graph.
struct StepInfo {
    params: Vec<ParamInfo>,
    states: Vec<StateInfo>,
    metrics: Vec<String>,
    lr: f64,
}

/// Named compile-time arguments, in declaration order.
type Args = Vec<(String, Val)>;

impl Lowerer<'_> {
    fn run_settings(&mut self, spec: &ExperimentSpec) -> LResult<RunSettings> {
        let every = |s: &Option<ast::Setting>| period(s.as_ref().and_then(|s| s.every.as_ref()));
        let early_stop = match self.setting(spec.early_stop.as_ref())? {
            Some((Val::Record(r), _)) => {
                let get = |k: &str| r.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let metric = match get("metric") {
                    Some(Val::Str(s)) => s,
                    _ => "loss".into(),
                };
                let patience = match get("patience") {
                    Some(Val::Int(p)) if p > 0 => p as u64,
                    _ => 3,
                };
                let maximize = match get("mode") {
                    Some(Val::Str(m)) => m == "max",
                    _ => metric != "loss",
                };
                let restore_best = matches!(get("restore_best"), Some(Val::Bool(true)));
                Some(EarlyStop { metric, patience, maximize, restore_best })
            }
            _ => None,
        };
        let init_from = match self.setting(spec.init_from.as_ref())? {
            Some((Val::Str(s), at)) => Some(self.beside_source(&s, at)),
            _ => None,
        };
        let mut on_reload = ReloadPolicy::default();
        if let Some((Val::Record(r), _)) = self.setting(spec.on_reload.as_ref())? {
            for (k, v) in &r {
                let choice =
                    if matches!(v, Val::Str(s) if s == "restart") { OnReload::Restart } else { OnReload::Continue };
                // The checker allows only these two keys.
                match k.as_str() {
                    "step" => on_reload.step = choice,
                    "data" => on_reload.data = choice,
                    other => return Err(Diag::error(format!("internal compiler error: `on_reload` key `{other}`"))),
                }
            }
        }
        let mut keep_best = spec.checkpoint.as_ref().and_then(|s| s.value.as_ref()).and_then(|v| KeepBest::of(v).ok());
        if let Some(es) = early_stop.as_ref().filter(|es| es.restore_best) {
            // The weights to restore are `best.safetensors`: kept by the
            // early-stop rule, unless the checker found `checkpoint = best`
            // ranking by that same rule.
            keep_best.get_or_insert(KeepBest { metric: es.metric.clone(), maximize: es.maximize });
        }
        Ok(RunSettings {
            eval_every: every(&spec.eval),
            checkpoint_every: every(&spec.checkpoint),
            log_every: match every(&spec.log) {
                Period::Steps(n) if spec.log.is_some() => Some(n),
                _ => None,
            },
            keep_best,
            early_stop,
            init_from,
            on_reload,
        })
    }

    /// Every top-level constant of the root module, as its value prints.
    fn hyperparameters(&mut self) -> Vec<(String, String)> {
        let root = self.program.module(ModuleId(0));
        let mut out = Vec::new();
        for item in &root.ast.items {
            let ast::Item::Const(c) = item else { continue };
            let shown = match self.lookup(&c.name.name, c.name.span) {
                Ok(Val::Int(i)) => i.to_string(),
                Ok(Val::Float(f)) => f.to_string(),
                Ok(Val::Bool(b)) => b.to_string(),
                Ok(Val::Str(s)) => s,
                _ => continue,
            };
            out.push((c.name.name.clone(), shown));
        }
        out
    }

    fn raw_fields(&mut self, d: &ast::DatasetDecl) -> LResult<Vec<DataField>> {
        let mut out = Vec::new();
        for f in &d.fields {
            let (dtype, shape) = self.concrete_type(&f.ty)?;
            let classes = match &f.ty.classes {
                Some(c) => Some(self.dim(c)?),
                None => None,
            };
            out.push(DataField { name: f.name.name.clone(), dtype, shape, classes });
        }
        Ok(out)
    }

    fn setting(&mut self, setting: Option<&ast::Setting>) -> LResult<Option<(Val, Span)>> {
        match setting.and_then(|s| s.value.as_ref()) {
            Some(e) => Ok(Some((self.expr(e)?, e.span))),
            None => Ok(None),
        }
    }

    /// A setting the checker requires a value for (`model`, `loss`, ...).
    fn required(&mut self, setting: &ast::Setting) -> LResult<(Val, Span)> {
        self.setting(Some(setting))?
            .ok_or_else(|| Diag::error(format!("`{}` needs a value", setting.key.name)).at(setting.key.span, "here"))
    }

    /// An int setting (`epochs`, `seed`), `default` when absent.
    fn int_setting(&mut self, setting: Option<&ast::Setting>, default: i64) -> LResult<i64> {
        match self.setting(setting)? {
            None => Ok(default),
            Some((Val::Int(i), _)) => Ok(i),
            Some((_, at)) => {
                let key = setting.map_or("setting", |s| s.key.name.as_str());
                Err(Diag::error(format!("`{key}` must be an int")).at(at, "here"))
            }
        }
    }

    /// Bind `B`, `model` and the batch's fields (raw as inputs, derived computed).
    pub(super) fn batch_scope(&mut self, spec: &ExperimentSpec, fields: &[DataField], batch: usize) -> LResult<()> {
        self.bind("B", Val::Int(batch as i64));
        let (model, span) = self.required(&spec.model)?;
        let model = match model {
            Val::ModelClass(item) => self.instantiate(item, Vec::new(), span, None)?,
            Val::Model(m) => Val::Model(m),
            _ => return Err(Diag::error("expected a model").at(span, "here")),
        };
        self.bind("model", model);
        for f in fields {
            let shape = [vec![batch], f.shape.clone()].concat();
            let n = self.g.input(&f.name, InputRole::Data, Type::new(f.dtype, shape)).map_err(at(span))?;
            self.bind(&f.name, Val::Node(n));
        }
        self.derived_fields(spec, batch)
    }

    /// Preprocessing is written per sample and applied to the whole batch,
    /// which is only the same thing for batch-transparent (elementwise) code.
    fn derived_fields(&mut self, spec: &ExperimentSpec, batch: usize) -> LResult<()> {
        let Some(data) = spec.data.value.as_ref() else { return Ok(()) };
        let Val::Split(item, _, _) = self.expr(data)? else { return Ok(()) };
        let ast::Item::Dataset(d) = self.item(item) else { return Ok(()) };
        let env: Vec<(String, Val)> = d
            .fields
            .iter()
            .filter_map(|f| Some((f.name.name.clone(), self.lookup(&f.name.name, f.name.span).ok()?)))
            .collect();
        let derived = self.in_frame(item.module, &env, |l| {
            let mut out = Vec::new();
            for (name, e) in &d.derived {
                let v = l.expr(e)?;
                if let Val::Node(n) = v
                    && l.shape(n).first() != Some(&batch)
                {
                    return Err(Diag::error(format!("preprocessing of `{}` must keep the sample axis", name.name))
                        .at(e.span, "changes the batch shape")
                        .help("dataset expressions run on whole batches: keep them elementwise, and reshape inside the model"));
                }
                l.bind(&name.name, v.clone());
                out.push((name.name.clone(), v));
            }
            Ok(out)
        })?;
        for (n, v) in derived {
            self.bind(&n, v);
        }
        Ok(())
    }

    fn scalar_node(&mut self, v: Val, span: Span) -> LResult<NodeId> {
        let n = self.node(&v, Some(DType::F32), span)?;
        if !self.shape(n).is_empty() {
            return Err(Diag::error("expected a scalar").at(span, "here"));
        }
        Ok(n)
    }

    /// Loss and metrics in the batch scope; returns (loss, [(name, node)]).
    fn objectives(&mut self, spec: &ExperimentSpec) -> LResult<(NodeId, Vec<(String, NodeId)>)> {
        let (loss, span) = self.required(&spec.loss)?;
        let loss = self.scalar_node(loss, span)?;
        let mut metrics = Vec::new();
        if let Some(e) = spec.metrics.as_ref().and_then(|s| s.value.as_ref())
            && let ast::ExprKind::Record(entries) = &e.kind
        {
            for (k, v) in entries {
                let val = self.expr(v)?;
                metrics.push((k.name.clone(), self.scalar_node(val, v.span)?));
            }
        }
        Ok((loss, metrics))
    }

    fn eval_step(&mut self, spec: &ExperimentSpec, fields: &[DataField], batch: usize) -> LResult<()> {
        self.batch_scope(spec, fields, batch)?;
        let (loss, metrics) = self.objectives(spec)?;
        let span = spec.loss.key.span;
        self.g.set_output("loss", loss).map_err(at(span))?;
        for (k, n) in metrics {
            self.g.set_output(format!("metric/{k}"), n).map_err(at(span))?;
        }
        Ok(())
    }

    fn train_step(&mut self, spec: &ExperimentSpec, data: &SplitPlan) -> LResult<StepInfo> {
        let span = spec.loss.key.span;
        let scalar = Type::new(DType::F32, Vec::<usize>::new());
        let step = self.g.input("step", InputRole::Scalar, scalar.clone()).map_err(at(span))?;
        let total = self.g.input("total_steps", InputRole::Scalar, scalar.clone()).map_err(at(span))?;
        let lr_in = self.g.input("lr", InputRole::Scalar, scalar).map_err(at(span))?;
        let key =
            self.g.input("rng", InputRole::RngKey, Type::new(DType::I32, Vec::<usize>::new())).map_err(at(span))?;
        self.rng_key = Some(key);
        self.batch_scope(spec, &data.fields, data.batch)?;
        let (loss, metrics) = self.objectives(spec)?;
        self.g.set_output("loss", loss).map_err(at(span))?;
        for (k, n) in &metrics {
            self.g.set_output(format!("metric/{k}"), *n).map_err(at(span))?;
        }
        // Buffers take the value the model's code gave them last.
        self.buffer_outputs(span)?;
        let frozen = self.frozen(spec)?;
        let decls = std::mem::take(&mut self.params);
        let kind = |p: &super::ParamDecl| p.kind(frozen.contains(&p.name));
        let trainable: Vec<&super::ParamDecl> = decls.iter().filter(|p| kind(p) == ParamKind::Trained).collect();
        let nodes: Vec<NodeId> = trainable
            .iter()
            .map(|p| self.g.find_input(&p.name).ok_or_else(|| Diag::error("parameter vanished")))
            .collect::<LResult<_>>()?;
        let grads = autodiff::grad(&mut self.g, loss, &nodes).map_err(at(span))?;
        let (opt_item, opt_args, opt_span) = self.optimizer(spec)?;
        self.g.set_origin(Origin { span: None, inner: None, phase: Phase::Optimizer });
        let outer = self.at_site(opt_span);
        let lr_eff = self.schedule(spec, step, total, lr_in)?;
        if lr_eff != lr_in {
            // For the log: the rate this step used.
            self.g.set_output(SCHEDULED_LR, lr_eff).map_err(at(span))?;
        }
        let mut states = Vec::new();
        for ((p, node), grad) in trainable.iter().zip(&nodes).zip(&grads) {
            let update = self.update(opt_item, &opt_args, (p, *node, *grad), step, lr_eff, opt_span);
            states.extend(update.map_err(super::expr::in_call(opt_span))?);
        }
        self.g.set_origin(Origin { phase: Phase::Forward, ..outer });
        let lr = opt_args.iter().find(|(k, _)| k == "lr").map_or(1.0, |(_, v)| match v {
            Val::Float(f) => *f,
            Val::Int(i) => *i as f64,
            _ => 1.0,
        });
        if !(lr >= 0.0 && lr.is_finite()) {
            return Err(Diag::error(format!("the learning rate must be a finite number >= 0, found {lr}"))
                .at(opt_span, "this optimizer")
                .help("a negative rate climbs the loss instead of descending it"));
        }
        let params = decls.iter().map(|p| ParamInfo::new(p, kind(p))).collect();
        Ok(StepInfo { params, states, metrics: metrics.into_iter().map(|(k, _)| k).collect(), lr })
    }

    fn frozen(&mut self, spec: &ExperimentSpec) -> LResult<Vec<String>> {
        let Some((Val::List(xs), _)) = self.setting(spec.freeze.as_ref())? else { return Ok(Vec::new()) };
        let names: Vec<String> =
            xs.into_iter().filter_map(|x| if let Val::Str(s) = x { Some(s) } else { None }).collect();
        // A name freezes that parameter and, as a prefix, everything under it.
        let covers = |p: &str, n: &str| p == n || p.starts_with(&format!("{n}."));
        let trained = || self.params.iter().filter(|p| !p.buffer);
        for n in &names {
            if !trained().any(|p| covers(&p.name, n)) {
                let span = freeze_span(spec, n);
                let help = if self.params.iter().any(|p| covers(&p.name, n)) {
                    format!(
                        "`{n}` is a buffer: the optimizer never updates buffers, and the model's own code always does"
                    )
                } else {
                    crate::diag::did_you_mean(n, trained().map(|p| p.name.as_str()))
                        .unwrap_or_else(|| "name a parameter (`l1.w`) or a sub-model (`l1`)".into())
                };
                return Err(Diag::error(format!("`freeze` names no parameter: `{n}`"))
                    .at(span, "no such parameter")
                    .help(help));
            }
        }
        Ok(trained().map(|p| p.name.clone()).filter(|p| names.iter().any(|n| covers(p, n))).collect())
    }

    /// `lr * schedule(step, total, ...)`, or the plain `lr` input.
    fn schedule(&mut self, spec: &ExperimentSpec, step: NodeId, total: NodeId, lr: NodeId) -> LResult<NodeId> {
        let Some(e) = spec.schedule.as_ref().and_then(|s| s.value.as_ref()) else { return Ok(lr) };
        let (callee, args) = match &e.kind {
            ast::ExprKind::Call { callee, args } => (callee.as_ref(), self.args(args)?),
            _ => (e, Vec::new()),
        };
        let Val::Fn(item) = self.expr(callee)? else {
            return Err(Diag::error("expected a schedule function").at(e.span, "here"));
        };
        let ast::Item::Fn(f) = self.item(item) else {
            return Err(Diag::error("expected a function").at(e.span, "here"));
        };
        let mut argv = vec![
            Arg { name: None, val: Val::Node(step), span: e.span },
            Arg { name: None, val: Val::Node(total), span: e.span },
        ];
        argv.extend(args);
        let m = self.call_fn(item, f, &[], argv, e.span)?;
        let m = self.scalar_node(m, e.span)?;
        self.g.broadcast_binary(crate::ir::BinaryOp::Mul, lr, m).map_err(at(e.span))
    }

    fn optimizer(&mut self, spec: &ExperimentSpec) -> LResult<(ItemRef, Args, Span)> {
        let (v, span) = self.required(&spec.optimizer)?;
        match v {
            Val::Optimizer(item, args) => Ok((item, args, span)),
            Val::OptimizerClass(item) => match self.apply(Val::OptimizerClass(item), Vec::new(), span)? {
                Val::Optimizer(item, args) => Ok((item, args, span)),
                _ => Err(Diag::error("expected an optimizer").at(span, "here")),
            },
            _ => Err(Diag::error("expected an optimizer").at(span, "here")),
        }
    }

    /// The optimizer's update rule for one parameter: new states become
    /// outputs named like their inputs, the tail becomes the new parameter.
    fn update(
        &mut self,
        item: ItemRef,
        args: &[(String, Val)],
        (p, node, grad): (&super::ParamDecl, NodeId, NodeId),
        step: NodeId,
        lr: NodeId,
        span: Span,
    ) -> LResult<Vec<StateInfo>> {
        let ast::Item::Optimizer(o) = self.item(item) else {
            return Err(Diag::error("expected an optimizer").at(span, "here"));
        };
        let mut env: Vec<(String, Val)> = args
            .iter()
            .map(|(k, v)| if k == "lr" { (k.clone(), Val::Node(lr)) } else { (k.clone(), v.clone()) })
            .collect();
        let ty = Type::new(p.dtype, p.shape.clone());
        let mut states = Vec::new();
        for s in &o.states {
            let name = format!("{}@{}", p.name, s.name.name);
            let init = match &s.init {
                Some(e) => self.in_frame(item.module, &env, |l| l.init_value(e, &p.shape))?,
                None => Init::Constant(0.0),
            };
            let n = self.g.input(&name, InputRole::State, ty.clone()).map_err(at(s.name.span))?;
            env.push((s.name.name.clone(), Val::Node(n)));
            states.push((s.name.name.clone(), StateInfo { name, shape: p.shape.clone(), init }));
        }
        let names: Vec<&str> = o.update.params.iter().map(|q| q.name.name.as_str()).collect();
        for (n, v) in names.iter().zip([Val::Node(node), Val::Node(grad), Val::Node(step)]) {
            env.push((n.to_string(), v));
        }
        let (new_p, new_states) = self.in_frame(item.module, &env, |l| {
            let out = l.block_inner(&o.update.body)?;
            let new_states: Vec<Val> =
                o.states.iter().map(|s| l.lookup(&s.name.name, s.name.span)).collect::<LResult<_>>()?;
            Ok::<_, Diag>((out, new_states))
        })?;
        let new_p = self.node(&new_p, Some(DType::F32), o.update.span)?;
        let new_p = self.g.broadcast_to(new_p, &p.shape).map_err(at(o.update.span))?;
        self.g.set_output(p.name.clone(), new_p).map_err(at(span))?;
        for ((_, info), v) in states.iter().zip(new_states) {
            let n = self.node(&v, Some(DType::F32), o.update.span)?;
            let n = self.g.broadcast_to(n, &p.shape).map_err(at(o.update.span))?;
            self.g.set_output(info.name.clone(), n).map_err(at(span))?;
        }
        Ok(states.into_iter().map(|(_, s)| s).collect())
    }
}

/// The `init_map` setting (its form was checked): each target must be a
/// parameter or buffer of the model, each permutation a permutation.
fn init_map(l: &mut Lowerer, spec: &ExperimentSpec, params: &[ParamInfo]) -> LResult<InitMap> {
    let mut map = InitMap::default();
    let Some(setting) = spec.init_map.as_ref() else { return Ok(map) };
    let entries = match setting.value.as_ref().map(|e| &e.kind) {
        Some(ast::ExprKind::List(xs)) => xs.as_slice(),
        _ => return Ok(map),
    };
    for entry in entries {
        let Val::Record(fields) = l.expr(entry)? else { continue };
        let text = |k: &str| {
            fields.iter().find(|(n, _)| n == k).and_then(|(_, v)| match v {
                Val::Str(s) => Some(s.clone()),
                _ => None,
            })
        };
        if let Some(skip) = text("skip") {
            map.skips.push(skip);
            continue;
        }
        let (Some(from), Some(to)) = (text("from"), text("to")) else { continue };
        if !params.iter().any(|p| p.name == to) {
            let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            let help = crate::diag::did_you_mean(&to, names.iter().copied()).unwrap_or_else(|| {
                let more = if names.len() > 8 { ", ..." } else { "" };
                format!("the model's parameters and buffers: {}{more}", names[..names.len().min(8)].join(", "))
            });
            return Err(Diag::error(format!("`init_map` maps `{from}` to `{to}`, which the model does not have"))
                .at(entry.span, "no such parameter")
                .help(help));
        }
        let layout = match (text("layout").as_deref(), fields.iter().find(|(n, _)| n == "transpose")) {
            (Some("linear"), _) => Layout::Permute(vec![1, 0]),
            (Some("same"), _) => Layout::Same,
            (Some(_), _) => Layout::Conv,
            (None, Some((_, Val::List(axes)))) => Layout::Permute(permutation(axes).ok_or_else(|| {
                Diag::error("`transpose` is not a permutation of the axes")
                    .at(entry.span, "in this entry")
                    .help("list each axis 0..n once: `[1, 0]` swaps a matrix's axes")
            })?),
            (None, _) => Layout::Unstated,
        };
        map.renames.push(Rename { from, to, layout });
    }
    Ok(map)
}

fn permutation(axes: &[Val]) -> Option<Vec<usize>> {
    let perm: Vec<usize> = axes
        .iter()
        .map(|v| if let Val::Int(i) = v { usize::try_from(*i).ok() } else { None })
        .collect::<Option<_>>()?;
    let mut seen = vec![false; perm.len()];
    for &a in &perm {
        if a >= perm.len() || std::mem::replace(&mut seen[a], true) {
            return None;
        }
    }
    Some(perm)
}
