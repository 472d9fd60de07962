//! The type and shape checker.
//!
//! Every definition is checked once, generically: a signature's dim
//! variables (`B`, `N`, `...S`) become rigid symbols and the body must be
//! well-typed for all of their values. A call is checked by unifying its
//! arguments with the callee's signature; a callee without a declared return
//! type is instantiated with the argument types. Experiments are then
//! checked as a user runs them: their model, data, loss and metrics.
//!
//! Errors are collected, not thrown: a failed sub-expression yields
//! [`Val::Error`], which silences the errors that would follow from it.

mod builtins;
mod call;
pub mod dim;
mod experiment;
mod expr;
mod index;
mod items;
mod shape;
pub mod spec;
pub mod val;

use crate::diag::{Diag, Diags, did_you_mean};
use crate::resolve::{Def, ItemRef, ModuleId, Program};
use crate::span::Span;
use crate::syntax::ast;
use dim::{Dim, Rest, Shape, Sym};
use std::collections::HashMap;
use val::Val;

use crate::builtins::Builtin;

/// A `--set name=value` override of a top-level constant of the root module.
#[derive(Clone, Debug)]
pub struct Override {
    pub name: String,
    pub value: String,
}

pub fn parse_overrides(raw: &[String]) -> Result<Vec<Override>, Diag> {
    raw.iter()
        .map(|s| match s.split_once('=') {
            Some((n, v)) if !n.trim().is_empty() => {
                Ok(Override { name: n.trim().to_string(), value: v.trim().to_string() })
            }
            _ => {
                Err(Diag::error(format!("bad `--set {s}`: expected NAME=VALUE")).help("for example `--set hidden=256`"))
            }
        })
        .collect()
}

/// The checker's output: its diagnostics and, for lowering, the typed
/// overrides, the spec of every experiment of the root file and its sweeps.
#[derive(Debug, Default)]
pub struct Checked {
    pub diags: Diags,
    /// `--set` values, each parsed once as its constant's type.
    pub overrides: Vec<(String, spec::Literal)>,
    /// The value of every constant, in any module, that has one value for
    /// the whole run (with `--set` applied): lowering takes these as they
    /// are and evaluates only what varies per run (an unpinned sweep and
    /// what depends on it).
    pub constants: Vec<(ItemRef, spec::Literal)>,
    pub experiments: Vec<spec::ExperimentSpec>,
    pub sweeps: Vec<spec::SweepAxis>,
    /// The type of every `let` binding and call, in source order.
    pub types: Vec<spec::TypeNote>,
}

/// Check a loaded program: every item of every module.
pub fn check(program: &Program, overrides: &[Override]) -> Checked {
    let mut cx = Checker::new(program, overrides);
    cx.check_overrides();
    for m in 0..program.modules.len() {
        let module = ModuleId(m as u32);
        for index in 0..program.module(module).ast.items.len() {
            cx.check_item(ItemRef { module, index });
        }
    }
    cx.check_recursion();
    cx.types.sort_by_key(|n| (n.span.file, n.span.start, n.span.end));
    let mut constants: Vec<(ItemRef, spec::Literal)> =
        cx.consts.iter().filter_map(|(item, v)| Some((*item, literal(v)?))).collect();
    constants.sort_by_key(|(i, _)| (i.module.0, i.index));
    Checked {
        diags: cx.diags,
        overrides: cx.typed_overrides,
        constants,
        experiments: cx.experiments,
        sweeps: sweeps(program),
        types: cx.types,
    }
}

/// A constant's value, if the checker knows it exactly.
fn literal(v: &Val) -> Option<spec::Literal> {
    match v {
        Val::Str(s) => Some(spec::Literal::Str(s.clone())),
        v => expr::known(v).map(|s| match s {
            crate::arith::Scalar::Int(i) => spec::Literal::Int(i),
            crate::arith::Scalar::Float(f) => spec::Literal::Float(f),
            crate::arith::Scalar::Bool(b) => spec::Literal::Bool(b),
        }),
    }
}

/// `let name = sweep [...]` in the root file, in source order, each value
/// as written (the checker has checked them with the rest of the file).
fn sweeps(program: &Program) -> Vec<spec::SweepAxis> {
    let root = &program.module(ModuleId(0)).ast.items;
    let axis = |c: &ast::Const| match &c.value {
        ast::ConstValue::Sweep(values, _) => Some(spec::SweepAxis {
            name: c.name.name.clone(),
            values: values.iter().map(|e| program.sources.text(e.span).to_string()).collect(),
        }),
        ast::ConstValue::Expr(_) => None,
    };
    root.iter().filter_map(|i| if let ast::Item::Const(c) = i { axis(c) } else { None }).collect()
}

/// A bound name: its value and where it was bound (for secondary labels).
#[derive(Clone, Debug)]
struct Local {
    val: Val,
    span: Span,
}

/// What a dim variable of the signature being checked stands for.
#[derive(Clone, Debug)]
enum DimBind {
    Dim(Dim, Span),
    Rest(Shape),
}

/// One function activation: lexical scopes, the module whose names are
/// visible, and the dim variables bound by the signature.
struct Frame {
    module: ModuleId,
    scopes: Vec<HashMap<String, Local>>,
    dims: HashMap<String, DimBind>,
    /// The names assignments may give new values here: an optimizer's
    /// states in its `update`, a model's buffers in its functions.
    /// Each with the span it is declared at, so an assignment can tell the
    /// state from a `let` that shadows it.
    states: Option<Vec<(String, Span)>>,
}

pub(crate) struct Checker<'p> {
    program: &'p Program,
    diags: Diags,
    frames: Vec<Frame>,
    sym_names: Vec<String>,
    rest_names: Vec<String>,
    /// Opaque symbols for inexact quotients, so `d / h` is one symbol.
    quotients: HashMap<(Dim, Dim), Sym>,
    consts: HashMap<ItemRef, Val>,
    /// Items being evaluated or instantiated: re-entering one is recursion.
    active: Vec<ItemRef>,
    overrides: HashMap<String, Override>,
    /// Signature checks already done, so each definition reports once.
    checked: std::collections::HashSet<ItemRef>,
    /// Bodies being instantiated (no declared return type).
    instantiating: Vec<ItemRef>,
    /// `(user, used, where)`: definitions using each other; a cycle is recursion.
    uses: Vec<(ItemRef, ItemRef, Span)>,
    /// Model calls and the layer that makes each one's output, so a
    /// clash with the output's width can point at that layer.
    heads: HashMap<Span, Span>,
    /// The field a model call goes through (`l2` in `x |> l2`), from the
    /// call to the forward's argument check.
    layer: Option<(String, Span)>,
    /// What lowering is handed (see [`Checked`]).
    typed_overrides: Vec<(String, spec::Literal)>,
    experiments: Vec<spec::ExperimentSpec>,
    types: Vec<spec::TypeNote>,
    /// `(span, type)` pairs already in `types`.
    noted: std::collections::HashSet<(Span, String)>,
}

impl<'p> Checker<'p> {
    fn new(program: &'p Program, overrides: &[Override]) -> Checker<'p> {
        Checker {
            program,
            diags: Vec::new(),
            frames: Vec::new(),
            sym_names: Vec::new(),
            rest_names: Vec::new(),
            quotients: HashMap::new(),
            consts: HashMap::new(),
            active: Vec::new(),
            overrides: overrides.iter().map(|o| (o.name.clone(), o.clone())).collect(),
            checked: Default::default(),
            instantiating: Vec::new(),
            uses: Vec::new(),
            heads: HashMap::new(),
            layer: None,
            typed_overrides: Vec::new(),
            experiments: Vec::new(),
            types: Vec::new(),
            noted: Default::default(),
        }
    }

    fn error(&mut self, d: Diag) -> Val {
        self.diags.push(d);
        Val::Error
    }

    // ---- symbols ------------------------------------------------------------

    fn fresh_sym(&mut self, name: &str) -> Sym {
        self.sym_names.push(name.to_string());
        Sym(self.sym_names.len() as u32 - 1)
    }

    fn fresh_rest(&mut self, name: &str) -> Rest {
        self.rest_names.push(name.to_string());
        Rest(self.rest_names.len() as u32 - 1)
    }

    fn show_dim(&self, d: &Dim) -> String {
        d.display(&|s| self.sym_names.get(s.0 as usize).cloned().unwrap_or_else(|| "?".into()))
    }

    fn show_shape(&self, s: &Shape) -> String {
        format!("[{}]", self.shape_parts(s).join(", "))
    }

    /// Each dim as shown, `...S` first for a rank-polymorphic shape.
    fn shape_parts(&self, s: &Shape) -> Vec<String> {
        let rest = s.rest.iter().map(|r| format!("...{}", self.rest_name(*r)));
        rest.chain(s.dims.iter().map(|d| self.show_dim(d))).collect()
    }

    fn rest_name(&self, r: Rest) -> &str {
        self.rest_names.get(r.0 as usize).map(String::as_str).unwrap_or("")
    }

    fn show(&self, v: &Val) -> String {
        match v {
            Val::Tensor(t) if t.shape.is_scalar() => format!("{} (a scalar)", t.dtype.name()),
            Val::Tensor(t) => format!("{}{}", t.dtype.name(), self.show_shape(&t.shape)),
            Val::Int(Some(d)) => format!("int ({})", self.show_dim(d)),
            Val::Int(None) => "int".into(),
            Val::Float(_) => "float".into(),
            Val::Bool(_) => "bool".into(),
            Val::Model(m) => format!("model `{}`", m.name),
            Val::ModelClass(i) => format!("model definition `{}`", self.item_name(*i)),
            Val::Fn(i) => format!("function `{}`", self.item_name(*i)),
            Val::Builtin(b) => format!("builtin `{}`", b.name()),
            other => other.kind().to_string(),
        }
    }

    /// Note what `span` was found to be (see [`spec::TypeNote`]); poison
    /// and values that are not data (models, functions) are left out.
    fn note_type(&mut self, span: Span, what: spec::Noted, v: &Val) {
        let noted = matches!(v, Val::Tensor(_) | Val::Int(_) | Val::Float(_) | Val::Bool(_) | Val::Dims(_));
        if !noted {
            return;
        }
        let ty = match v {
            Val::Tensor(t) => format!("{}{}", t.dtype.name(), self.show_shape(&t.shape)),
            v => self.show(v),
        };
        if !self.noted.insert((span, ty.clone())) {
            return;
        }
        let tensor = match v {
            Val::Tensor(t) => Some((t.dtype, self.shape_parts(&t.shape))),
            _ => None,
        };
        self.types.push(spec::TypeNote { span, what, ty, tensor });
    }

    fn item_name(&self, i: ItemRef) -> String {
        self.program.item(i.module, i.index).name().map(|n| n.name.clone()).unwrap_or_default()
    }

    fn item(&self, i: ItemRef) -> &'p ast::Item {
        self.program.item(i.module, i.index)
    }

    // ---- frames and scopes --------------------------------------------------

    fn push_frame(&mut self, module: ModuleId) {
        self.frames.push(Frame { module, scopes: vec![HashMap::new()], dims: HashMap::new(), states: None });
    }

    fn pop_frame(&mut self) {
        self.frames.pop();
    }

    fn frame(&mut self) -> &mut Frame {
        // The checker always runs inside a frame: `with_frame` pushes one per item.
        if self.frames.is_empty() {
            self.push_frame(ModuleId(0));
        }
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn module(&self) -> ModuleId {
        self.frames.last().map_or(ModuleId(0), |f| f.module)
    }

    fn bind(&mut self, name: &str, val: Val, span: Span) {
        let frame = self.frame();
        if let Some(scope) = frame.scopes.last_mut() {
            scope.insert(name.to_string(), Local { val, span });
        }
    }

    fn push_scope(&mut self) {
        self.frame().scopes.push(HashMap::new());
    }

    fn pop_scope(&mut self) {
        self.frame().scopes.pop();
    }

    /// Look a name up: locals, dim variables, the module's scope, builtins.
    fn lookup(&mut self, name: &str) -> Option<(Val, Option<Span>)> {
        if let Some(f) = self.frames.last() {
            for scope in f.scopes.iter().rev() {
                if let Some(l) = scope.get(name) {
                    return Some((l.val.clone(), Some(l.span)));
                }
            }
            match f.dims.get(name) {
                Some(DimBind::Dim(d, s)) => return Some((Val::Int(Some(d.clone())), Some(*s))),
                Some(DimBind::Rest(..)) | None => {}
            }
        }
        let module = self.module();
        if let Some((def, span)) = self.program.module(module).scope.get(name).copied() {
            return Some((self.def_value(def), Some(span)));
        }
        Builtin::from_name(name).map(|b| (builtins::value(b), None))
    }

    fn def_value(&mut self, def: Def) -> Val {
        match def {
            Def::Module(m) => Val::Module(m),
            Def::Item(module, index) => {
                let item = ItemRef { module, index };
                match self.item(item) {
                    ast::Item::Const(_) => self.const_value(item),
                    ast::Item::Fn(_) => Val::Fn(item),
                    ast::Item::Model(_) => Val::ModelClass(item),
                    ast::Item::Optimizer(_) => Val::OptimizerClass(item),
                    ast::Item::Dataset(_) => Val::Dataset(item),
                    ast::Item::Experiment(_) | ast::Item::Use(_) => Val::Error,
                }
            }
        }
    }

    /// Every name visible here, for "did you mean".
    fn visible_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if let Some(f) = self.frames.last() {
            names.extend(f.scopes.iter().flat_map(|s| s.keys().cloned()));
            names.extend(f.dims.keys().cloned());
        }
        names.extend(self.program.module(self.module()).scope.keys().cloned());
        names.extend(Builtin::all().map(|b| b.name().to_string()));
        names
    }

    fn unknown_name(&mut self, name: &str, span: Span) -> Val {
        let names = self.visible_names();
        let mut d = Diag::error(format!("unknown name `{name}`")).at(span, "not found in this scope");
        if let Some(h) = did_you_mean(name, names.iter().map(String::as_str)) {
            d = d.help(h);
        } else if let Some((m, _)) = crate::resolve::STD_MODULES
            .iter()
            .find(|(_, text)| text.contains(&format!("fn {name}(")) || text.contains(&format!("model {name}")))
        {
            d = d.help(format!("`{name}` is in the standard library: add `use std.{m}.{name}`"));
        }
        self.error(d)
    }

    // ---- constants ----------------------------------------------------------

    fn const_value(&mut self, item: ItemRef) -> Val {
        if let Some(v) = self.consts.get(&item) {
            return v.clone();
        }
        let ast::Item::Const(c) = self.item(item) else { return Val::Error };
        if self.active.contains(&item) {
            let d = Diag::error(format!("`{}` is defined in terms of itself", c.name.name))
                .at(c.name.span, "recursive definition")
                .help("constants are evaluated before anything runs: break the cycle");
            self.consts.insert(item, Val::Error);
            return self.error(d);
        }
        self.active.push(item);
        self.push_frame(item.module);
        let v = self.eval_const(item, c);
        self.pop_frame();
        self.active.pop();
        self.consts.insert(item, v.clone());
        v
    }

    fn check_overrides(&mut self) {
        let names: Vec<String> = self.overrides.keys().cloned().collect();
        let root = ModuleId(0);
        for name in names {
            let is_const = matches!(
                self.program.module(root).scope.get(&name),
                Some((Def::Item(m, i), _)) if *m == root && matches!(self.program.item(*m, *i), ast::Item::Const(_))
            );
            if !is_const {
                let consts = self.program.module(root).ast.items.iter().filter_map(|i| match i {
                    ast::Item::Const(c) => Some(c.name.name.as_str()),
                    _ => None,
                });
                let hint = did_you_mean(&name, consts)
                    .unwrap_or_else(|| "`--set` overrides a top-level `let` of the file being run".into());
                self.diags
                    .push(Diag::error(format!("`--set {name}=...`: no constant `{name}` in this file")).help(hint));
            }
        }
    }
}

impl Checker<'_> {
    /// Functions and models are inlined when lowered, so a definition that
    /// reaches itself through calls or fields could never be compiled.
    fn check_recursion(&mut self) {
        let mut reported: Vec<ItemRef> = Vec::new();
        let starts: Vec<ItemRef> = self.uses.iter().map(|(u, _, _)| *u).collect();
        for start in starts {
            if reported.contains(&start) {
                continue;
            }
            if let Some(path) = self.cycle_from(start) {
                reported.extend(path.iter().map(|(i, _)| *i));
                let names: Vec<String> = path.iter().map(|(i, _)| format!("`{}`", self.item_name(*i))).collect();
                let (_, span) = path[path.len() - 1];
                let d =
                    Diag::error(format!("recursive definition: {} → `{}`", names.join(" → "), self.item_name(start)))
                        .at(span, "uses itself through this")
                        .help("functions and models are inlined into the training step, so they cannot recurse");
                self.diags.push(d);
            }
        }
    }

    /// A path `start → ... → start`, each step with the span of the use.
    fn cycle_from(&self, start: ItemRef) -> Option<Vec<(ItemRef, Span)>> {
        let mut stack = vec![(start, vec![])];
        let mut seen = std::collections::HashSet::new();
        while let Some((at, path)) = stack.pop() {
            for (u, v, span) in self.uses.iter().filter(|(u, _, _)| *u == at) {
                let mut p: Vec<(ItemRef, Span)> = path.clone();
                p.push((*u, *span));
                if *v == start {
                    return Some(p);
                }
                if seen.insert(*v) {
                    stack.push((*v, p));
                }
            }
        }
        None
    }
}

/// An error at `span` when a value had to be of some kind.
fn expected(what: &str, found: &str, span: Span) -> Diag {
    Diag::error(format!("expected {what}, found {found}")).at(span, format!("this is {found}"))
}
