//! Calls: binding arguments to parameters, and checking a call of a
//! function, a model or an optimizer against its signature.

use super::val::{ModelInst, Val};
use super::{Checker, shape::Unbound};
use crate::bind::{BindError, bind};
use crate::diag::{Diag, did_you_mean};
use crate::resolve::ItemRef;
use crate::span::Span;
use crate::syntax::ast;
use std::rc::Rc;

/// An evaluated argument.
#[derive(Clone, Debug)]
pub(super) struct ArgVal {
    pub name: Option<ast::Ident>,
    pub val: Val,
    pub span: Span,
}

/// A parameter as far as argument binding cares.
pub(super) struct ParamSpec<'a> {
    pub name: &'a str,
    pub required: bool,
    pub span: Option<Span>,
}

/// Names bound around a function body: a model's parameters and fields.
pub(super) type Env = Vec<(String, Val, Span)>;

impl Checker<'_> {
    /// Match positional then named arguments to parameters. `None` if an
    /// error was reported.
    pub(super) fn bind_args(
        &mut self,
        callee: &str,
        params: &[ParamSpec],
        args: Vec<ArgVal>,
        call: Span,
    ) -> Option<Vec<Option<ArgVal>>> {
        let specs: Vec<(&str, bool)> = params.iter().map(|p| (p.name, p.required)).collect();
        let names: Vec<Option<&str>> = args.iter().map(|a| a.name.as_ref().map(|n| n.name.as_str())).collect();
        let (slots, errors) = bind(&specs, &names);
        for e in &errors {
            let d = self.bind_error(callee, params, &args, call, e);
            self.diags.push(d);
        }
        if !errors.is_empty() {
            return None;
        }
        let mut args: Vec<Option<ArgVal>> = args.into_iter().map(Some).collect();
        Some(slots.into_iter().map(|s| s.and_then(|i| args[i].take())).collect())
    }

    fn bind_error(&self, callee: &str, params: &[ParamSpec], args: &[ArgVal], call: Span, e: &BindError) -> Diag {
        let named_span = |a: &ArgVal| a.name.as_ref().map_or(a.span, |n| n.span.to(a.span));
        match e {
            BindError::AfterNamed { arg, first_named } => Diag::error("positional argument after a named one")
                .at(args[*arg].span, "positional argument")
                .help("put the positional arguments first, or name this one too")
                .label(named_span(&args[*first_named]), "named argument here"),
            BindError::Unknown { arg } => {
                let n = args[*arg].name.as_ref().map_or("", |n| n.name.as_str());
                let at = args[*arg].name.as_ref().map_or(args[*arg].span, |n| n.span);
                let hint = did_you_mean(n, params.iter().map(|p| p.name)).unwrap_or_else(|| {
                    format!("its parameters are: {}", params.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))
                });
                Diag::error(format!("`{callee}` has no parameter `{n}`")).at(at, "unknown parameter").help(hint)
            }
            BindError::Twice { arg, first, param } => {
                Diag::error(format!("argument `{}` of `{callee}` is given twice", params[*param].name))
                    .at(args[*arg].span, "given again here")
                    .label(args[*first].span, "first given here")
            }
            BindError::TooMany { args: extra } => {
                let mut d = Diag::error(format!(
                    "`{callee}` takes {} argument{}, found {}",
                    params.len(),
                    if params.len() == 1 { "" } else { "s" },
                    args.len()
                ))
                .at(args[extra[0]].span, "unexpected argument");
                for &i in &extra[1..] {
                    d = d.label(args[i].span, "unexpected argument");
                }
                d
            }
            BindError::Missing { param } => {
                let p = &params[*param];
                let d = Diag::error(format!("missing argument `{}` in call of `{callee}`", p.name))
                    .at(call, format!("`{}` is not given", p.name));
                match p.span {
                    Some(def) => d.label(def, "parameter declared here"),
                    None => d,
                }
            }
        }
    }

    fn param_specs(params: &[ast::Param]) -> Vec<ParamSpec<'_>> {
        params
            .iter()
            .map(|p| ParamSpec { name: &p.name.name, required: p.default.is_none(), span: Some(p.name.span) })
            .collect()
    }

    /// Record that the item being checked uses `callee`; cycles are reported at the end.
    pub(super) fn record_use(&mut self, callee: ItemRef, span: Span) {
        if let Some(&caller) = self.active.last() {
            self.uses.push((caller, callee, span));
        }
    }

    /// Check a call of `f` (a function, forward or method) in `env`.
    pub(super) fn call_fn(&mut self, item: ItemRef, f: &ast::FnDecl, env: &Env, args: Vec<ArgVal>, call: Span) -> Val {
        let layer = self.layer.take();
        let callee = f.name.as_ref().map_or_else(|| self.item_name(item), |n| n.name.clone());
        let Some(slots) = self.bind_args(&callee, &Self::param_specs(&f.params), args, call) else {
            return Val::Error;
        };
        self.record_use(item, call);
        self.push_frame(item.module);
        if let ast::Item::Model(m) = self.item(item) {
            self.frame().states = Some(super::items::buffer_names(m));
        }
        for (name, val, span) in env {
            self.bind(name, val.clone(), *span);
        }
        let mut ok = true;
        for (p, slot) in f.params.iter().zip(slots) {
            let (val, at) = match slot {
                Some(a) => (a.val, a.span),
                None => (self.default_value(p), p.name.span),
            };
            // An argument that already failed poisons the call silently.
            ok &= !val.is_error();
            if let Some(t) = &p.ty
                && let Err(why) = self.match_type(t, &val, at)
            {
                let of = match &layer {
                    Some((name, _)) => format!("layer `{name}` (`{callee}`)"),
                    None => format!("`{callee}`"),
                };
                let mut d = Diag::error(format!("argument `{}` of {of}: {why}", p.name.name))
                    .at(at, format!("this is {}", self.show(&val)));
                if let Some((name, def)) = &layer {
                    d = d.label(*def, format!("`{name}` is declared here"));
                }
                self.diags.push(why.explain(d.label(t.span, "declared here")));
                ok = false;
            }
            let v = self.param_value(p, val);
            self.bind(&p.name.name, v, p.name.span);
        }
        let out = if !ok {
            Val::Error
        } else if let Some(ret) = &f.ret {
            self.eval_type(ret, Unbound::Reject).unwrap_or_else(|d| {
                self.diags.push(d);
                Val::Error
            })
        } else {
            self.instantiate(item, f)
        };
        self.pop_frame();
        out
    }

    /// A parameter's value inside the body: the declared type where one is
    /// given (so `x: f32[N]` is a tensor even when a literal was passed).
    fn param_value(&mut self, p: &ast::Param, arg: Val) -> Val {
        match (&p.ty, &arg) {
            (Some(t), Val::Float(_) | Val::Int(_)) if matches!(t.kind, ast::TypeKind::Tensor { .. }) => {
                self.eval_type(t, Unbound::Reject).unwrap_or(Val::Error)
            }
            _ => arg,
        }
    }

    fn default_value(&mut self, p: &ast::Param) -> Val {
        match &p.default {
            Some(e) => self.expr(e),
            None => Val::Error,
        }
    }

    /// No declared return type: check the body with the arguments' types.
    fn instantiate(&mut self, item: ItemRef, f: &ast::FnDecl) -> Val {
        if self.instantiating.contains(&item) {
            return Val::Error;
        }
        self.instantiating.push(item);
        let v = self.block(&f.body);
        self.instantiating.pop();
        v
    }

    // ---- models -----------------------------------------------------------

    /// `Linear(784, hidden)`: bind the model's parameters.
    pub(super) fn instantiate_model(&mut self, item: ItemRef, args: Vec<ArgVal>, call: Span) -> Val {
        let ast::Item::Model(m) = self.item(item) else { return Val::Error };
        if let Some(d) = self.model_class_applied(m, &args) {
            return self.error(d);
        }
        let Some(slots) = self.bind_args(&m.name.name, &Self::param_specs(&m.params), args, call) else {
            return Val::Error;
        };
        self.record_use(item, call);
        self.push_frame(item.module);
        let mut bound = Vec::new();
        for (p, slot) in m.params.iter().zip(slots) {
            let (val, at) = match slot {
                Some(a) => (a.val, a.span),
                None => (self.default_value(p), p.name.span),
            };
            if let Some(t) = &p.ty
                && let Err(why) = self.match_type(t, &val, at)
            {
                let d = Diag::error(format!("argument `{}` of model `{}`: {why}", p.name.name, m.name.name))
                    .at(at, format!("this is {}", self.show(&val)))
                    .label(t.span, "declared here");
                self.diags.push(why.explain(d));
                // The model's body must not see the mistyped value: each use
                // would report the same mistake again. Bind poison instead.
                bound.push((p.name.name.clone(), Val::Error));
                continue;
            }
            bound.push((p.name.name.clone(), val));
        }
        self.pop_frame();
        Val::Model(Rc::new(ModelInst { item, name: m.name.name.clone(), args: bound }))
    }

    /// `Linear(x)`: a model definition called on a tensor, as if it were a
    /// function. Its parameters are sizes, not inputs; say so, rather than
    /// report the missing ones.
    fn model_class_applied(&self, m: &ast::ModelDecl, args: &[ArgVal]) -> Option<Diag> {
        let mut next = 0;
        for a in args {
            let p = match &a.name {
                None => {
                    next += 1;
                    m.params.get(next - 1)
                }
                Some(n) => m.params.iter().find(|p| p.name.name == n.name),
            };
            let Some(p) = p else { continue };
            let declared_tensor = p.ty.as_ref().is_some_and(|t| matches!(t.kind, ast::TypeKind::Tensor { .. }));
            if !matches!(a.val, Val::Tensor(_)) || declared_tensor {
                continue;
            }
            let name = &m.name.name;
            let text = self.program.sources.text(a.span);
            let input =
                if !text.is_empty() && text.chars().all(|c| c.is_alphanumeric() || c == '_') { text } else { "x" };
            let field: String = name.chars().next().map(|c| c.to_lowercase().collect()).unwrap_or_default();
            let mut d = Diag::error(format!("parameter `{}` of model `{name}` got a tensor", p.name.name))
                .at(a.span, format!("this is {}", self.show(&a.val)))
                .label(p.name.span, format!("`{}` is a parameter of the model, not an input", p.name.name));
            if m.forward.is_some() {
                d = d.help(format!(
                    "`{name}(...)` makes a model; to apply one to a tensor, declare a field `{field}: {name}(...)` \
                     in your model and call `{field}({input})`"
                ));
            }
            return Some(d);
        }
        None
    }

    /// The names a model's forward and methods see: its parameters and fields.
    pub(super) fn model_env(&mut self, inst: &ModelInst) -> Env {
        let ast::Item::Model(m) = self.item(inst.item) else { return Vec::new() };
        self.push_frame(inst.item.module);
        let mut env: Env = Vec::new();
        for (p, (name, val)) in m.params.iter().zip(&inst.args) {
            self.bind(name, val.clone(), p.name.span);
            env.push((name.clone(), val.clone(), p.name.span));
        }
        for field in &m.fields {
            let val = self.field_value(field);
            self.bind(&field.name.name, val.clone(), field.name.span);
            env.push((field.name.name.clone(), val, field.name.span));
        }
        self.pop_frame();
        env
    }

    /// A model call `m(x)`: its forward with the model's names in scope.
    pub(super) fn call_model(&mut self, inst: &ModelInst, args: Vec<ArgVal>, call: Span) -> Val {
        let layer = self.layer.take();
        let ast::Item::Model(m) = self.item(inst.item) else { return Val::Error };
        let Some(fwd) = &m.forward else {
            return self.error(
                Diag::error(format!("model `{}` has no forward function", m.name.name))
                    .at(call, "called here")
                    .label(m.name.span, "defined here")
                    .help("add `fn (x: ...) -> ... { ... }` to the model"),
            );
        };
        let env = self.model_env(inst);
        if let Some(head) = output_layer(m, fwd) {
            self.heads.insert(call, head);
        }
        self.layer = layer;
        self.call_fn(inst.item, fwd, &env, args, call)
    }
}

/// The field whose call makes a forward's result (`... |> l2`), else the
/// declared return type.
fn output_layer(m: &ast::ModelDecl, fwd: &ast::FnDecl) -> Option<Span> {
    let mut e = &*fwd.body.tail;
    while let ast::ExprKind::Block(b) = &e.kind {
        e = &b.tail;
    }
    if let ast::ExprKind::Call { callee, .. } = &e.kind
        && let ast::ExprKind::Name(n) = &callee.kind
        && let Some(f) = m.fields.iter().find(|f| &f.name.name == n)
    {
        return Some(f.name.span);
    }
    fwd.ret.as_ref().map(|t| t.span)
}
