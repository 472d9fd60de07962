//! Expressions → IR nodes or compile-time values.

use super::{LResult, Lowerer, MAX_STACK, Model, ParamDecl, Val, at, check_size};
use crate::arith::{self, Scalar};
use crate::builtins::normalize;
use crate::diag::Diag;
use crate::ir::dims::{self, Sizes};
use crate::ir::{BinaryOp, DType, NodeId, Origin, Type, UnaryOp};
use crate::resolve::ItemRef;
use crate::span::Span;
use crate::syntax::ast::{self, BinOp, Expr, ExprKind, FieldKind, IndexItem, Stmt, UnOp};
use std::rc::Rc;

/// An argument after evaluation.
pub(crate) struct Arg {
    pub name: Option<String>,
    pub val: Val,
    pub span: Span,
}

impl<'p> Lowerer<'p> {
    /// An expression's value; a tensor over [`super::MAX_ELEMENTS`] is an
    /// error here, at the expression that makes it.
    pub(crate) fn expr(&mut self, e: &Expr) -> LResult<Val> {
        // A call is where its function is named: in `x |> conv1 |> relu`
        // written over lines, each layer's own line.
        let site = match &e.kind {
            ExprKind::Call { callee, .. } => callee.span,
            _ => e.span,
        };
        let outer = self.at_site(site);
        let v = self.expr_inner(e);
        self.g.set_origin(outer);
        let v = v?;
        if let Val::Node(n) = &v {
            check_size(&self.g.node(*n).ty.shape, e.span)?;
        }
        Ok(v)
    }

    /// Makes `span` the origin of the nodes to come if it lies in a user's
    /// file: time spent in a library layer belongs to the user's line that
    /// called it. Returns the origin to restore.
    pub(crate) fn at_site(&mut self, span: Span) -> Origin {
        let outer = self.g.current_origin();
        let user = self.program.sources.get(span.file).path.is_some();
        let site = if user { Some(span) } else { outer.span };
        self.g.set_origin(Origin { span: site, inner: Some(span), ..outer });
        outer
    }

    fn expr_inner(&mut self, e: &Expr) -> LResult<Val> {
        Ok(match &e.kind {
            ExprKind::Int(v) => Val::Int(*v),
            ExprKind::Float(v) => Val::Float(*v),
            ExprKind::Bool(b) => Val::Bool(*b),
            ExprKind::Str(s) => Val::Str(s.clone()),
            ExprKind::Name(n) => self.lookup(n, e.span)?,
            ExprKind::Unary(op, x) => {
                let v = self.expr(x)?;
                self.unary(*op, v, e.span)?
            }
            ExprKind::Binary(op, a, b) => {
                let (va, vb) = (self.expr(a)?, self.expr(b)?);
                self.binary(*op, va, vb, e.span)?
            }
            ExprKind::Call { callee, args } => self.call(callee, args, e.span)?,
            ExprKind::Field { base, name } => {
                let v = self.expr(base)?;
                self.field(v, name)?
            }
            ExprKind::Index { base, items } => {
                let v = self.expr(base)?;
                self.index(v, items, e.span)?
            }
            ExprKind::List(xs) => Val::List(xs.iter().map(|x| self.expr(x)).collect::<LResult<_>>()?),
            ExprKind::Record(entries) => {
                Val::Record(entries.iter().map(|(k, v)| Ok((k.name.clone(), self.expr(v)?))).collect::<LResult<_>>()?)
            }
            ExprKind::Block(b) => self.block(b)?,
            ExprKind::If { cond, then, els } => match self.expr(cond)? {
                Val::Bool(true) => self.block(then)?,
                Val::Bool(false) => self.expr(els)?,
                _ => return Err(Diag::error("`if` needs a compile-time bool").at(cond.span, "here")),
            },
        })
    }

    pub(crate) fn block(&mut self, b: &ast::Block) -> LResult<Val> {
        self.scopes.push(Default::default());
        let out = self.block_inner(b);
        self.scopes.pop();
        out
    }

    pub(crate) fn block_inner(&mut self, b: &ast::Block) -> LResult<Val> {
        for s in &b.stmts {
            match s {
                Stmt::Let { name, value, .. } => {
                    let v = self.expr(value)?;
                    self.bind(&name.name, v);
                }
                Stmt::Assign { name, value } => {
                    let v = self.expr(value)?;
                    self.assign(&name.name, v, value.span)?;
                }
                Stmt::Assert { cond, message } => self.assert(cond, message.as_deref())?,
            }
        }
        self.expr(&b.tail)
    }

    /// `assert p < 1.0, "..."`: false is an error naming the values the
    /// condition read, so `p = 1.5` shows up beside the message.
    fn assert(&mut self, cond: &ast::Expr, message: Option<&str>) -> LResult<()> {
        match self.expr(cond)? {
            Val::Bool(true) => Ok(()),
            Val::Bool(false) => {
                let label = arith::falsity(cond, |n| self.lookup(n, cond.span).ok().as_ref().and_then(scalar));
                Err(Diag::error(message.unwrap_or("assertion failed").to_string()).at(cond.span, label))
            }
            v => {
                Err(Diag::error(format!("`assert` needs a compile-time bool, found {}", kind(&v)))
                    .at(cond.span, "here"))
            }
        }
    }

    /// An optimizer's `m = ...` binds the state's new value in the update's
    /// own scope (the tail and the states are read there); a model's
    /// `running_mean = ...` gives the buffer a new value for the rest of the
    /// step, however deeply nested the assignment (`if training { ... }`).
    fn assign(&mut self, name: &str, v: Val, span: Span) -> LResult<()> {
        let bound = self.scopes.iter().rev().find_map(|s| s.get(name).cloned());
        let Some(Val::Buffer(i)) = bound else {
            self.bind(name, v);
            return Ok(());
        };
        let input = self.buffers[i].input;
        let shape = self.shape(input);
        let n = self.node(&v, Some(self.dtype(input)), span)?;
        self.buffers[i].value = self.g.broadcast_to(n, &shape).map_err(at(span))?;
        Ok(())
    }

    // ---- scalars and tensors ------------------------------------------------

    /// A value as a node; weak scalars take `like`'s dtype.
    pub(crate) fn node(&mut self, v: &Val, like: Option<DType>, span: Span) -> LResult<NodeId> {
        let scalar = |dtype| Type::new(dtype, Vec::<usize>::new());
        Ok(match v {
            Val::Node(n) => *n,
            Val::Int(i) => self.g.constant(*i as f64, scalar(like.unwrap_or(DType::I32))),
            Val::Float(f) => self.g.constant(*f, scalar(like.filter(|d| *d == DType::F32).unwrap_or(DType::F32))),
            Val::Bool(b) => self.g.constant(f64::from(u8::from(*b)), scalar(DType::Bool)),
            other => return Err(Diag::error(format!("expected a tensor, found {}", kind(other))).at(span, "here")),
        })
    }

    pub(crate) fn dtype(&self, n: NodeId) -> DType {
        self.g.node(n).ty.dtype
    }

    pub(crate) fn shape(&self, n: NodeId) -> Vec<usize> {
        self.g.node(n).ty.shape.clone()
    }

    fn unary(&mut self, op: UnOp, v: Val, span: Span) -> LResult<Val> {
        if let Some(x) = scalar(&v) {
            return arith::unary(op, x).map(from_scalar).map_err(|f| {
                let msg = if f == arith::Fault::Overflow { "integer overflow in `-`" } else { "invalid operand" };
                Diag::error(msg).at(span, format!("`{}` of {x}", if op == UnOp::Neg { "-" } else { "!" }))
            });
        }
        Ok(match (op, v) {
            (UnOp::Neg, v) => {
                let n = self.node(&v, None, span)?;
                Val::Node(self.g.unary(UnaryOp::Neg, n).map_err(at(span))?)
            }
            (UnOp::Not, v) => {
                let n = self.node(&v, None, span)?;
                Val::Node(self.g.unary(UnaryOp::Not, n).map_err(at(span))?)
            }
        })
    }

    pub(crate) fn binary(&mut self, op: BinOp, a: Val, b: Val, span: Span) -> LResult<Val> {
        if let (Some(x), Some(y)) = (scalar(&a), scalar(&b)) {
            return arith::binary(op, x, y)
                .map(from_scalar)
                .map_err(|f| Diag::error(f.message(op, x, y)).at(span, "here"));
        }
        if op == BinOp::MatMul {
            let (x, y) = (self.node(&a, None, span)?, self.node(&b, None, span)?);
            return Ok(Val::Node(self.g.matmul(x, y).map_err(at(span))?));
        }
        let like = match (&a, &b) {
            (Val::Node(n), _) | (_, Val::Node(n)) => Some(self.dtype(*n)),
            _ => None,
        };
        let (x, y) = (self.node(&a, like, span)?, self.node(&b, like, span)?);
        let out = match op {
            BinOp::Rem => self.rem(x, y, span)?,
            _ => self.g.broadcast_binary(ir_binop(op), x, y).map_err(at(span))?,
        };
        Ok(Val::Node(out))
    }

    /// `a % b` as `a - floor(a / b) * b`, with the sign of `b` as for
    /// constants (i32 division floors already).
    fn rem(&mut self, x: NodeId, y: NodeId, span: Span) -> LResult<NodeId> {
        let g = &mut self.g;
        let q = g.broadcast_binary(BinaryOp::Div, x, y).map_err(at(span))?;
        let q = if g.node(q).ty.dtype == DType::F32 { g.unary(UnaryOp::Floor, q).map_err(at(span))? } else { q };
        let p = g.broadcast_binary(BinaryOp::Mul, q, y).map_err(at(span))?;
        g.broadcast_binary(BinaryOp::Sub, x, p).map_err(at(span))
    }

    // ---- calls --------------------------------------------------------------

    fn call(&mut self, callee: &Expr, args: &[ast::Arg], span: Span) -> LResult<Val> {
        if let ExprKind::Field { base, name } = &callee.kind {
            let recv = self.expr(base)?;
            match &recv {
                Val::Module(_) | Val::Dataset(_) | Val::Record(_) => {}
                Val::Model(m) => {
                    if let Some(f) = self.method(m, &name.name) {
                        let argv = self.args(args)?;
                        return self.call_fn(m.item, f, &m.env.clone(), argv, span);
                    }
                }
                _ => {
                    let f = self.lookup(&name.name, name.span)?;
                    let mut argv = vec![Arg { name: None, val: recv, span: base.span }];
                    argv.extend(self.args(args)?);
                    return self.apply(f, argv, span);
                }
            }
        }
        let f = self.expr(callee)?;
        let argv = self.args(args)?;
        self.apply(f, argv, span)
    }

    fn method(&self, m: &Model, name: &str) -> Option<&'p ast::FnDecl> {
        let program: &'p crate::resolve::Program = self.program;
        let ast::Item::Model(decl) = program.item(m.item.module, m.item.index) else { return None };
        decl.methods.iter().find(|f| f.name.as_ref().is_some_and(|n| n.name == name))
    }

    pub(crate) fn args(&mut self, args: &[ast::Arg]) -> LResult<Vec<Arg>> {
        args.iter()
            .map(|a| {
                Ok(Arg { name: a.name.as_ref().map(|n| n.name.clone()), val: self.expr(&a.value)?, span: a.value.span })
            })
            .collect()
    }

    pub(crate) fn apply(&mut self, f: Val, args: Vec<Arg>, span: Span) -> LResult<Val> {
        match f {
            Val::Fn(item) => {
                let ast::Item::Fn(decl) = self.item(item) else { return Err(not_callable(span)) };
                self.call_fn(item, decl, &[], args, span)
            }
            Val::Builtin(b) => self.builtin(b, args, span),
            Val::ModelClass(item) => self.instantiate(item, args, span, None),
            Val::Model(m) => self.call_model(&m, args, span),
            Val::Stack(models) => {
                let mut x = args;
                for m in &models {
                    let out = self.call_model(m, x, span)?;
                    x = vec![Arg { name: None, val: out, span }];
                }
                Ok(x.pop().map(|a| a.val).unwrap_or(Val::Int(0)))
            }
            Val::OptimizerClass(item) => {
                Ok(Val::Optimizer(item, self.named(item_params(self.item(item)), args, span)?))
            }
            Val::Split(item, name, _) => {
                let params = [("batch", None), ("shuffle", None), ("last", None), ("take", None)];
                let bound = self.bind_plain(&params, args, span)?;
                Ok(Val::Split(item, name, bound))
            }
            _ => Err(not_callable(span)),
        }
    }

    /// Bind arguments to `(name, default)` pairs by position and name.
    pub(crate) fn bind_plain(
        &mut self,
        params: &[(&str, Option<Val>)],
        args: Vec<Arg>,
        _span: Span,
    ) -> LResult<Vec<(String, Val)>> {
        let names: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
        let slots = slots(&names, args)?;
        let bound = params
            .iter()
            .zip(slots)
            .filter_map(|((n, d), s)| s.map(|(v, _)| v).or(d.clone()).map(|v| (n.to_string(), v)));
        Ok(bound.collect())
    }

    /// Bind arguments to declared parameters, evaluating defaults in `module`.
    fn named(&mut self, params: &[ast::Param], args: Vec<Arg>, span: Span) -> LResult<Vec<(String, Val)>> {
        let names: Vec<&str> = params.iter().map(|p| p.name.name.as_str()).collect();
        let slots = slots(&names, args)?;
        let mut out = Vec::new();
        for (p, s) in params.iter().zip(slots) {
            let v = match (s.map(|(v, _)| v), &p.default) {
                (Some(v), _) => v,
                (None, Some(d)) => self.expr(d)?,
                (None, None) => return Err(Diag::error(format!("missing argument `{}`", p.name.name)).at(span, "here")),
            };
            let v = match (&p.ty, v) {
                (Some(ast::Type { kind: ast::TypeKind::Float, .. }), Val::Int(i)) => Val::Float(i as f64),
                (_, v) => v,
            };
            out.push((p.name.name.clone(), v));
        }
        Ok(out)
    }

    pub(crate) fn call_fn(
        &mut self,
        item: ItemRef,
        f: &ast::FnDecl,
        env: &[(String, Val)],
        args: Vec<Arg>,
        span: Span,
    ) -> LResult<Val> {
        if self.depth > 200 {
            return Err(Diag::error("calls nest too deeply (recursion?)").at(span, "here"));
        }
        let module = item.module;
        self.in_frame(module, env, |l| {
            let bound = l.named(&f.params, args, span)?;
            for (p, (n, v)) in f.params.iter().zip(bound) {
                if let (Some(t), Val::Node(node)) = (&p.ty, &v) {
                    l.bind_dims(t, *node);
                }
                l.bind(&n, v);
            }
            l.block(&f.body)
        })
        .map_err(in_call(span))
    }

    /// A signature's dim variables (`B`, `N`) as ints, read off the
    /// argument's concrete shape (the checker proved they agree).
    fn bind_dims(&mut self, t: &ast::Type, node: NodeId) {
        let ast::TypeKind::Tensor { shape, .. } = &t.kind else { return };
        let actual = self.shape(node);
        let fixed = shape.iter().filter(|i| matches!(i, ast::ShapeItem::Dim(_))).count();
        let offset = actual.len().saturating_sub(fixed);
        let dims = shape.iter().filter_map(|i| if let ast::ShapeItem::Dim(d) = i { Some(d) } else { None });
        for (d, n) in dims.zip(&actual[offset..]) {
            if let ast::DimExpr::Name(id) = d
                && self.lookup(&id.name, id.span).is_err()
            {
                self.bind(&id.name, Val::Int(*n as i64));
            }
        }
    }

    // ---- models -------------------------------------------------------------

    /// A model instance with its parameters created as graph inputs under `path`.
    pub(crate) fn instantiate(
        &mut self,
        item: ItemRef,
        args: Vec<Arg>,
        span: Span,
        path: Option<&str>,
    ) -> LResult<Val> {
        let ast::Item::Model(m) = self.item(item) else { return Err(not_callable(span)) };
        let bound = self.in_frame(item.module, &[], |l| l.named(&m.params, args, span)).map_err(in_call(span))?;
        let path = path.unwrap_or("").to_string();
        let env = self.in_frame(item.module, &bound, |l| l.model_fields(m, &path)).map_err(in_call(span))?;
        let mut all = bound;
        all.extend(env);
        Ok(Val::Model(Rc::new(Model { item, name: m.name.name.clone(), path, env: all })))
    }

    fn model_fields(&mut self, m: &ast::ModelDecl, path: &str) -> LResult<Vec<(String, Val)>> {
        let mut out = Vec::new();
        for f in &m.fields {
            let sub = if path.is_empty() { f.name.name.clone() } else { format!("{path}.{}", f.name.name) };
            let v = match &f.kind {
                FieldKind::Param { ty, init } => self.param(&sub, ty, init.as_ref(), false)?,
                FieldKind::Buffer { ty, init } => self.param(&sub, ty, init.as_ref(), true)?,
                FieldKind::Sub(e) => self.sub_model(e, &sub)?,
                FieldKind::Repeat { model, count } => {
                    let n = match self.expr(count)? {
                        Val::Int(n) if (0..=MAX_STACK).contains(&n) => n as usize,
                        Val::Int(n) if n > MAX_STACK => {
                            return Err(Diag::error(format!("a stack of {n} models is too large"))
                                .at(count.span, format!("the limit is {MAX_STACK}")));
                        }
                        _ => return Err(Diag::error("a stack needs a non-negative int count").at(count.span, "here")),
                    };
                    let mut models = Vec::new();
                    for i in 0..n {
                        match self.sub_model(model, &format!("{sub}.{i}"))? {
                            Val::Model(m) => models.push(m),
                            _ => return Err(Diag::error("expected a model").at(model.span, "here")),
                        }
                    }
                    Val::Stack(models)
                }
            };
            self.bind(&f.name.name, v.clone());
            out.push((f.name.name.clone(), v));
        }
        Ok(out)
    }

    /// A sub-model field: the constructor call is re-evaluated under `path`.
    fn sub_model(&mut self, e: &Expr, path: &str) -> LResult<Val> {
        let (callee, args) = match &e.kind {
            ExprKind::Call { callee, args } => (callee.as_ref(), self.args(args)?),
            _ => (e, Vec::new()),
        };
        match self.expr(callee)? {
            Val::ModelClass(item) => self.instantiate(item, args, e.span, Some(path)),
            _ => Err(Diag::error("expected a model like `Linear(784, 128)`").at(e.span, "here")),
        }
    }

    /// A parameter (or buffer) field: a graph input named by its path.
    fn param(&mut self, name: &str, ty: &ast::Type, init: Option<&Expr>, buffer: bool) -> LResult<Val> {
        let (dtype, shape) = self.concrete_type(ty)?;
        check_size(&shape, ty.span)?;
        let init = match init {
            Some(e) => self.init_value(e, &shape)?,
            None => return Err(Diag::error(format!("parameter `{name}` needs an initialiser")).at(ty.span, "here")),
        };
        let role = if buffer { crate::ir::InputRole::State } else { crate::ir::InputRole::Param };
        let node = self.g.input(name, role, Type::new(dtype, shape.clone())).map_err(at(ty.span))?;
        self.params.push(ParamDecl { name: name.to_string(), dtype, shape, init, buffer });
        if !buffer {
            return Ok(Val::Node(node));
        }
        self.buffers.push(super::BufferVal { name: name.to_string(), input: node, value: node });
        Ok(Val::Buffer(self.buffers.len() - 1))
    }

    pub(crate) fn init_value(&mut self, e: &Expr, shape: &[usize]) -> LResult<super::Init> {
        match self.expr(e)? {
            Val::Init(i) => Ok(i),
            Val::Fn(item) => {
                let ast::Item::Fn(f) = self.item(item) else { return Err(not_callable(e.span)) };
                let arg = Arg { name: None, val: Val::Dims(shape.to_vec()), span: e.span };
                match self.call_fn(item, f, &[], vec![arg], e.span)? {
                    Val::Init(i) => Ok(i),
                    _ => Err(Diag::error("expected an initialiser").at(e.span, "here")),
                }
            }
            _ => Err(Diag::error("expected an initialiser").at(e.span, "here")),
        }
    }

    /// A type annotation with every dim a number.
    pub(crate) fn concrete_type(&mut self, t: &ast::Type) -> LResult<(DType, Vec<usize>)> {
        let ast::TypeKind::Tensor { dtype, shape } = &t.kind else {
            return Err(Diag::error("expected a tensor type").at(t.span, "here"));
        };
        let mut dims = Vec::new();
        for item in shape {
            match item {
                ast::ShapeItem::Dim(d) => dims.push(self.dim(d)?),
                ast::ShapeItem::Rest(_, s) => {
                    return Err(Diag::error("`...` cannot be made concrete here").at(*s, "here"));
                }
            }
        }
        Ok((*dtype, dims))
    }

    pub(crate) fn dim(&mut self, d: &ast::DimExpr) -> LResult<usize> {
        let v = match d {
            ast::DimExpr::Int(v, _) => *v,
            ast::DimExpr::Name(id) => match self.lookup(&id.name, id.span)? {
                Val::Int(v) => v,
                _ => return Err(Diag::error(format!("`{}` is not an int", id.name)).at(id.span, "here")),
            },
            ast::DimExpr::Bin(a, op, b, span) => {
                let (x, y) = (self.dim(a)? as i64, self.dim(b)? as i64);
                let v = match op {
                    ast::DimOp::Add => x.checked_add(y),
                    ast::DimOp::Sub => x.checked_sub(y),
                    ast::DimOp::Mul => x.checked_mul(y),
                    ast::DimOp::Div if y != 0 => Some(x / y),
                    ast::DimOp::Div => return Err(Diag::error("division by zero").at(*span, "here")),
                };
                v.ok_or_else(|| Diag::error("integer overflow in a dim").at(*span, "does not fit in 64 bits"))?
            }
        };
        usize::try_from(v).map_err(|_| Diag::error(format!("dim {v} is negative")).at(d.span(), "here"))
    }

    pub(crate) fn call_model(&mut self, m: &Rc<Model>, args: Vec<Arg>, span: Span) -> LResult<Val> {
        let ast::Item::Model(decl) = self.item(m.item) else { return Err(not_callable(span)) };
        let Some(fwd) = &decl.forward else {
            return Err(Diag::error(format!("model `{}` has no forward function", m.name)).at(span, "here"));
        };
        // Written in the experiment (depth 0), not inside a function: the
        // same call in the loss and a metric is one forward pass (Keras'
        // `y_pred`). Calls inside functions each draw their own randoms.
        let nodes: Option<Vec<NodeId>> =
            args.iter().map(|a| if let Val::Node(n) = a.val { Some(n) } else { None }).collect();
        let key = nodes.filter(|_| self.depth == 0 && args.iter().all(|a| a.name.is_none()));
        if let Some(nodes) = &key
            && let Some((_, _, v)) = self.experiment_calls.iter().find(|(p, n, _)| Rc::ptr_eq(p, m) && n == nodes)
        {
            return Ok(v.clone());
        }
        let at = self.layers.len();
        let depth = self.layer_depth;
        self.layers.push(super::LayerCall { path: m.path.clone(), model: m.name.clone(), depth, output: None });
        self.layer_depth += 1;
        let out = self.call_fn(m.item, fwd, &m.env.clone(), args, span);
        self.layer_depth = depth;
        let out = out?;
        if let Val::Node(n) = out {
            self.layers[at].output = self.g.ty(n).ok();
        }
        if let Some(nodes) = key {
            self.experiment_calls.push((m.clone(), nodes, out.clone()));
        }
        Ok(out)
    }

    // ---- access ---------------------------------------------------------------

    fn field(&mut self, v: Val, name: &ast::Ident) -> LResult<Val> {
        let missing = || Diag::error(format!("no field `{}`", name.name)).at(name.span, "here");
        match v {
            Val::Model(m) => {
                let v = m.env.iter().find(|(n, _)| *n == name.name).map(|(_, v)| v.clone()).ok_or_else(missing)?;
                Ok(self.current(v))
            }
            Val::Module(m) => match self.program.module(m).scope.get(&name.name).copied() {
                Some((def, _)) => self.def_value(def, name.span),
                None => Err(missing()),
            },
            Val::Dataset(item) => Ok(Val::Split(item, name.name.clone(), Vec::new())),
            Val::Dims(d) if name.name == "rank" => Ok(Val::Int(d.len() as i64)),
            Val::Node(n) if name.name == "shape" => Ok(Val::Dims(self.shape(n))),
            Val::Record(r) => r.into_iter().find(|(k, _)| *k == name.name).map(|(_, v)| v).ok_or_else(missing),
            _ => Err(missing()),
        }
    }

    fn index(&mut self, v: Val, items: &[IndexItem], span: Span) -> LResult<Val> {
        match v {
            Val::Node(n) => self.index_node(n, items, span),
            Val::Dims(d) => Ok(Val::Int(d[self.one_index(items, d.len(), span)?] as i64)),
            Val::List(xs) => Ok(xs[self.one_index(items, xs.len(), span)?].clone()),
            Val::Stack(ms) => Ok(Val::Model(ms[self.one_index(items, ms.len(), span)?].clone())),
            _ => Err(Diag::error("cannot index this").at(span, "here")),
        }
    }

    /// `xs[i]` on dims, lists and stacks: one constant index, maybe negative.
    fn one_index(&mut self, items: &[IndexItem], len: usize, span: Span) -> LResult<usize> {
        let [IndexItem::Expr(e)] = items else {
            return Err(Diag::error("this takes one integer index").at(span, "here"));
        };
        let i = self.int(e)?;
        normalize(i, len)
            .ok_or_else(|| Diag::error(format!("index {i} is out of range for {len} items")).at(e.span, "here"))
    }

    pub(crate) fn int(&mut self, e: &Expr) -> LResult<i64> {
        match self.expr(e)? {
            Val::Int(i) => Ok(i),
            _ => Err(Diag::error("expected a constant int").at(e.span, "here")),
        }
    }

    fn index_node(&mut self, n: NodeId, items: &[IndexItem], span: Span) -> LResult<Val> {
        if let [IndexItem::Expr(e)] = items
            && let Val::Node(ids) = self.expr(e)?
        {
            return Ok(Val::Node(self.g.gather(n, ids, 0).map_err(at(span))?));
        }
        let shape = self.shape(n);
        let explicit = items.iter().filter(|i| !matches!(i, IndexItem::Ellipsis(_))).count();
        let (mut start, mut end, mut step) = (vec![0; shape.len()], shape.clone(), vec![1; shape.len()]);
        let mut out_shape = Vec::new();
        let mut axis = 0;
        for item in items {
            match item {
                IndexItem::Ellipsis(_) => {
                    let skip = shape.len().saturating_sub(explicit);
                    out_shape.extend_from_slice(&shape[axis..axis + skip]);
                    axis += skip;
                }
                IndexItem::Expr(e) => {
                    let i = self.int(e)?;
                    let k = normalize(i, shape[axis]).ok_or_else(|| {
                        Diag::error(format!("index {i} out of range for size {}", shape[axis])).at(e.span, "here")
                    })?;
                    (start[axis], end[axis]) = (k, k + 1);
                    axis += 1;
                }
                IndexItem::Slice { start: s, end: e, step: st, span } => {
                    let mut bound = |x: &Option<Expr>| x.as_ref().map(|x| self.int(x)).transpose();
                    let (lo, hi, k) = (bound(s)?, bound(e)?, bound(st)?.unwrap_or(1));
                    let r = dims::slice(&mut Sizes, &(shape[axis] as i64), lo, hi, k)
                        .map_err(|m| Diag::error(m).at(*span, "bad slice"))?;
                    let (lo, len) = (r.start as usize, r.len as usize);
                    (start[axis], end[axis], step[axis]) = (lo, lo + (len - 1) * k as usize + 1, k as usize);
                    out_shape.push(len);
                    axis += 1;
                }
            }
        }
        out_shape.extend_from_slice(&shape[axis..]);
        let s = self.g.slice(n, &start, &end, &step).map_err(at(span))?;
        Ok(Val::Node(self.g.reshape(s, &out_shape).map_err(at(span))?))
    }
}

/// Positional, then named arguments into one slot per parameter. The
/// checker has already reported every binding mistake; this guards the rest.
/// `args` bound to `params` by the rule the checker applied (`crate::bind`).
pub(crate) fn slots(params: &[&str], args: Vec<Arg>) -> LResult<Vec<Option<(Val, Span)>>> {
    let specs: Vec<(&str, bool)> = params.iter().map(|p| (*p, false)).collect();
    let names: Vec<Option<&str>> = args.iter().map(|a| a.name.as_deref()).collect();
    let (slots, errors) = crate::bind::bind(&specs, &names);
    if let Some(e) = errors.first() {
        let at = args.first().map_or(Span::new(crate::span::FileId(0), 0, 0), |a| a.span);
        return Err(Diag::error(format!("internal compiler error: arguments the checker accepted do not bind: {e:?}"))
            .at(at, "in this call"));
    }
    let mut args: Vec<Option<Arg>> = args.into_iter().map(Some).collect();
    Ok(slots.into_iter().map(|s| s.and_then(|i| args[i].take()).map(|a| (a.val, a.span))).collect())
}

fn item_params(item: &ast::Item) -> &[ast::Param] {
    match item {
        ast::Item::Optimizer(o) => &o.params,
        ast::Item::Model(m) => &m.params,
        ast::Item::Fn(f) => &f.params,
        _ => &[],
    }
}

/// An error inside another file (std) gets a label at the call that led
/// there, once: the user's line is what they can change.
pub(crate) fn in_call(span: Span) -> impl Fn(Diag) -> Diag {
    move |d| {
        let elsewhere = d.primary.as_ref().is_some_and(|p| p.span.file != span.file);
        let labelled = d.secondary.iter().any(|l| l.span.file == span.file);
        if elsewhere && !labelled { d.label(span, "in this call") } else { d }
    }
}

fn not_callable(span: Span) -> Diag {
    Diag::error("this value cannot be called").at(span, "here")
}

pub(crate) fn kind(v: &Val) -> &'static str {
    match v {
        Val::Node(_) => "a tensor",
        Val::Int(_) => "an int",
        Val::Float(_) => "a float",
        Val::Bool(_) => "a bool",
        Val::Str(_) => "a string",
        _ => "a compile-time value",
    }
}

/// A compile-time value as an operand of [`crate::arith`].
fn scalar(v: &Val) -> Option<Scalar> {
    match v {
        Val::Int(i) => Some(Scalar::Int(*i)),
        Val::Float(f) => Some(Scalar::Float(*f)),
        Val::Bool(b) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

fn from_scalar(s: Scalar) -> Val {
    match s {
        Scalar::Int(i) => Val::Int(i),
        Scalar::Float(f) => Val::Float(f),
        Scalar::Bool(b) => Val::Bool(b),
    }
}

fn ir_binop(op: BinOp) -> BinaryOp {
    match op {
        BinOp::Or => BinaryOp::Or,
        BinOp::And => BinaryOp::And,
        BinOp::Eq => BinaryOp::Eq,
        BinOp::Ne => BinaryOp::Ne,
        BinOp::Lt => BinaryOp::Lt,
        BinOp::Le => BinaryOp::Le,
        BinOp::Gt => BinaryOp::Gt,
        BinOp::Ge => BinaryOp::Ge,
        BinOp::Add => BinaryOp::Add,
        BinOp::Sub => BinaryOp::Sub,
        BinOp::Mul | BinOp::MatMul => BinaryOp::Mul,
        BinOp::Div | BinOp::Rem => BinaryOp::Div,
        BinOp::Pow => BinaryOp::Pow,
    }
}
