//! Expressions: the typing rule of every operator and construct.

use super::call::ArgVal;
use super::dim::{BroadcastError, Dim, Shape};
use super::spec::Noted;
use super::val::{Classes, TensorTy, Val};
use super::{Checker, expected};
use crate::arith::{self, Kind, Scalar};
use crate::diag::{Diag, did_you_mean};
use crate::span::Span;
use crate::syntax::ast::{self, BinOp, DType, Expr, ExprKind, IndexItem, Stmt, UnOp};

impl Checker<'_> {
    pub(super) fn expr(&mut self, e: &Expr) -> Val {
        match &e.kind {
            ExprKind::Int(v) => Val::Int(Some(Dim::constant(*v))),
            ExprKind::Float(v) => Val::Float(Some(*v)),
            ExprKind::Bool(b) => Val::Bool(Some(*b)),
            ExprKind::Str(s) => Val::Str(s.clone()),
            ExprKind::Name(n) => match self.lookup(n) {
                Some((v, _)) => v,
                None => self.unknown_name(n, e.span),
            },
            ExprKind::Unary(op, x) => {
                let v = self.expr(x);
                self.unary(*op, v, e.span)
            }
            ExprKind::Binary(op, a, b) => {
                let (va, vb) = (self.expr(a), self.expr(b));
                self.binary(*op, (va, a.span), (vb, b.span), e.span)
            }
            ExprKind::Call { callee, args } => {
                let v = self.call(callee, args, e.span);
                self.note_type(e.span, Noted::Call { callee: callee.span }, &v);
                v
            }
            ExprKind::Field { base, name } => {
                let v = self.expr(base);
                self.field(v, name, base.span)
            }
            ExprKind::Index { base, items } => {
                let v = self.expr(base);
                self.index(v, items, base.span, e.span)
            }
            ExprKind::List(xs) => Val::List(xs.iter().map(|x| self.expr(x)).collect()),
            ExprKind::Record(entries) => self.record(entries),
            ExprKind::Block(b) => self.block(b),
            ExprKind::If { cond, then, els } => self.if_expr(cond, then, els),
        }
    }

    fn record(&mut self, entries: &[(ast::Ident, Expr)]) -> Val {
        let mut out: Vec<(String, Val)> = Vec::new();
        for (k, v) in entries {
            if out.iter().any(|(n, _)| *n == k.name) {
                self.diags.push(Diag::error(format!("`{}` appears twice in this record", k.name)).at(k.span, "again"));
            }
            let val = self.expr(v);
            out.push((k.name.clone(), val));
        }
        Val::Record(out)
    }

    pub(super) fn block(&mut self, b: &ast::Block) -> Val {
        self.push_scope();
        for s in &b.stmts {
            match s {
                Stmt::Let { name, ty, value } => {
                    let v = self.expr(value);
                    let v = match ty {
                        Some(t) => self.annotated(t, v, value.span),
                        None => v,
                    };
                    self.note_type(name.span, Noted::Binding(name.name.clone()), &v);
                    self.bind(&name.name, v, name.span);
                }
                Stmt::Assign { name, value } => {
                    let v = self.expr(value);
                    self.assign(name, v, value.span);
                }
                Stmt::Assert { cond, message } => self.assert(cond, message.as_deref()),
            }
        }
        let v = self.expr(&b.tail);
        self.pop_scope();
        v
    }

    /// An assertion is on compile-time values; those known only when the
    /// step is lowered (a parameter's, in a generic definition) are
    /// asserted there.
    fn assert(&mut self, cond: &Expr, message: Option<&str>) {
        match self.expr(cond) {
            Val::Bool(Some(false)) => {
                let label = arith::falsity(cond, |n| self.lookup(n).and_then(|(v, _)| known(&v)));
                let d = Diag::error(message.unwrap_or("assertion failed").to_string()).at(cond.span, label);
                self.diags.push(d);
            }
            Val::Bool(_) | Val::Error => {}
            v => {
                let d = expected("a compile-time bool", &self.show(&v), cond.span)
                    .help("`assert` checks constants and parameters when the program is compiled");
                self.diags.push(d);
            }
        }
    }

    /// `let h: f32[B, 128] = ...`: the annotation must hold exactly.
    fn annotated(&mut self, t: &ast::Type, v: Val, at: Span) -> Val {
        if let Err(why) = self.match_type(t, &v, at) {
            let d = Diag::error(format!("type annotation does not hold: {why}"))
                .at(at, format!("this is {}", self.show(&v)))
                .label(t.span, "annotation");
            return self.error(why.explain(d));
        }
        v
    }

    /// `m = ...` in an optimizer's update, `running_mean = ...` in a
    /// model: the new value of a state or a buffer.
    fn assign(&mut self, name: &ast::Ident, v: Val, at: Span) {
        let state = self
            .frames
            .last()
            .and_then(|f| f.states.as_ref())
            .and_then(|s| s.iter().find(|(n, _)| *n == name.name).map(|(_, at)| *at));
        let Some(declared) = state else {
            let d = Diag::error(format!("cannot assign to `{}`", name.name))
                .at(name.span, "not an optimizer state or a model buffer")
                .help("values are immutable: bind a new name with `let`; only an optimizer's `state`s and a model's `buffer`s are assigned");
            self.diags.push(d);
            return;
        };
        // A `let` of the same name would take the assignment, and the state
        // or buffer would keep its old value without a word.
        if let Some((_, Some(def))) = self.lookup(&name.name)
            && def != declared
        {
            let d = Diag::error(format!("cannot assign to `{}`: a local binding shadows it", name.name))
                .at(name.span, "this would assign the local")
                .label(def, "the local binding")
                .label(declared, "what it shadows")
                .help("rename the local binding");
            self.diags.push(d);
            return;
        }
        if let Some((old, def)) = self.lookup(&name.name)
            && !v.is_error()
            && !same_type(&old, &v)
        {
            let mut d = Diag::error(format!("`{}` must keep its declared type {}", name.name, self.show(&old)))
                .at(at, format!("this is {}", self.show(&v)));
            if let Some(def) = def {
                d = d.label(def, "declared here");
            }
            self.diags.push(d);
            return;
        }
        // Still the state: a later assignment must find the declaration.
        self.bind(&name.name, v, declared);
    }

    fn if_expr(&mut self, cond: &Expr, then: &ast::Block, els: &Expr) -> Val {
        // `if cin == cout { x } else { project(x) }`: two dims that the
        // condition says are equal in one branch.
        let (c, equal) = match &cond.kind {
            ExprKind::Binary(op @ (BinOp::Eq | BinOp::Ne), l, r) => {
                let (vl, vr) = (self.expr(l), self.expr(r));
                let dims = match (&vl, &vr) {
                    (Val::Int(Some(x)), Val::Int(Some(y))) => Some((*op == BinOp::Eq, x.clone(), y.clone())),
                    _ => None,
                };
                (self.binary(*op, (vl, l.span), (vr, r.span), cond.span), dims)
            }
            _ => (self.expr(cond), None),
        };
        if !matches!(c, Val::Bool(_) | Val::Error) {
            let help = "`if` picks code at compile time; for elementwise choice use `where(cond, a, b)`";
            let d = if let Val::Tensor(_) = &c {
                // A comparison of tensors is a tensor too, even a scalar one:
                // its value is only known when the step runs.
                Diag::error("expected a compile-time `bool`, found a run-time tensor")
                    .at(cond.span, format!("this is {}, known only at run time", self.show(&c)))
            } else {
                expected("a compile-time `bool`", &self.show(&c), cond.span)
            };
            self.diags.push(d.help(help));
        }
        let (a, b) = (self.block(then), self.expr(els));
        match c {
            Val::Bool(Some(true)) => a,
            Val::Bool(Some(false)) => b,
            _ if a.is_error() || b.is_error() => Val::Error,
            _ if !same_type(&a, &b)
                && let Some(v) = equal.and_then(|(eq, x, y)| equated(&a, &b, eq, &x, &y)) =>
            {
                v
            }
            // Either branch may run: ids keep a count both branches share.
            _ if same_type(&a, &b) => match (a, &b) {
                (Val::Tensor(t), Val::Tensor(u)) => {
                    Val::Tensor(TensorTy { classes: super::val::Classes::shared(&t.classes, &u.classes), ..t })
                }
                // Either value: known only if both branches agree.
                (Val::Int(x), Val::Int(y)) => Val::Int(x.filter(|x| Some(x) == y.as_ref())),
                (Val::Bool(x), Val::Bool(y)) => Val::Bool(x.filter(|x| Some(x) == y.as_ref())),
                (Val::Float(x), Val::Float(y)) => Val::Float(x.filter(|x| Some(x) == y.as_ref())),
                // A number beside a scalar tensor: the kind is known, the value not.
                (Val::Int(_), _) => Val::Int(None),
                (Val::Float(_), _) => Val::Float(None),
                (a, _) => a,
            },
            _ => self.error(
                Diag::error(format!("the branches of this `if` differ: {} and {}", self.show(&a), self.show(&b)))
                    .at(then.span, format!("this is {}", self.show(&a)))
                    .label(els.span, format!("this is {}", self.show(&b))),
            ),
        }
    }

    // ---- operators ----------------------------------------------------------

    fn unary(&mut self, op: UnOp, v: Val, span: Span) -> Val {
        if let Some(x) = known(&v) {
            match arith::unary(op, x) {
                Ok(y) => return from_scalar(y),
                Err(arith::Fault::Overflow) => {
                    return self.error(Diag::error("integer overflow in `-`").at(span, "does not fit in 64 bits"));
                }
                // Reported below, with what the operand is.
                Err(_) => {}
            }
        }
        match (op, v) {
            (_, Val::Error) => Val::Error,
            (UnOp::Neg, Val::Int(d)) => Val::Int(d.map(|d| d.neg())),
            (UnOp::Neg, Val::Float(_)) => Val::Float(None),
            (UnOp::Not, Val::Bool(_)) => Val::Bool(None),
            // `-ids` are no longer ids.
            (UnOp::Neg, Val::Tensor(t)) if matches!(t.dtype, DType::F32 | DType::I32) => Val::tensor(t.dtype, t.shape),
            (UnOp::Not, Val::Tensor(t)) if t.dtype == DType::Bool => Val::Tensor(t),
            (op, v) => {
                let what = if op == UnOp::Neg { "a number" } else { "a bool" };
                let sym = if op == UnOp::Neg { "-" } else { "!" };
                self.error(expected(what, &self.show(&v), span).help(format!("`{sym}` needs {what}")))
            }
        }
    }

    /// The span of the operator between two operands (`+` in `x + h`), or
    /// of the callee's name for a call (`where`), so the primary label does
    /// not cover the operands' labels (miette draws those wrongly).
    pub(super) fn op_span(&self, sym: &str, sa: Span, sb: Span, whole: Span) -> Span {
        let sources = &self.program.sources;
        if sa.file == sb.file && sa.end <= sb.start {
            let between = sources.text(Span { file: sa.file, start: sa.end, end: sb.start });
            if let Some(i) = between.find(sym) {
                let start = sa.end + i as u32;
                return Span { file: sa.file, start, end: start + sym.len() as u32 };
            }
        }
        let text = sources.text(whole);
        match text.find('(') {
            Some(i) if i > 0 && text[..i].chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.') => {
                Span { file: whole.file, start: whole.start, end: whole.start + i as u32 }
            }
            _ => whole,
        }
    }

    pub(super) fn binary(&mut self, op: BinOp, a: (Val, Span), b: (Val, Span), span: Span) -> Val {
        let span = self.op_span(op.symbol(), a.1, b.1, span);
        match (&a.0, &b.0) {
            (Val::Error, _) | (_, Val::Error) => Val::Error,
            (Val::Tensor(_), _) | (_, Val::Tensor(_)) => self.tensor_binary(op, a, b, span),
            _ => self.const_binary(op, a, b, span),
        }
    }

    /// Compile-time arithmetic: known values fold by [`arith`], exactly as
    /// lowering folds them; unknown ints stay symbolic so sizes can be
    /// computed.
    fn const_binary(&mut self, op: BinOp, a: (Val, Span), b: (Val, Span), span: Span) -> Val {
        if let (Some(x), Some(y)) = (known(&a.0), known(&b.0)) {
            return match arith::binary(op, x, y) {
                Ok(v) => from_scalar(v),
                Err(f) => {
                    let d = self.fault(f, op, (x, y), (&a, &b), span);
                    self.error(d)
                }
            };
        }
        let out = match (kind_of(&a.0), kind_of(&b.0)) {
            (Some(ka), Some(kb)) => arith::kind(op, ka, kb),
            _ => None,
        };
        match out {
            Some(Kind::Int) => self.symbolic_int(op, &a.0, &b.0, span),
            Some(Kind::Float) => Val::Float(None),
            Some(Kind::Bool) => Val::Bool(None),
            None => {
                let d = self.invalid_operands(op, &a, &b, span);
                self.error(d)
            }
        }
    }

    /// An int operation on a value that is known only symbolically.
    fn symbolic_int(&mut self, op: BinOp, a: &Val, b: &Val, span: Span) -> Val {
        let (Val::Int(Some(x)), Val::Int(Some(y))) = (a, b) else { return Val::Int(None) };
        match op {
            BinOp::Add => Val::Int(Some(x.add(y))),
            BinOp::Sub => Val::Int(Some(x.sub(y))),
            BinOp::Mul => Val::Int(Some(x.mul(y))),
            // Sizes divide exactly (`d / heads`).
            BinOp::Div => match self.quotient(x, y, span) {
                Ok(d) => Val::Int(Some(d)),
                Err(d) => self.error(d),
            },
            BinOp::Rem
            | BinOp::Pow
            | BinOp::Or
            | BinOp::And
            | BinOp::Eq
            | BinOp::Ne
            | BinOp::Lt
            | BinOp::Le
            | BinOp::Gt
            | BinOp::Ge
            | BinOp::MatMul => Val::Int(None),
        }
    }

    fn fault(
        &self,
        f: arith::Fault,
        op: BinOp,
        (x, y): (Scalar, Scalar),
        ab: (&(Val, Span), &(Val, Span)),
        span: Span,
    ) -> Diag {
        let msg = f.message(op, x, y);
        match f {
            arith::Fault::DivisionByZero => Diag::error(msg).at(ab.1.1, "this is 0"),
            arith::Fault::Overflow => {
                Diag::error(msg).at(span, "overflows").help(format!("ints are 64-bit: at most {}", i64::MAX))
            }
            arith::Fault::NotFinite => Diag::error(msg)
                .at(span, "not a finite number")
                .help("compile-time floats are finite: check the operands"),
            arith::Fault::Operands => self.invalid_operands(op, ab.0, ab.1, span),
        }
    }

    fn invalid_operands(&self, op: BinOp, (a, sa): &(Val, Span), (b, sb): &(Val, Span), span: Span) -> Diag {
        Diag::error(format!("`{}` cannot combine {} and {}", op.symbol(), self.show(a), self.show(b)))
            .at(span, "invalid operands")
            .label(*sa, format!("this is {}", self.show(a)))
            .label(*sb, format!("this is {}", self.show(b)))
    }

    fn tensor_binary(&mut self, op: BinOp, a: (Val, Span), b: (Val, Span), span: Span) -> Val {
        if op == BinOp::MatMul {
            return self.matmul(a, b, span);
        }
        let (Some(ta), Some(tb)) = (self.as_tensor(&a.0, &b.0, a.1), self.as_tensor(&b.0, &a.0, b.1)) else {
            return Val::Error;
        };
        let dtype = match self.binary_dtype(op, ta.dtype, tb.dtype, (&a, &b), span) {
            Some(d) => d,
            None => return Val::Error,
        };
        match ta.shape.broadcast(&tb.shape) {
            Ok(shape) => Val::Tensor(TensorTy { dtype, shape, classes: id_quotient(op, &ta, &b.0, span) }),
            Err(e) => self.broadcast_error(op.symbol(), e, (&ta, a.1), (&tb, b.1), span),
        }
    }

    /// A weak scalar (`2.0`, `n`) takes the dtype of the tensor beside it.
    pub(super) fn as_tensor(&mut self, v: &Val, other: &Val, at: Span) -> Option<TensorTy> {
        let other_dtype = if let Val::Tensor(t) = other { Some(t.dtype) } else { None };
        match (v, other_dtype) {
            (Val::Tensor(t), _) => Some(t.clone()),
            (Val::Int(_), Some(d)) if d != DType::Bool => {
                Some(TensorTy { dtype: d, shape: Shape::scalar(), classes: None })
            }
            (Val::Int(_), _) => Some(TensorTy { dtype: DType::I32, shape: Shape::scalar(), classes: None }),
            (Val::Float(_), Some(DType::I32)) => {
                self.diags.push(
                    Diag::error("a float mixed with an `i32` tensor")
                        .at(at, "a float")
                        .help("cast the tensor with `f32(x)` first"),
                );
                None
            }
            (Val::Float(_), _) => Some(TensorTy { dtype: DType::F32, shape: Shape::scalar(), classes: None }),
            (Val::Bool(_), _) => Some(TensorTy { dtype: DType::Bool, shape: Shape::scalar(), classes: None }),
            (v, _) => {
                let d = expected("a tensor or a number", &self.show(v), at);
                self.diags.push(d);
                None
            }
        }
    }

    fn binary_dtype(
        &mut self,
        op: BinOp,
        a: DType,
        b: DType,
        (va, vb): (&(Val, Span), &(Val, Span)),
        span: Span,
    ) -> Option<DType> {
        use BinOp::*;
        if a != b {
            let d = Diag::error(format!("dtype mismatch: `{}` on {} and {}", op.symbol(), a.name(), b.name()))
                .at(span, "mixed dtypes")
                .label(va.1, format!("this is {}", self.show(&va.0)))
                .label(vb.1, format!("this is {}", self.show(&vb.0)))
                .help(format!(
                    "convert one side explicitly, e.g. `{}(...)`",
                    if a == DType::F32 { a.name() } else { b.name() }
                ));
            self.diags.push(d);
            return None;
        }
        let ok = match op {
            Add | Sub | Mul | Div | Rem | Pow => matches!(a, DType::F32 | DType::I32),
            Lt | Le | Gt | Ge => matches!(a, DType::F32 | DType::I32 | DType::U8),
            Eq | Ne => true,
            And | Or => a == DType::Bool,
            MatMul => a == DType::F32,
        };
        if !ok {
            let d = Diag::error(format!("`{}` is not defined on {} tensors", op.symbol(), a.name()))
                .at(span, "unsupported dtype")
                .help(if a == DType::U8 { "convert with `f32(x)` first" } else { "cast to a numeric dtype first" });
            self.diags.push(d);
            return None;
        }
        Some(match op {
            Lt | Le | Gt | Ge | Eq | Ne => DType::Bool,
            _ => a,
        })
    }

    pub(super) fn broadcast_error(
        &mut self,
        what: &str,
        e: BroadcastError,
        (a, sa): (&TensorTy, Span),
        (b, sb): (&TensorTy, Span),
        span: Span,
    ) -> Val {
        let (sha, shb) = (self.show_shape(&a.shape), self.show_shape(&b.shape));
        let msg = match e {
            BroadcastError::Dims(_, x, y) => {
                format!("shapes {sha} and {shb} do not broadcast: {} vs {}", self.show_dim(&x), self.show_dim(&y))
            }
            BroadcastError::Rests => format!("shapes {sha} and {shb} do not broadcast: their `...` dims may differ"),
        };
        let d = Diag::error(msg)
            .at(self.op_span(what, sa, sb, span), format!("in this `{what}`"))
            .label(sa, format!("this is {}{sha}", a.dtype.name()))
            .label(sb, format!("this is {}{shb}", b.dtype.name()))
            .help("dims must be equal or 1 (aligned from the right); reshape or unsqueeze one side");
        self.error(d)
    }

    /// `[..., K] @ [K, N]` (any rank on the left, `...` included), and
    /// batched `[..., M, K] @ [..., K, N]` with broadcast batch dims.
    fn matmul(&mut self, (a, sa): (Val, Span), (b, sb): (Val, Span), span: Span) -> Val {
        let (Val::Tensor(ta), Val::Tensor(tb)) = (&a, &b) else {
            let bad = if matches!(a, Val::Tensor(_)) { (&b, sb) } else { (&a, sa) };
            let d = expected("a tensor", &self.show(bad.0), bad.1).help("`@` multiplies matrices");
            return self.error(d);
        };
        for (t, s, min) in [(ta, sa, 1), (tb, sb, 2)] {
            if t.dtype != DType::F32 || t.shape.dims.len() < min {
                let d = Diag::error(format!(
                    "`@` needs f32 operands with a matrix on the right, found {}",
                    self.show(&Val::Tensor(t.clone()))
                ))
                .at(s, "this operand")
                .help(if t.dtype == DType::F32 {
                    "use `unsqueeze` to make a vector a matrix, or `*` and `sum` for a dot product"
                } else {
                    "cast it with `f32(...)` first"
                });
                return self.error(d);
            }
        }
        let (la, lb) = (ta.shape.dims.len(), tb.shape.dims.len());
        let (k1, k2, n) = (&ta.shape.dims[la - 1], &tb.shape.dims[lb - 2], &tb.shape.dims[lb - 1]);
        if k1 != k2 {
            let d = Diag::error(format!("matmul inner dims differ: {} vs {}", self.show_dim(k1), self.show_dim(k2)))
                .at(span, "in this `@`")
                .label(sa, format!("this is f32{}", self.show_shape(&ta.shape)))
                .label(sb, format!("this is f32{}", self.show_shape(&tb.shape)))
                .help("the last dim of the left side must equal the second-to-last of the right side");
            return self.error(d);
        }
        if lb == 2 && tb.shape.rest.is_none() {
            let mut dims = ta.shape.dims[..la - 1].to_vec();
            dims.push(n.clone());
            return Val::tensor(DType::F32, Shape { rest: ta.shape.rest, dims });
        }
        if la < 2 {
            let d = Diag::error("a batched `@` needs a matrix on the left").at(sa, "a vector");
            return self.error(d);
        }
        let batch_a = Shape { rest: ta.shape.rest, dims: ta.shape.dims[..la - 2].to_vec() };
        let batch_b = Shape { rest: tb.shape.rest, dims: tb.shape.dims[..lb - 2].to_vec() };
        match batch_a.broadcast(&batch_b) {
            Ok(mut batch) => {
                batch.dims.extend([ta.shape.dims[la - 2].clone(), n.clone()]);
                Val::tensor(DType::F32, batch)
            }
            Err(e) => self.broadcast_error("@", e, (ta, sa), (tb, sb), span),
        }
    }

    // ---- access -------------------------------------------------------------

    fn field(&mut self, base: Val, name: &ast::Ident, base_span: Span) -> Val {
        match &base {
            Val::Error => Val::Error,
            Val::Model(inst) => {
                let env = self.model_env(inst);
                match env.iter().find(|(n, _, _)| *n == name.name) {
                    Some((_, v, _)) => v.clone(),
                    None => {
                        let mut d = Diag::error(format!("model `{}` has no field `{}`", inst.name, name.name))
                            .at(name.span, "unknown field");
                        if let Some(h) = did_you_mean(&name.name, env.iter().map(|(n, _, _)| n.as_str())) {
                            d = d.help(h);
                        }
                        self.error(d)
                    }
                }
            }
            Val::Module(m) => match self.program.module(*m).scope.get(&name.name).copied() {
                Some((def, _)) => self.def_value(def),
                None => {
                    let module = self.program.module(*m);
                    let mut d = Diag::error(format!("module `{}` has no item `{}`", module.name, name.name))
                        .at(name.span, "not found");
                    if let Some(h) = did_you_mean(&name.name, module.scope.keys().map(String::as_str)) {
                        d = d.help(h);
                    }
                    self.error(d)
                }
            },
            Val::Dataset(item) => self.split(*item, name),
            Val::Dims(d) if name.name == "rank" => Val::Int(d.as_ref().map(|d| Dim::constant(d.len() as i64))),
            Val::Tensor(t) if name.name == "shape" => Val::Dims(t.shape.rest.is_none().then(|| t.shape.dims.clone())),
            Val::Record(entries) => match entries.iter().find(|(k, _)| *k == name.name) {
                Some((_, v)) => v.clone(),
                None => {
                    self.error(Diag::error(format!("no `{}` in this record", name.name)).at(name.span, "unknown key"))
                }
            },
            other => {
                let d = Diag::error(format!("{} has no field `{}`", self.show(other), name.name))
                    .at(name.span, "unknown field")
                    .label(base_span, format!("this is {}", self.show(other)))
                    .help("to call a function on a value, write `x.f(args)`, which means `f(x, args)`");
                self.error(d)
            }
        }
    }

    fn call(&mut self, callee: &Expr, args: &[ast::Arg], span: Span) -> Val {
        // `x.f(a)` is a method of a model, or `f(x, a)` for any function.
        if let ExprKind::Field { base, name } = &callee.kind {
            let recv = self.expr(base);
            if let Some(v) = self.method_call(recv, base.span, name, args, span) {
                return v;
            }
        }
        let f = self.expr(callee);
        let argv = self.args(args);
        // `x |> l2`: a mistyped input names the layer and its declaration.
        if let (ExprKind::Name(n), Val::Model(_) | Val::Stack(..)) = (&callee.kind, &f) {
            self.layer = self.lookup(n).and_then(|(_, def)| def).filter(|d| !d.is_empty()).map(|def| (n.clone(), def));
        }
        self.apply(f, callee.span, argv, span)
    }

    pub(super) fn args(&mut self, args: &[ast::Arg]) -> Vec<ArgVal> {
        args.iter().map(|a| ArgVal { name: a.name.clone(), val: self.expr(&a.value), span: a.value.span }).collect()
    }

    /// Returns `None` when `base.name` is not a method call (a field or module member).
    fn method_call(
        &mut self,
        recv: Val,
        recv_span: Span,
        name: &ast::Ident,
        args: &[ast::Arg],
        span: Span,
    ) -> Option<Val> {
        match &recv {
            Val::Module(_) | Val::Dataset(_) | Val::Record(_) => None,
            Val::Model(inst) => {
                let ast::Item::Model(m) = self.item(inst.item) else { return Some(Val::Error) };
                if let Some(f) = m.methods.iter().find(|f| f.name.as_ref().is_some_and(|n| n.name == name.name)) {
                    let env = self.model_env(inst);
                    let argv = self.args(args);
                    return Some(self.call_fn(inst.item, f, &env, argv, span));
                }
                None
            }
            Val::Error => {
                self.args(args);
                Some(Val::Error)
            }
            _ => {
                let f = match self.lookup(&name.name) {
                    Some((f, _)) => f,
                    None => return Some(self.unknown_name(&name.name, name.span)),
                };
                let mut argv = vec![ArgVal { name: None, val: recv, span: recv_span }];
                argv.extend(self.args(args));
                Some(self.apply(f, name.span, argv, span))
            }
        }
    }

    /// Call a value with evaluated arguments.
    pub(super) fn apply(&mut self, f: Val, fspan: Span, args: Vec<ArgVal>, span: Span) -> Val {
        match f {
            Val::Error => Val::Error,
            Val::Fn(item) => {
                let ast::Item::Fn(decl) = self.item(item) else { return Val::Error };
                self.call_fn(item, decl, &Vec::new(), args, span)
            }
            Val::Builtin(b) => self.builtin(b, args, span),
            Val::ModelClass(item) => self.instantiate_model(item, args, span),
            Val::Model(inst) => self.call_model(&inst, args, span),
            Val::Stack(inst, _) => self.call_stack(&inst, args, span),
            Val::OptimizerClass(item) => self.configure_optimizer(item, args, span),
            Val::Split(item, name) => self.configure_split(item, &name, args, span),
            other => {
                let d = Diag::error(format!("{} is not callable", self.show(&other)))
                    .at(fspan, "called here")
                    .help("only functions, models, optimizers and dataset splits can be called");
                self.error(d)
            }
        }
    }

    /// `x |> blocks`: every block maps the input type to itself.
    fn call_stack(&mut self, inst: &std::rc::Rc<super::val::ModelInst>, args: Vec<ArgVal>, span: Span) -> Val {
        let input = args.first().map(|a| a.val.clone());
        let out = self.call_model(inst, args, span);
        match input {
            Some(i) if !out.is_error() && !i.is_error() && !same_type(&i, &out) => {
                let d = Diag::error(format!(
                    "a stack of `{}` must map its input type to itself, but {} becomes {}",
                    inst.name,
                    self.show(&i),
                    self.show(&out)
                ))
                .at(span, "applied in sequence here");
                self.error(d)
            }
            _ => out,
        }
    }

    fn index(&mut self, base: Val, items: &[IndexItem], base_span: Span, span: Span) -> Val {
        match base {
            Val::Error => Val::Error,
            Val::Tensor(t) => self.index_tensor(t, items, base_span, span),
            Val::Stack(inst, _) => Val::Model(inst),
            Val::Dims(d) => self.index_dims(d, items, span),
            Val::List(xs) => match items {
                [IndexItem::Expr(e)] => match self.const_index(e) {
                    Some(i) if (i as usize) < xs.len() => xs[i as usize].clone(),
                    _ => Val::Error,
                },
                _ => Val::Error,
            },
            other => {
                let d = Diag::error(format!("{} cannot be indexed", self.show(&other))).at(base_span, "indexed here");
                self.error(d)
            }
        }
    }
}

/// Two values have the same type (compile-time values compare by kind).
/// The type of an `if` whose branches differ only by two dims `x` and `y`
/// that are equal wherever one branch runs (`then` when `eq`, else `els`):
/// that branch's type with `x` written as `y` (or `y` as `x`) must be the
/// other's, which is then the type of the whole.
fn equated(then: &Val, els: &Val, eq: bool, x: &Dim, y: &Dim) -> Option<Val> {
    let (Val::Tensor(t), Val::Tensor(e)) = (then, els) else { return None };
    let (under, other) = if eq { (t, e) } else { (e, t) };
    let lone = |d: &Dim| d.syms().next().filter(|s| Dim::sym(*s) == *d);
    let rewrites = [(lone(x), y), (lone(y), x)];
    rewrites.into_iter().find_map(|(s, to)| {
        let s = s?;
        let dims = under.shape.dims.iter().map(|d| d.subst(&|v| (v == s).then(|| to.clone()))).collect();
        let moved = TensorTy { shape: Shape { rest: under.shape.rest, dims }, ..under.clone() };
        same_type(&Val::Tensor(moved), &Val::Tensor(other.clone())).then(|| Val::Tensor(other.clone()))
    })
}

pub(super) fn same_type(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Tensor(x), Val::Tensor(y)) => x == y,
        (Val::Int(_), Val::Int(_)) | (Val::Float(_), Val::Float(_)) | (Val::Bool(_), Val::Bool(_)) => true,
        (Val::Tensor(t), Val::Float(_) | Val::Int(_)) | (Val::Float(_) | Val::Int(_), Val::Tensor(t)) => {
            t.shape.is_scalar() && t.dtype == DType::F32
        }
        (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// A compile-time value the checker knows exactly.
pub(super) fn known(v: &Val) -> Option<Scalar> {
    match v {
        Val::Int(Some(d)) => d.as_const().map(Scalar::Int),
        Val::Float(Some(f)) => Some(Scalar::Float(*f)),
        Val::Bool(Some(b)) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

fn kind_of(v: &Val) -> Option<Kind> {
    match v {
        Val::Int(_) => Some(Kind::Int),
        Val::Float(_) => Some(Kind::Float),
        Val::Bool(_) => Some(Kind::Bool),
        _ => None,
    }
}

fn from_scalar(s: Scalar) -> Val {
    match s {
        Scalar::Int(i) => Val::Int(Some(Dim::constant(i))),
        Scalar::Float(f) => Val::Float(Some(f)),
        Scalar::Bool(b) => Val::Bool(Some(b)),
    }
}

/// Ids in `0..C` over a known positive int `k` stay ids: `ids % k` lies in
/// `0..min(C, k)` and `ids / k` (floored) in `0..ceil(C / k)`, so
/// `label % 2` can be a label. Any other arithmetic makes plain integers.
fn id_quotient(op: BinOp, ids: &TensorTy, k: &Val, span: Span) -> Option<Classes> {
    let c = ids.classes.as_ref()?;
    let Val::Int(Some(k)) = k else { return None };
    let k = k.as_const().filter(|&k| k >= 1)?;
    let n = match (op, c.n.as_const()) {
        (BinOp::Rem, Some(c)) => c.min(k),
        (BinOp::Rem, None) => k,
        (BinOp::Div, Some(c)) => (c + k - 1) / k,
        _ => return None,
    };
    Some(Classes { n: Dim::constant(n), at: span })
}
