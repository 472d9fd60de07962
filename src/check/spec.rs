//! What the checker hands on: the program's overrides as typed values, one
//! typed spec per experiment, and the sweep axes. Lowering and the runner
//! read these fields; nothing downstream looks a setting up by name or
//! parses a `--set` string again.

use crate::span::Span;
use crate::syntax::ast;

/// A compile-time constant's value, as `--set` gave it, already of the
/// constant's type (`--set lr=1` on `let lr = 1e-3` is the float 1.0).
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

/// What the checker found one expression to be, for tools that show
/// types (`nnc check --types`, an editor): a `let` binding or a call (a
/// layer, a pipe stage, a function), its type as the checker writes it
/// (`f32[B, 128]`, dims named as in the signature), and for tensors the
/// dtype and each dim. A definition is checked once, generically, so its
/// expressions have one type each; a function without a declared return
/// type is checked at each call and may note one span with several types.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeNote {
    pub span: Span,
    pub what: Noted,
    pub ty: String,
    pub tensor: Option<(ast::DType, Vec<String>)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Noted {
    /// `let name = ...`: the span is the name's.
    Binding(String),
    /// `f(x)` or `x |> f`: the span is the whole call's, `callee` the name's.
    Call { callee: Span },
}

/// `let name = sweep [a, b, c]` in the root file: one axis of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepAxis {
    pub name: String,
    /// Each value as written (`3e-4`), for `--set` and folder names.
    pub values: Vec<String>,
}

/// An experiment's settings, checked: the required ones are there, none is
/// unknown or repeated. Each is the setting as written (its key's span, its
/// value, its `every` period).
#[derive(Clone, Debug)]
pub struct ExperimentSpec {
    pub name: String,
    pub span: Span,
    pub model: ast::Setting,
    pub data: ast::Setting,
    pub loss: ast::Setting,
    pub optimizer: ast::Setting,
    pub schedule: Option<ast::Setting>,
    pub epochs: Option<ast::Setting>,
    pub seed: Option<ast::Setting>,
    pub metrics: Option<ast::Setting>,
    pub eval: Option<ast::Setting>,
    pub checkpoint: Option<ast::Setting>,
    pub log: Option<ast::Setting>,
    pub early_stop: Option<ast::Setting>,
    pub freeze: Option<ast::Setting>,
    pub init_from: Option<ast::Setting>,
    pub init_map: Option<ast::Setting>,
    pub on_reload: Option<ast::Setting>,
}

// What the runner is told, once lowering has the numbers.

/// `on_reload = { step: "continue", data: "restart" }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReloadPolicy {
    /// The step counter drives schedules and Adam's bias correction.
    pub step: OnReload,
    /// The position in the epoch's batch order.
    pub data: OnReload,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnReload {
    /// Carry on from where the previous program was.
    #[default]
    Continue,
    /// Start again from zero.
    Restart,
}

/// `every N epochs` / `every N steps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Epochs(u64),
    Steps(u64),
}

/// `early_stop = { metric: "accuracy", patience: 3, mode: "max" }`: stop
/// when the eval metric has not improved for `patience` evaluations;
/// `restore_best: true` ends the run with the best evaluation's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStop {
    pub metric: String,
    pub patience: u64,
    pub maximize: bool,
    pub restore_best: bool,
}

/// `checkpoint = best(accuracy)` (or `best(loss, min)`): keep
/// `best.safetensors`, the weights of the best evaluation so far.
#[derive(Clone, Debug, PartialEq)]
pub struct KeepBest {
    pub metric: String,
    pub maximize: bool,
}

impl KeepBest {
    /// Read from the setting's value, by its form alone: `best(name)` or
    /// `best(name, min|max)`; the mode defaults to `min` for `loss` and
    /// `max` for any other metric. `Err` carries the span to blame.
    pub fn of(value: &ast::Expr) -> Result<KeepBest, Span> {
        let ast::ExprKind::Call { callee, args } = &value.kind else { return Err(value.span) };
        let name = |e: &ast::Expr| match &e.kind {
            ast::ExprKind::Name(n) => Some(n.clone()),
            _ => None,
        };
        if name(callee).as_deref() != Some("best") || args.iter().any(|a| a.name.is_some()) {
            return Err(value.span);
        }
        let metric = match args.first() {
            Some(a) => name(&a.value).ok_or(a.value.span)?,
            None => return Err(value.span),
        };
        let maximize = match args.get(1).map(|a| (name(&a.value), a.value.span)) {
            None => metric != "loss",
            Some((Some(m), _)) if m == "max" => true,
            Some((Some(m), _)) if m == "min" => false,
            Some((_, span)) => return Err(span),
        };
        if args.len() > 2 {
            return Err(args[2].value.span);
        }
        Ok(KeepBest { metric, maximize })
    }
}

/// One experiment setting: its key, and whether it takes `every`.
pub(super) struct SettingRule {
    pub key: &'static str,
    pub periodic: bool,
    /// For a required setting: how to write it.
    pub required: Option<&'static str>,
}

const fn rule(key: &'static str) -> SettingRule {
    SettingRule { key, periodic: false, required: None }
}

/// The settings an experiment understands, in the order they are checked.
pub(super) const SETTINGS: &[SettingRule] = &[
    SettingRule { required: Some("model = Mlp"), ..rule("model") },
    SettingRule { required: Some("data = mnist.train(batch: 32)"), ..rule("data") },
    SettingRule { required: Some("loss = cross_entropy(model(x), y)"), ..rule("loss") },
    SettingRule { required: Some("optimizer = adam(lr: 1e-3)"), ..rule("optimizer") },
    rule("schedule"),
    rule("epochs"),
    rule("seed"),
    rule("metrics"),
    SettingRule { periodic: true, ..rule("eval") },
    SettingRule { periodic: true, ..rule("checkpoint") },
    SettingRule { periodic: true, ..rule("log") },
    rule("early_stop"),
    rule("freeze"),
    rule("init_from"),
    rule("init_map"),
    rule("on_reload"),
];

impl ExperimentSpec {
    /// The spec of `e`, given its settings (already checked unique and
    /// known); `None` if a required one is missing (that was reported).
    pub(super) fn new(e: &ast::ExperimentDecl, seen: &[&ast::Setting]) -> Option<ExperimentSpec> {
        let get = |k: &str| seen.iter().find(|s| s.key.name == k).map(|s| (*s).clone());
        Some(ExperimentSpec {
            name: e.name.name.clone(),
            span: e.name.span,
            model: get("model")?,
            data: get("data")?,
            loss: get("loss")?,
            optimizer: get("optimizer")?,
            schedule: get("schedule"),
            epochs: get("epochs"),
            seed: get("seed"),
            metrics: get("metrics"),
            eval: get("eval"),
            checkpoint: get("checkpoint"),
            log: get("log"),
            early_stop: get("early_stop"),
            freeze: get("freeze"),
            init_from: get("init_from"),
            init_map: get("init_map"),
            on_reload: get("on_reload"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule has a field: a spec built from all of them keeps each.
    #[test]
    fn every_setting_has_a_field() {
        let src = format!(
            "experiment e {{\n{}\n}}",
            SETTINGS.iter().map(|r| format!("    {} = 1", r.key)).collect::<Vec<_>>().join("\n")
        );
        let file = crate::syntax::parse(crate::span::FileId(0), &src).expect("parses");
        let ast::Item::Experiment(e) = &file.items[0] else { panic!("an experiment") };
        let seen: Vec<&ast::Setting> = e.settings.iter().collect();
        let spec = ExperimentSpec::new(e, &seen).expect("all required present");
        let optional = [
            &spec.schedule,
            &spec.epochs,
            &spec.seed,
            &spec.metrics,
            &spec.eval,
            &spec.checkpoint,
            &spec.log,
            &spec.early_stop,
            &spec.freeze,
            &spec.init_from,
            &spec.init_map,
            &spec.on_reload,
        ];
        assert_eq!(optional.len() + 4, SETTINGS.len());
        assert!(optional.iter().all(|s| s.is_some()));
    }
}
