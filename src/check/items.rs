//! Definitions: constants, functions, models, optimizers, datasets, and the
//! experiments that tie them together.

use super::call::{ArgVal, Env, ParamSpec};
use super::dim::{Dim, Shape};
use super::expr::same_type;
use super::shape::Unbound;
use super::spec::Literal;
use super::val::{TensorTy, Val};
use super::{Checker, expected};
use crate::diag::{Diag, did_you_mean};
use crate::resolve::ItemRef;
use crate::span::Span;
use crate::syntax::ast::{self, DType, FieldKind, TypeKind};

impl Checker<'_> {
    pub(super) fn check_item(&mut self, item: ItemRef) {
        if !self.checked.insert(item) {
            return;
        }
        self.active.push(item);
        self.push_frame(item.module);
        match self.item(item) {
            ast::Item::Use(_) => {}
            ast::Item::Const(_) => {
                self.pop_frame();
                self.active.pop();
                self.const_value(item);
                return;
            }
            ast::Item::Fn(f) => self.check_fn_def(f, &Vec::new()),
            ast::Item::Model(m) => self.check_model_def(m),
            ast::Item::Optimizer(o) => self.check_optimizer_def(o),
            ast::Item::Dataset(d) => {
                self.dataset_fields(item, d);
            }
            ast::Item::Experiment(e) => self.check_experiment(e, item.module.0 == 0),
        }
        self.pop_frame();
        self.active.pop();
    }

    // ---- constants ----------------------------------------------------------

    pub(super) fn eval_const(&mut self, item: ItemRef, c: &ast::Const) -> Val {
        let v = match &c.value {
            ast::ConstValue::Expr(e) => self.expr(e),
            ast::ConstValue::Sweep(values, span) => self.sweep(values, *span),
        };
        // A bad override is reported; checking goes on with the file's value.
        let v = match self.overrides.get(&c.name.name) {
            Some(o) if item.module.0 == 0 => match self.override_value(c, &v, &o.value.clone()) {
                Val::Error => v,
                ov => ov,
            },
            _ => v,
        };
        // A value only known per run (a sweep) is one symbol wherever it is used.
        let v = match v {
            Val::Int(None) => Val::Int(Some(Dim::sym(self.fresh_sym(&c.name.name)))),
            v => v,
        };
        let Some(t) = &c.ty else { return self.const_kind(c, v) };
        let ok = match (&t.kind, &v) {
            (_, Val::Error) => true,
            (TypeKind::Int, Val::Int(_)) => true,
            (TypeKind::Float, Val::Int(i)) => return Val::Float(i.as_ref().and_then(Dim::as_const).map(|k| k as f64)),
            (TypeKind::Float, Val::Float(_)) => return v,
            (TypeKind::Tensor { dtype: DType::Bool, shape }, Val::Bool(_)) => shape.is_empty(),
            _ => false,
        };
        if !ok {
            let d = Diag::error(format!(
                "`{}` is declared {} but its value is {}",
                c.name.name,
                self.program.sources.text(t.span),
                self.show(&v)
            ))
            .at(c.name.span, "mismatched constant")
            .label(t.span, "declared type");
            return self.error(d);
        }
        v
    }

    fn const_kind(&mut self, c: &ast::Const, v: Val) -> Val {
        match v {
            Val::Int(_) | Val::Float(_) | Val::Bool(_) | Val::Str(_) | Val::Error => v,
            other => {
                let d =
                    Diag::error(format!("a constant must be a number, bool or string, found {}", self.show(&other)))
                        .at(c.name.span, "not a constant")
                        .help("top-level `let`s are hyperparameters; put tensor code in functions or models");
                self.error(d)
            }
        }
    }

    fn sweep(&mut self, values: &[ast::Expr], span: Span) -> Val {
        let vals: Vec<(Val, Span)> = values.iter().map(|e| (self.expr(e), e.span)).collect();
        let Some((first, _)) = vals.first().cloned() else { return Val::Error };
        for (v, s) in &vals[1..] {
            if !same_type(&first, v)
                && !matches!((&first, v), (Val::Float(_), Val::Int(_)) | (Val::Int(_), Val::Float(_)))
            {
                let d = Diag::error(format!(
                    "a sweep's values must share a type: {} and {}",
                    self.show(&first),
                    self.show(v)
                ))
                .at(*s, "different type")
                .label(span, "in this sweep");
                return self.error(d);
            }
        }
        if vals.iter().any(|(v, _)| matches!(v, Val::Float(_))) {
            return Val::Float(None);
        }
        // Each run binds one value; the checker checks with an unknown one.
        match first {
            Val::Int(_) => Val::Int(None),
            Val::Bool(_) => Val::Bool(None),
            v => v,
        }
    }

    /// `--set NAME=raw` for constant `c`, parsed as the kind of value `c`
    /// has; the typed value is kept for lowering.
    fn override_value(&mut self, c: &ast::Const, current: &Val, raw: &str) -> Val {
        let declared_float = matches!(c.ty.as_ref().map(|t| &t.kind), Some(TypeKind::Float));
        let parsed = match current {
            Val::Int(_) if declared_float => raw.parse::<f64>().ok().filter(|f| f.is_finite()).map(Literal::Float),
            Val::Int(_) => raw.parse::<i64>().ok().map(Literal::Int),
            Val::Float(_) => raw.parse::<f64>().ok().filter(|f| f.is_finite()).map(Literal::Float),
            Val::Bool(_) => raw.parse::<bool>().ok().map(Literal::Bool),
            Val::Str(_) => Some(Literal::Str(raw.to_string())),
            _ => None,
        };
        let parsed = parsed.map(|lit| {
            self.typed_overrides.push((c.name.name.clone(), lit.clone()));
            match lit {
                Literal::Int(i) => Val::Int(Some(Dim::constant(i))),
                Literal::Float(f) => Val::Float(Some(f)),
                Literal::Bool(b) => Val::Bool(Some(b)),
                Literal::Str(s) => Val::Str(s),
            }
        });
        parsed.unwrap_or_else(|| {
            let d =
                Diag::error(format!("bad `--set {}={raw}`: `{}` is {}", c.name.name, c.name.name, self.show(current)))
                    .at(c.name.span, format!("`{}` is defined here", c.name.name))
                    .help(format!(
                        "give {}",
                        match current {
                            Val::Int(_) => "an integer, e.g. `--set hidden=256`",
                            Val::Float(_) => "a number, e.g. `--set lr=3e-4`",
                            Val::Bool(_) => "`true` or `false`",
                            _ => "a value of the constant's type",
                        }
                    ));
            self.error(d)
        })
    }

    // ---- functions ----------------------------------------------------------

    /// A parameter's value inside a body checked generically.
    /// An `int` or `bool` parameter with a constant default is checked at
    /// that default (axes, strides must be known to compute shapes); other
    /// values are checked when a concrete model or step is lowered.
    fn rigid_param(&mut self, p: &ast::Param) -> Val {
        if let Some(def) = &p.default
            && matches!(p.ty.as_ref().map(|t| &t.kind), None | Some(TypeKind::Int | TypeKind::Tensor { .. }))
        {
            let v = self.expr(def);
            if matches!(&v, Val::Int(Some(d)) if d.as_const().is_some()) || matches!(v, Val::Bool(Some(_))) {
                if let Some(t) = &p.ty
                    && let Err(why) = self.match_type(t, &v, def.span)
                {
                    self.diags
                        .push(Diag::error(format!("default of `{}`: {why}", p.name.name)).at(def.span, "bad default"));
                }
                return v;
            }
        }
        let from_default = |cx: &mut Self| p.default.as_ref().map(|e| cx.expr(e));
        let v = match &p.ty {
            Some(t) if matches!(t.kind, TypeKind::Int) => Val::Int(Some(Dim::sym(self.fresh_sym(&p.name.name)))),
            Some(t) if matches!(t.kind, TypeKind::Tensor { dtype: DType::Bool, ref shape } if shape.is_empty()) => {
                Val::Bool(None)
            }
            Some(t) => self.eval_type(t, Unbound::Fresh).unwrap_or_else(|d| {
                self.diags.push(d);
                Val::Error
            }),
            None => match from_default(self) {
                Some(Val::Int(_)) => Val::Int(Some(Dim::sym(self.fresh_sym(&p.name.name)))),
                Some(Val::Bool(_)) => Val::Bool(None),
                Some(v) => v,
                None => {
                    let d = Diag::error(format!("parameter `{}` needs a type", p.name.name))
                        .at(p.name.span, "no type or default")
                        .help(format!("write e.g. `{}: f32[B, N]` or `{}: int`", p.name.name, p.name.name));
                    self.error(d)
                }
            },
        };
        if let (Some(t), Some(def)) = (&p.ty, &p.default) {
            let dv = self.expr(def);
            if let Err(why) = self.match_type(t, &dv, def.span) {
                self.diags
                    .push(Diag::error(format!("default of `{}`: {why}", p.name.name)).at(def.span, "bad default"));
            }
        }
        v
    }

    fn check_fn_def(&mut self, f: &ast::FnDecl, env: &Env) {
        self.push_scope();
        for (name, val, span) in env {
            self.bind(name, val.clone(), *span);
        }
        self.check_duplicate_params(&f.params);
        for p in &f.params {
            let v = self.rigid_param(p);
            self.bind(&p.name.name, v, p.name.span);
        }
        let body = self.block(&f.body);
        if let Some(ret) = &f.ret {
            match self.eval_type(ret, Unbound::Reject) {
                Ok(want) => self.check_return(&body, &want, f, ret.span),
                Err(d) => self.diags.push(d),
            }
        }
        self.pop_scope();
    }

    fn check_return(&mut self, got: &Val, want: &Val, f: &ast::FnDecl, ret: Span) {
        // A declared class count is a promise callers rely on: the body's
        // ids must carry the same one.
        if let (Val::Tensor(g), Val::Tensor(w)) = (got, want)
            && let Some(c) = &w.classes
            && same_type(got, want)
            && !g.classes.as_ref().is_some_and(|k| k.fits_in(&c.n))
        {
            let found = g.classes.as_ref().map_or("ids whose range is not declared".to_string(), |k| {
                format!("ids in 0..{}", self.show_dim(&k.n))
            });
            let d = Diag::error(format!(
                "the return type declares ids in 0..{}, the body gives {found}",
                self.show_dim(&c.n)
            ))
            .at(f.body.tail.span, found)
            .label(ret, "declared return type")
            .help("arithmetic on ids forgets their range: declare the count where the ids come from");
            self.diags.push(d);
            return;
        }
        if got.is_error() || want.is_error() || same_type(got, want) {
            return;
        }
        let weak = matches!(got, Val::Float(_) | Val::Int(_)) && matches!(want, Val::Tensor(t) if t.shape.is_scalar());
        if weak {
            return;
        }
        let name = f.name.as_ref().map_or("forward".to_string(), |n| format!("`{}`", n.name));
        let d = Diag::error(format!("{name} returns {} but declares {}", self.show(got), self.show(want)))
            .at(f.body.tail.span, format!("this is {}", self.show(got)))
            .label(ret, "declared return type");
        self.diags.push(d);
    }

    fn check_duplicate_params(&mut self, params: &[ast::Param]) {
        for (i, p) in params.iter().enumerate() {
            if let Some(first) = params[..i].iter().find(|q| q.name.name == p.name.name) {
                let d = Diag::error(format!("parameter `{}` is declared twice", p.name.name))
                    .at(p.name.span, "again")
                    .label(first.name.span, "first here");
                self.diags.push(d);
            }
        }
    }

    // ---- models -------------------------------------------------------------

    fn check_model_def(&mut self, m: &ast::ModelDecl) {
        self.check_duplicate_params(&m.params);
        let mut env: Env = Vec::new();
        for p in &m.params {
            let v = self.rigid_param(p);
            self.bind(&p.name.name, v.clone(), p.name.span);
            env.push((p.name.name.clone(), v, p.name.span));
        }
        for (i, field) in m.fields.iter().enumerate() {
            if let Some(first) = m.fields[..i].iter().find(|f| f.name.name == field.name.name) {
                let d =
                    Diag::error(format!("field `{}` is declared twice in model `{}`", field.name.name, m.name.name))
                        .at(field.name.span, "again")
                        .label(first.name.span, "first here");
                self.diags.push(d);
            }
            let v = self.field_value(field);
            self.check_init(field, &v);
            self.bind(&field.name.name, v.clone(), field.name.span);
            env.push((field.name.name.clone(), v, field.name.span));
        }
        for f in m.forward.iter().chain(&m.methods) {
            self.frame().states = Some(buffer_names(m));
            self.check_fn_def(f, &env);
            self.frame().states = None;
        }
        let mut names: Vec<&ast::Ident> = Vec::new();
        for f in &m.methods {
            let Some(n) = f.name.as_ref() else {
                let d = Diag::error(format!("model `{}` has two forward functions", m.name.name))
                    .at(f.span, "second `fn (...)`")
                    .help("name the other one: `fn encode(...)`");
                self.diags.push(d);
                continue;
            };
            if let Some(first) = names.iter().copied().find(|x| x.name == n.name).or(m
                .fields
                .iter()
                .map(|f| &f.name)
                .find(|x| x.name == n.name))
            {
                let d = Diag::error(format!("`{}` is defined twice in model `{}`", n.name, m.name.name))
                    .at(n.span, "again")
                    .label(first.span, "first here");
                self.diags.push(d);
            }
            names.push(n);
        }
    }

    /// What a field is, in the current frame (the model's parameters bound).
    pub(super) fn field_value(&mut self, field: &ast::Field) -> Val {
        match &field.kind {
            FieldKind::Param { ty, .. } | FieldKind::Buffer { ty, .. } => {
                self.eval_type(ty, Unbound::Reject).unwrap_or_else(|d| {
                    self.diags.push(d);
                    Val::Error
                })
            }
            FieldKind::Sub(e) => {
                let v = self.expr(e);
                self.as_model(v, e.span)
            }
            FieldKind::Repeat { model, count } => {
                let v = self.expr(model);
                let n = match self.expr(count) {
                    Val::Int(d) => d,
                    Val::Error => None,
                    other => {
                        self.diags.push(expected("an int count", &self.show(&other), count.span));
                        None
                    }
                };
                match self.as_model(v, model.span) {
                    Val::Model(inst) => Val::Stack(inst, n),
                    other => other,
                }
            }
        }
    }

    /// A sub-model field: an instance, or a definition without required parameters.
    pub(super) fn as_model(&mut self, v: Val, span: Span) -> Val {
        match v {
            Val::Model(_) | Val::Error => v,
            Val::ModelClass(item) => self.instantiate_model(item, Vec::new(), span),
            other => {
                let d = expected("a model like `Linear(784, 128)`", &self.show(&other), span)
                    .help("a field is `name: f32[dims] = init` (a parameter) or `name: Model(args)` (a sub-model)");
                self.error(d)
            }
        }
    }

    fn check_init(&mut self, field: &ast::Field, v: &Val) {
        let (what, ty, init) = match &field.kind {
            FieldKind::Param { ty, init } => ("parameter", ty, init),
            FieldKind::Buffer { ty, init } => ("buffer", ty, init),
            _ => return,
        };
        // Weights, checkpoints and the optimizer's arithmetic are f32.
        if let Val::Tensor(t) = v
            && t.dtype != DType::F32
        {
            let d = Diag::error(format!("{what} `{}` must be f32, found {}", field.name.name, t.dtype.name()))
                .at(ty.span, "declared here")
                .help("model tensors are f32; integer ids are data, declared in a `dataset`");
            self.diags.push(d);
        }
        let Some(init) = init else {
            let d = Diag::error(format!("{what} `{}` needs an initialiser", field.name.name))
                .at(ty.span.to(field.name.span), "no `= ...`")
                .help("for example `= glorot` or `= zeros` (from `std.init`), or `= normal(0.0, 0.02)`");
            self.diags.push(d);
            return;
        };
        let iv = self.expr(init);
        let dims = match v {
            Val::Tensor(t) => Val::Dims(Some(t.shape.dims.clone())),
            _ => Val::Dims(None),
        };
        let got = match iv {
            Val::Fn(item) => {
                let ast::Item::Fn(f) = self.item(item) else { return };
                let arg = ArgVal { name: None, val: dims, span: init.span };
                self.call_fn(item, f, &Vec::new(), vec![arg], init.span)
            }
            other => other,
        };
        if !matches!(got, Val::Init | Val::Error) {
            let d = expected("an initialiser", &self.show(&got), init.span).help(
                "use `zeros`, `glorot`, `he` (std.init) or `normal(mean, std)`, `uniform(lo, hi)`, `constant(v)`",
            );
            self.diags.push(d);
        }
    }

    // ---- optimizers ---------------------------------------------------------

    fn check_optimizer_def(&mut self, o: &ast::OptimizerDecl) {
        self.check_duplicate_params(&o.params);
        for p in &o.params {
            let v = match self.rigid_param(p) {
                Val::Int(_) => Val::Float(None),
                v => v,
            };
            self.bind(&p.name.name, v, p.name.span);
        }
        let rest = self.fresh_rest("S");
        let param_ty = Val::tensor(DType::F32, Shape { rest: Some(rest), dims: Vec::new() });
        let names: Vec<&str> = o.update.params.iter().map(|p| p.name.name.as_str()).collect();
        if names.len() != 3 {
            let d =
                Diag::error(format!("`update` takes (parameter, gradient, step), found {} parameters", names.len()))
                    .at(o.update.span, "wrong parameters")
                    .help("write `update(p, g, t) { ... }`");
            self.diags.push(d);
        }
        for s in &o.states {
            if let Some(init) = &s.init {
                let v = self.expr(init);
                if !matches!(v, Val::Init | Val::Fn(_) | Val::Error) {
                    self.diags.push(expected("an initialiser like `zeros`", &self.show(&v), init.span));
                }
            }
            self.bind(&s.name.name, param_ty.clone(), s.name.span);
        }
        self.push_scope();
        for (i, p) in o.update.params.iter().enumerate() {
            let v = if i == 2 { Val::scalar(DType::F32) } else { param_ty.clone() };
            self.bind(&p.name.name, v, p.name.span);
        }
        self.frame().states = Some(o.states.iter().map(|s| (s.name.name.clone(), s.name.span)).collect());
        let out = self.block(&o.update.body);
        self.frame().states = None;
        if !out.is_error() && !same_type(&out, &param_ty) {
            let d = Diag::error(format!(
                "`update` must return the new parameter ({}), found {}",
                self.show(&param_ty),
                self.show(&out)
            ))
            .at(o.update.body.tail.span, "the new parameter");
            self.diags.push(d);
        }
        self.pop_scope();
    }

    pub(super) fn configure_optimizer(&mut self, item: ItemRef, args: Vec<ArgVal>, call: Span) -> Val {
        let ast::Item::Optimizer(o) = self.item(item) else { return Val::Error };
        let specs: Vec<ParamSpec> = o
            .params
            .iter()
            .map(|p| ParamSpec { name: &p.name.name, required: p.default.is_none(), span: Some(p.name.span) })
            .collect();
        let Some(slots) = self.bind_args(&o.name.name, &specs, args, call) else { return Val::Error };
        for (p, slot) in o.params.iter().zip(slots) {
            if let (Some(a), Some(t)) = (slot, &p.ty)
                && let Err(why) = self.match_type(t, &a.val, a.span)
            {
                let d = Diag::error(format!("argument `{}` of `{}`: {why}", p.name.name, o.name.name))
                    .at(a.span, format!("this is {}", self.show(&a.val)))
                    .label(t.span, "declared here");
                self.diags.push(d);
            }
        }
        self.record_use(item, call);
        Val::Optimizer(item)
    }

    // ---- datasets -----------------------------------------------------------

    /// The per-sample fields of a dataset (raw, then derived), checked.
    /// Preprocessing runs on whole batches (lowering applies it to `[B,
    /// ...]`), so it is checked on them too: a reduction or reshape over a
    /// sample's axis cannot pass here and mean something else there (with a
    /// batch of 28, `image.sum(axis: 0)` over `[28, 28]` images would sum the
    /// batch).
    pub(super) fn dataset_fields(&mut self, item: ItemRef, d: &ast::DatasetDecl) -> Vec<(String, Val, Span)> {
        let batch = Dim::sym(self.fresh_sym("B"));
        let batched = |v: &Val| match v {
            Val::Tensor(t) if t.shape.rest.is_none() => {
                Val::Tensor(t.with_shape(Shape::of([vec![batch.clone()], t.shape.dims.clone()].concat())))
            }
            v => v.clone(),
        };
        self.push_frame(item.module);
        let source = self.expr(&d.source);
        if !matches!(source, Val::Source(_) | Val::Error) {
            let e = expected(
                "a data source: `idx(dir)`, `csv(path, label: ...)` or `text(path, context: n)`",
                &self.show(&source),
                d.source.span,
            );
            self.diags.push(e);
        }
        let mut out = Vec::new();
        for f in &d.fields {
            let v = self.eval_type(&f.ty, Unbound::Reject).unwrap_or_else(|e| {
                self.diags.push(e);
                Val::Error
            });
            if !matches!(v, Val::Tensor(_) | Val::Error) {
                self.diags.push(expected("a tensor type like `u8[28, 28]`", &self.show(&v), f.ty.span));
            }
            if let Val::Tensor(t) = &v {
                self.check_class_count(t);
            }
            self.bind(&f.name.name, batched(&v), f.name.span);
            out.push((f.name.name.clone(), v, f.name.span));
        }
        for (name, e) in &d.derived {
            let v = self.expr(e);
            self.bind(&name.name, v.clone(), name.span);
            let sample = match v {
                Val::Tensor(t) if t.shape.rest.is_none() && t.shape.dims.first() == Some(&batch) => {
                    Val::Tensor(t.with_shape(Shape::of(t.shape.dims[1..].to_vec())))
                }
                Val::Tensor(t) => {
                    let d = Diag::error(format!("preprocessing of `{}` must keep the sample axis", name.name))
                        .at(e.span, format!("this is {}", self.show_shape(&t.shape)))
                        .help("dataset expressions run on whole batches `[B, ...]`: keep them elementwise, and reshape or reduce inside the model");
                    self.error(d)
                }
                v => v,
            };
            out.push((name.name.clone(), sample, name.span));
        }
        self.pop_frame();
        out
    }

    /// A dataset's class count is what the loader checks each id against.
    fn check_class_count(&mut self, t: &TensorTy) {
        if let Some(c) = &t.classes
            && c.n.as_const().is_none_or(|n| n < 1)
        {
            let shown = self.show_dim(&c.n);
            self.diags.push(expected("a positive constant class count", &shown, c.at));
        }
    }

    pub(super) fn split(&mut self, item: ItemRef, name: &ast::Ident) -> Val {
        const SPLITS: &[&str] = &["train", "test"];
        if SPLITS.contains(&name.name.as_str()) {
            return Val::Split(item, name.name.clone());
        }
        let mut d = Diag::error(format!("dataset `{}` has no split `{}`", self.item_name(item), name.name))
            .at(name.span, "unknown split");
        d = d.help(
            did_you_mean(&name.name, SPLITS.iter().copied())
                .unwrap_or_else(|| "the splits are `train` and `test`".into()),
        );
        self.error(d)
    }

    pub(super) fn configure_split(&mut self, item: ItemRef, name: &str, args: Vec<ArgVal>, call: Span) -> Val {
        let specs = [
            ParamSpec { name: "batch", required: false, span: None },
            ParamSpec { name: "shuffle", required: false, span: None },
            ParamSpec { name: "last", required: false, span: None },
            ParamSpec { name: "take", required: false, span: None },
        ];
        let Some(slots) = self.bind_args(&format!("{}.{name}", self.item_name(item)), &specs, args, call) else {
            return Val::Error;
        };
        for (spec, slot) in specs.iter().zip(slots) {
            let Some(a) = slot else { continue };
            let ok = match spec.name {
                "batch" | "take" => {
                    matches!(&a.val, Val::Int(Some(d)) if d.as_const().is_some_and(|b| b >= 1))
                        || matches!(a.val, Val::Int(None))
                }
                "shuffle" => matches!(a.val, Val::Bool(_)),
                _ => matches!(&a.val, Val::Str(s) if s == "drop" || s == "keep"),
            };
            if !ok && !a.val.is_error() {
                let want = match spec.name {
                    "batch" | "take" => "a positive int",
                    "shuffle" => "`true` or `false`",
                    _ => "\"drop\" or \"keep\"",
                };
                self.diags.push(expected(want, &self.show(&a.val), a.span).help(format!("for `{}`", spec.name)));
            }
        }
        Val::Split(item, name.to_string())
    }

    // ---- experiments ----------------------------------------------------------
}

/// The buffers of a model: the names its forward and methods may assign.
pub(super) fn buffer_names(m: &ast::ModelDecl) -> Vec<(String, Span)> {
    let buffers = m.fields.iter().filter(|f| matches!(f.kind, FieldKind::Buffer { .. }));
    buffers.map(|f| (f.name.name.clone(), f.name.span)).collect()
}
