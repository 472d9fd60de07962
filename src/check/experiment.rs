//! Experiments: the settings that tie a model, its data, loss, optimizer
//! and schedule together, each checked as the runner will use it; the
//! checked settings become the experiment's [`ExperimentSpec`].

use super::call::ArgVal;
use super::dim::{Dim, Shape};
use super::expr::same_type;
use super::spec::{ExperimentSpec, KeepBest, SETTINGS};
use super::val::Val;
use super::{Checker, expected};
use crate::diag::{Diag, did_you_mean};
use crate::span::Span;
use crate::syntax::ast::{self, DType};

impl Checker<'_> {
    /// `root`: the experiment is in the file being run (its spec is kept).
    pub(super) fn check_experiment(&mut self, e: &ast::ExperimentDecl, root: bool) {
        let mut seen: Vec<&ast::Setting> = Vec::new();
        for s in &e.settings {
            if let Some(first) = seen.iter().find(|x| x.key.name == s.key.name) {
                let d = Diag::error(format!("`{}` is set twice in experiment `{}`", s.key.name, e.name.name))
                    .at(s.key.span, "again")
                    .label(first.key.span, "first set here");
                self.diags.push(d);
                continue;
            }
            let Some(rule) = SETTINGS.iter().find(|r| r.key == s.key.name) else {
                let keys = SETTINGS.iter().map(|r| r.key);
                let hint = did_you_mean(&s.key.name, keys.clone())
                    .unwrap_or_else(|| format!("the settings are: {}", keys.collect::<Vec<_>>().join(", ")));
                let d = Diag::error(format!("unknown experiment setting `{}`", s.key.name))
                    .at(s.key.span, "unknown")
                    .help(hint);
                self.diags.push(d);
                continue;
            };
            if let Some(ev) = &s.every
                && !rule.periodic
            {
                let d = Diag::error(format!("`{}` takes no `every`", s.key.name))
                    .at(ev.unit.span, "not a periodic setting")
                    .help(format!(
                        "only {} take a period: `eval = data.test(batch: 100) every epoch`",
                        periodic_keys()
                    ));
                self.diags.push(d);
            }
            if s.key.name == "early_stop" {
                self.check_early_stop_metric(e, s);
            }
            if s.key.name == "checkpoint"
                && let Some(Ok(best)) = s.value.as_ref().map(KeepBest::of)
                && let Some(v) = &s.value
            {
                self.check_metric_name(e, "checkpoint = best", &best.metric, v.span);
                if !e.settings.iter().any(|x| x.key.name == "eval") {
                    let d = Diag::error("`checkpoint = best(..)` needs an `eval` to rank the weights by")
                        .at(v.span, "best by what evaluation?")
                        .help("add `eval = mnist.test(batch: 1000) every epoch` (your dataset's held-out split)");
                    self.diags.push(d);
                }
            }
            seen.push(s);
        }
        let get = |k: &str| seen.iter().find(|s| s.key.name == k).copied();
        for (key, example) in SETTINGS.iter().filter_map(|r| Some((r.key, r.required?))) {
            if get(key).is_none() {
                let d = Diag::error(format!("experiment `{}` has no `{key}`", e.name.name))
                    .at(e.name.span, format!("`{key}` missing"))
                    .help(format!("add `{example}`"));
                self.diags.push(d);
            }
        }
        if root {
            self.experiments.extend(ExperimentSpec::new(e, &seen));
        }
        let model = get("model").map(|s| self.setting_model(s)).unwrap_or(Val::Error);
        let fields = get("data").map(|s| self.setting_data(s)).unwrap_or_default();
        self.bind_batch_scope(model, &fields);
        if let Some(s) = get("loss") {
            self.setting_scalar(s, "the loss");
        }
        if let Some(s) = get("metrics") {
            self.setting_metrics(s);
        }
        if let Some(s) = get("optimizer") {
            self.setting_optimizer(s);
        }
        if let Some(s) = get("schedule") {
            self.setting_schedule(s);
        }
        for key in ["epochs", "seed"] {
            if let Some(s) = get(key) {
                self.setting_count(s, key == "seed");
            }
        }
        if let Some(s) = get("eval") {
            self.setting_eval(s, &fields);
        }
        if let Some(s) = get("init_map") {
            self.setting_init_map(s, get("init_from").is_some());
        }
        for key in ["checkpoint", "log", "early_stop", "freeze", "init_from", "on_reload"] {
            if let Some(s) = get(key) {
                self.setting_misc(s, seen.iter().any(|x| x.key.name == "metrics"));
            }
        }
    }

    fn value(&mut self, s: &ast::Setting) -> (Val, Span) {
        match &s.value {
            Some(e) => (self.expr(e), e.span),
            None => (Val::Error, s.key.span),
        }
    }

    fn setting_model(&mut self, s: &ast::Setting) -> Val {
        let (v, span) = self.value(s);
        self.as_model(v, span)
    }

    fn setting_data(&mut self, s: &ast::Setting) -> Vec<(String, Val, Span)> {
        let (v, span) = self.value(s);
        match v {
            Val::Split(item, _) => {
                let ast::Item::Dataset(d) = self.item(item) else { return Vec::new() };
                self.dataset_fields(item, d)
            }
            Val::Dataset(item) => {
                let d = Diag::error(format!("`data` needs a split of `{}`", self.item_name(item)))
                    .at(span, "a whole dataset")
                    .help(format!("write `{}.train(batch: 32)`", self.item_name(item)));
                self.diags.push(d);
                // Its fields are still the names `loss` and `metrics` use:
                // bind them as poison, not leave them unknown.
                let ast::Item::Dataset(d) = self.item(item) else { return Vec::new() };
                let names = d.fields.iter().map(|f| &f.name).chain(d.derived.iter().map(|(n, _)| n));
                names.map(|n| (n.name.clone(), Val::Error, n.span)).collect()
            }
            Val::Error => Vec::new(),
            other => {
                self.diags.push(expected("a dataset split like `mnist.train(batch: 32)`", &self.show(&other), span));
                Vec::new()
            }
        }
    }

    /// In `loss` and `metrics`: `model`, `B`, and every field with `B` in front.
    fn bind_batch_scope(&mut self, model: Val, fields: &[(String, Val, Span)]) {
        let b = self.fresh_sym("B");
        let span = Span::new(self.program.module(self.module()).file, 0, 0);
        self.bind("B", Val::Int(Some(Dim::sym(b))), span);
        self.bind("model", model, span);
        for (name, v, s) in fields {
            let batched = match v {
                Val::Tensor(t) if t.shape.rest.is_none() => {
                    let mut dims = vec![Dim::sym(b)];
                    dims.extend(t.shape.dims.iter().cloned());
                    Val::Tensor(t.with_shape(Shape::of(dims)))
                }
                other => other.clone(),
            };
            self.bind(name, batched, *s);
        }
    }

    fn setting_scalar(&mut self, s: &ast::Setting, what: &str) {
        let (v, span) = self.value(s);
        if !is_f32_scalar(&v) && !v.is_error() {
            let d = Diag::error(format!("{what} must be an f32 scalar, found {}", self.show(&v)))
                .at(span, format!("this is {}", self.show(&v)))
                .help("reduce it, e.g. with `.mean()`");
            self.diags.push(d);
        }
    }

    fn setting_metrics(&mut self, s: &ast::Setting) {
        let Some(ast::ExprKind::Record(entries)) = s.value.as_ref().map(|e| &e.kind) else {
            let (v, span) = self.value(s);
            let d = expected("a record `{ accuracy: accuracy(model(x), y) }`", &self.show(&v), span);
            self.diags.push(d);
            return;
        };
        for (k, e) in entries {
            let v = self.expr(e);
            if !is_f32_scalar(&v) && !v.is_error() {
                let d = Diag::error(format!("metric `{}` must be an f32 scalar, found {}", k.name, self.show(&v)))
                    .at(e.span, format!("this is {}", self.show(&v)))
                    .help("metrics are averaged over batches: reduce to a scalar, e.g. `.mean()`");
                self.diags.push(d);
            }
        }
    }

    fn setting_optimizer(&mut self, s: &ast::Setting) {
        let (v, span) = self.value(s);
        let v = match v {
            Val::OptimizerClass(item) => self.configure_optimizer(item, Vec::new(), span),
            v => v,
        };
        if !matches!(v, Val::Optimizer(_) | Val::Error) {
            self.diags.push(expected("an optimizer like `adam(lr: 1e-3)`", &self.show(&v), span));
        }
    }

    /// `schedule = cosine(warmup: 100)`: a function of `(step, total, ...)`
    /// whose first two arguments the runner supplies every step.
    fn setting_schedule(&mut self, s: &ast::Setting) {
        let Some(e) = &s.value else { return };
        let (callee, args): (&ast::Expr, &[ast::Arg]) = match &e.kind {
            ast::ExprKind::Call { callee, args } => (callee, args),
            _ => (e, &[]),
        };
        let f = self.expr(callee);
        let Val::Fn(item) = f else {
            if !f.is_error() {
                self.diags.push(expected(
                    "a schedule function like `cosine(warmup: 100)`",
                    &self.show(&f),
                    callee.span,
                ));
            }
            return;
        };
        let ast::Item::Fn(decl) = self.item(item) else { return };
        let implicit = decl.params.iter().take(2).map(|p| p.name.name.as_str()).collect::<Vec<_>>();
        if implicit != ["step", "total"] {
            let d = Diag::error(format!("`{}` is not a schedule", self.item_name(item)))
                .at(callee.span, "not a schedule")
                .help("a schedule's first parameters are `(step: f32, total: f32, ...)`");
            self.diags.push(d);
            return;
        }
        let mut argv = vec![
            ArgVal { name: None, val: Val::scalar(DType::F32), span: callee.span },
            ArgVal { name: None, val: Val::scalar(DType::F32), span: callee.span },
        ];
        argv.extend(self.args(args));
        let out = self.call_fn(item, decl, &Vec::new(), argv, e.span);
        if !is_f32_scalar(&out) && !out.is_error() {
            self.diags.push(
                Diag::error(format!("a schedule must return an f32 scalar, found {}", self.show(&out)))
                    .at(e.span, "here"),
            );
        }
    }

    fn setting_count(&mut self, s: &ast::Setting, zero_ok: bool) {
        let (v, span) = self.value(s);
        let ok = match &v {
            Val::Int(Some(d)) => d.as_const().is_some_and(|n| n >= i64::from(!zero_ok)),
            Val::Int(None) | Val::Error => true,
            _ => false,
        };
        if !ok {
            let want = if zero_ok { "a non-negative int" } else { "a positive int" };
            self.diags.push(expected(want, &self.show(&v), span).help(format!("for `{}`", s.key.name)));
        }
    }

    fn setting_eval(&mut self, s: &ast::Setting, train_fields: &[(String, Val, Span)]) {
        let (v, span) = self.value(s);
        let fields = match v {
            Val::Split(item, _) => {
                let ast::Item::Dataset(d) = self.item(item) else { return };
                self.dataset_fields(item, d)
            }
            Val::Error => return,
            other => {
                self.diags.push(expected("a dataset split like `mnist.test`", &self.show(&other), span));
                return;
            }
        };
        for (name, v, _) in train_fields {
            let other = fields.iter().find(|(n, _, _)| n == name);
            if !other.is_some_and(|(_, w, _)| same_type(v, w)) {
                let d = Diag::error(format!("the eval split has no field `{name}` of type {}", self.show(v)))
                    .at(span, "evaluated here")
                    .help(
                        "loss and metrics are computed on the eval split too: its fields must match the training data",
                    );
                self.diags.push(d);
                return;
            }
        }
        self.check_every(s);
    }

    /// `early_stop = { metric: "acuracy" }`: the metric must be `loss` or
    /// one of the experiment's `metrics`.
    fn check_early_stop_metric(&mut self, e: &ast::ExperimentDecl, s: &ast::Setting) {
        let Some(ast::Expr { kind: ast::ExprKind::Record(entries), .. }) = &s.value else { return };
        let Some((_, m)) = entries.iter().find(|(k, _)| k.name == "metric") else { return };
        let ast::ExprKind::Str(name) = &m.kind else { return };
        self.check_metric_name(e, "early_stop", name, m.span);
        let field = |key: &str| entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| &v.kind);
        if !matches!(field("restore_best"), Some(ast::ExprKind::Bool(true))) {
            return;
        }
        let maximize = match field("mode") {
            Some(ast::ExprKind::Str(m)) => m == "max",
            _ => name != "loss",
        };
        let kept = e.settings.iter().find(|x| x.key.name == "checkpoint").and_then(|x| x.value.as_ref());
        if let Some(v) = kept
            && let Ok(best) = KeepBest::of(v)
            && (best.metric != *name || best.maximize != maximize)
        {
            let mode = |max: bool| if max { "max" } else { "min" };
            let d = Diag::error("`restore_best` and `checkpoint = best(..)` rank the weights differently")
                .at(v.span, format!("keeps the best by `{}` ({})", best.metric, mode(best.maximize)))
                .label(m.span, format!("restores the best by `{name}` ({})", mode(maximize)))
                .help(format!(
                    "both use `checkpoints/best.safetensors`: write `checkpoint = best({name}, {})`, or drop one",
                    mode(maximize)
                ));
            self.diags.push(d);
        }
    }

    /// A metric watched by `what` must be `loss` or one of `metrics`.
    fn check_metric_name(&mut self, e: &ast::ExperimentDecl, what: &str, name: &str, at: Span) {
        let mut names = vec!["loss"];
        for x in &e.settings {
            if x.key.name == "metrics"
                && let Some(ast::Expr { kind: ast::ExprKind::Record(ms), .. }) = &x.value
            {
                names.extend(ms.iter().map(|(k, _)| k.name.as_str()));
            }
        }
        if !names.contains(&name) {
            let help = did_you_mean(name, names.iter().copied())
                .unwrap_or_else(|| format!("the metrics are: {}", names.join(", ")));
            let d = Diag::error(format!("`{what}` watches an unknown metric `{name}`"))
                .at(at, "not `loss` or a metric of this experiment")
                .help(help);
            self.diags.push(d);
        }
    }

    fn check_every(&mut self, s: &ast::Setting) {
        let Some(ev) = &s.every else { return };
        const UNITS: &[&str] = &["epoch", "epochs", "step", "steps"];
        if !UNITS.contains(&ev.unit.name.as_str()) {
            let d = Diag::error(format!("unknown unit `{}`", ev.unit.name)).at(ev.unit.span, "unknown").help(
                did_you_mean(&ev.unit.name, UNITS.iter().copied())
                    .unwrap_or_else(|| "write `every epoch` or `every 500 steps`".into()),
            );
            self.diags.push(d);
        }
        if let Some((0, span)) = ev.count {
            self.diags.push(Diag::error("`every 0` never happens").at(span, "zero").help("use a positive count"));
        }
    }

    fn setting_misc(&mut self, s: &ast::Setting, _has_metrics: bool) {
        match s.key.name.as_str() {
            "checkpoint" => {
                match &s.value {
                    None if s.every.is_none() => {
                        let d = Diag::error("`checkpoint` needs a period")
                            .at(s.key.span, "when?")
                            .help("write `checkpoint = every epoch`");
                        self.diags.push(d);
                    }
                    None => {}
                    Some(v) => {
                        if let Err(span) = KeepBest::of(v) {
                            let d = Diag::error("expected `best(metric)` or `best(metric, min|max)`")
                                .at(span, "here")
                                .help("`checkpoint = best(accuracy) every epoch` keeps the periodic checkpoints and `best.safetensors`, the best evaluation's weights");
                            self.diags.push(d);
                        }
                    }
                }
                self.check_every(s);
            }
            "log" => {
                let steps = s.every.as_ref().is_some_and(|e| e.unit.name.starts_with("step"));
                if !steps || s.value.is_some() {
                    let d = Diag::error("`log` takes a period in steps")
                        .at(s.key.span, "how often?")
                        .help("write `log = every 50 steps`: each `train` event already reports an epoch");
                    self.diags.push(d);
                }
                self.check_every(s);
            }
            "early_stop" => self.setting_early_stop(s),
            "freeze" => {
                let (v, span) = self.value(s);
                if !matches!(&v, Val::List(xs) if xs.iter().all(|x| matches!(x, Val::Str(_)))) && !v.is_error() {
                    self.diags.push(expected("a list of parameter names like `[\"l1.w\"]`", &self.show(&v), span));
                }
            }
            "on_reload" => self.setting_on_reload(s),
            _ => {
                let (v, span) = self.value(s);
                if !matches!(v, Val::Str(_) | Val::Error) {
                    self.diags.push(expected("a path string", &self.show(&v), span));
                }
            }
        }
    }
}

impl Checker<'_> {
    /// `early_stop = { metric: "accuracy", patience: 3, mode: "max",
    /// restore_best: true }`: every field known and of its kind, since a
    /// misspelt one would stop the run by another rule than the one written.
    fn setting_early_stop(&mut self, s: &ast::Setting) {
        let example = "`{ metric: \"accuracy\", patience: 3 }`";
        let Some((fields, span)) = self.record_setting(s, example) else { return };
        if !fields.iter().any(|(k, _)| k.name == "metric") {
            let d = Diag::error("`early_stop` names no `metric`").at(span, "stop on what?").help(format!(
                "write {example}: the metric is `loss` or one of `metrics`, watched on the evaluation split"
            ));
            self.diags.push(d);
        }
        let takes = "`early_stop` takes `metric`, `patience`, `mode` (\"min\" or \"max\") and `restore_best`";
        self.record_fields(fields, ("`early_stop`", takes, "early_stop."), |key, v| {
            Ok(match key {
                "metric" => (!matches!(v, Val::Str(_))).then_some("a metric name like \"accuracy\""),
                "patience" => (!matches!(v, Val::Int(Some(d)) if d.as_const().is_some_and(|n| n >= 1))
                    && !matches!(v, Val::Int(None)))
                .then_some("a positive int (evaluations without improvement)"),
                "mode" => (!matches!(v, Val::Str(m) if m == "min" || m == "max")).then_some("\"min\" or \"max\""),
                "restore_best" => (!matches!(v, Val::Bool(_))).then_some("`true` or `false`"),
                _ => return Err(()),
            })
        });
    }

    /// Each field of a record setting checked by `rule`: `Err(())` for a
    /// field it does not know, `Ok(Some(want))` for a value that is not
    /// `want`. `owner` names the record in messages, `takes` lists its
    /// fields, `prefix` qualifies a field in the help (`early_stop.`).
    fn record_fields(
        &mut self,
        fields: &[(ast::Ident, ast::Expr)],
        (owner, takes, prefix): (&str, &str, &str),
        rule: impl Fn(&str, &Val) -> Result<Option<&'static str>, ()>,
    ) {
        for (key, e) in fields {
            let v = self.expr(e);
            match rule(&key.name, &v) {
                Err(()) => {
                    let d = Diag::error(format!("{owner} has no field `{}`", key.name))
                        .at(key.span, "unknown field")
                        .help(takes);
                    self.diags.push(d);
                }
                Ok(Some(want)) if !v.is_error() => {
                    let shown = if let Val::Str(s) = &v { format!("\"{s}\"") } else { self.show(&v) };
                    self.diags.push(expected(want, &shown, e.span).help(format!("for `{prefix}{}`", key.name)));
                }
                Ok(_) => {}
            }
        }
    }

    /// A setting written as a record, with its span; anything else is
    /// reported as not what `example` shows.
    fn record_setting<'s>(
        &mut self,
        s: &'s ast::Setting,
        example: &str,
    ) -> Option<(&'s [(ast::Ident, ast::Expr)], Span)> {
        if let Some(ast::Expr { kind: ast::ExprKind::Record(fields), span, .. }) = &s.value {
            return Some((fields, *span));
        }
        let (v, span) = self.value(s);
        if !v.is_error() {
            self.diags.push(expected(example, &self.show(&v), span));
        }
        None
    }

    /// `init_map = [{ from: "fc1.weight", to: "l1.w", layout: "linear" },
    /// { skip: "fc3" }]`: how the tensors of a file written elsewhere (a
    /// PyTorch `state_dict`) become the model's. Every entry is a record of
    /// known fields; which names exist is checked when the file is read.
    fn setting_init_map(&mut self, s: &ast::Setting, has_init_from: bool) {
        let example = "`[{ from: \"fc1.weight\", to: \"l1.w\", layout: \"linear\" }, { skip: \"fc3\" }]`";
        if !has_init_from {
            let d = Diag::error("`init_map` without `init_from`")
                .at(s.key.span, "maps the tensors of which file?")
                .help("write `init_from = \"weights.safetensors\"` beside it");
            self.diags.push(d);
        }
        let Some(ast::Expr { kind: ast::ExprKind::List(entries), .. }) = &s.value else {
            let (v, span) = self.value(s);
            if !v.is_error() {
                self.diags.push(expected(&format!("a list of records like {example}"), &self.show(&v), span));
            }
            return;
        };
        for entry in entries {
            self.init_map_entry(entry, example);
        }
    }

    fn init_map_entry(&mut self, entry: &ast::Expr, example: &str) {
        let ast::ExprKind::Record(fields) = &entry.kind else {
            let v = self.expr(entry);
            if !v.is_error() {
                self.diags.push(expected(&format!("a record like {example}"), &self.show(&v), entry.span));
            }
            return;
        };
        let has = |k: &str| fields.iter().any(|(f, _)| f.name == k);
        let shape_ok = if has("skip") {
            fields.len() == 1
        } else {
            has("from") && has("to") && !(has("layout") && has("transpose"))
        };
        if !shape_ok {
            let d = Diag::error("an `init_map` entry is `{ from, to }` (with `layout` or `transpose`) or `{ skip }`")
                .at(entry.span, "this entry")
                .help(format!("for example {example}"));
            self.diags.push(d);
        }
        let takes = "entries take `from`, `to`, `layout` or `transpose`, or `skip` alone";
        self.record_fields(fields, ("an `init_map` entry", takes, ""), |key, v| {
            Ok(match key {
                "from" | "to" | "skip" => (!matches!(v, Val::Str(_))).then_some("a tensor name string"),
                "layout" => (!matches!(v, Val::Str(l) if l == "linear" || l == "conv" || l == "same"))
                    .then_some("\"linear\" ([out, in] to [in, out]), \"conv\" (OIHW to HWIO) or \"same\""),
                "transpose" => (!matches!(v, Val::List(xs) if xs.iter().all(|x| matches!(x, Val::Int(Some(_))))))
                    .then_some("a permutation of axes like `[1, 0]`"),
                _ => return Err(()),
            })
        });
    }

    /// `on_reload = { step: "continue", data: "restart" }`: what `nnc watch`
    /// does with the step counter and the data position on a reload.
    fn setting_on_reload(&mut self, s: &ast::Setting) {
        let example = "`{ step: \"continue\", data: \"restart\" }`";
        let Some((fields, _)) = self.record_setting(s, example) else { return };
        for (key, e) in fields {
            let v = self.expr(e);
            if !matches!(key.name.as_str(), "step" | "data") {
                let d = Diag::error(format!("`on_reload` has no field `{}`", key.name))
                    .at(key.span, "unknown field")
                    .help("`on_reload` takes `step` and `data`, each \"continue\" or \"restart\"");
                self.diags.push(d);
            } else if !matches!(&v, Val::Str(s) if s == "continue" || s == "restart") && !v.is_error() {
                let shown = if let Val::Str(s) = &v { format!("\"{s}\"") } else { self.show(&v) };
                self.diags.push(expected("\"continue\" or \"restart\"", &shown, e.span));
            }
        }
    }
}

fn is_f32_scalar(v: &Val) -> bool {
    matches!(v, Val::Tensor(t) if t.dtype == DType::F32 && t.shape.is_scalar())
}

/// "`eval`, `checkpoint` and `log`": the settings that take `every`, from
/// the table, so the hint cannot fall behind it.
fn periodic_keys() -> String {
    let keys: Vec<String> = SETTINGS.iter().filter(|r| r.periodic).map(|r| format!("`{}`", r.key)).collect();
    match keys.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}
