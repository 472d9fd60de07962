//! The typing rule of each builtin family (the table is `crate::builtins`;
//! the semantics are in grammar/README.md).

use super::call::{ArgVal, ParamSpec};
use super::dim::{Dim, Shape};
use super::val::{Classes, TensorTy, Val};
use super::{Checker, expected};
use crate::builtins::{Builtin, InitKind, OptionDomain, Reduction, normalize};
use crate::diag::Diag;
use crate::ir::dims::{self, Extents, ReshapeError, Target};
use crate::ir::ops::conv::{ConvAttrs, PerDim, conv_shape, window_dim};
use crate::span::Span;
use crate::syntax::ast::DType;

/// What the bare name of builtin `b` evaluates to.
pub(super) fn value(b: Builtin) -> Val {
    // `training` is known only when a step is lowered (train or eval).
    if b == Builtin::Training { Val::Bool(None) } else { Val::Builtin(b) }
}

/// Bound arguments of one builtin call, by parameter position.
struct Args {
    slots: Vec<Option<ArgVal>>,
    call: Span,
}

impl Args {
    fn val(&self, i: usize) -> Val {
        self.slots[i].as_ref().map_or(Val::Error, |a| a.val.clone())
    }
    fn span(&self, i: usize) -> Span {
        self.slots[i].as_ref().map_or(self.call, |a| a.span)
    }
    fn has(&self, i: usize) -> bool {
        self.slots[i].is_some()
    }
}

impl Checker<'_> {
    #[warn(clippy::wildcard_enum_match_arm)] // one arm per family, no fall-through
    pub(super) fn builtin(&mut self, b: Builtin, args: Vec<ArgVal>, call: Span) -> Val {
        let specs: Vec<ParamSpec> =
            b.params().iter().map(|(n, r)| ParamSpec { name: n, required: *r, span: None }).collect();
        let Some(slots) = self.bind_args(b.name(), &specs, args, call) else { return Val::Error };
        let a = Args { slots, call };
        if a.slots.iter().flatten().any(|s| s.val.is_error()) {
            return Val::Error;
        }
        match b {
            Builtin::Unary(op) => self.unary_builtin(op, &a),
            Builtin::Reduce(Reduction::Max | Reduction::Min) if a.has(1) => {
                self.binary(crate::syntax::ast::BinOp::Add, (a.val(0), a.span(0)), (a.val(1), a.span(1)), call)
            }
            Builtin::Reduce(r) => self.reduce(Some(r), &a, 1),
            Builtin::Argmax => self.reduce(None, &a, 1),
            Builtin::Where => self.where_(&a),
            Builtin::Reshape => self.reshape(&a),
            Builtin::Permute => self.permute(&a),
            Builtin::Transpose => self.transpose(&a),
            Builtin::Unsqueeze => self.unsqueeze(true, &a),
            Builtin::Squeeze => self.unsqueeze(false, &a),
            Builtin::Join { stack } => self.concat(b.name(), stack, &a),
            Builtin::Pad => self.pad(&a),
            Builtin::Take => self.take(&a),
            Builtin::OneHot => self.one_hot(&a),
            Builtin::Arange => self.arange(&a),
            Builtin::Random { .. } | Builtin::StopGradient => self.float_tensor(&a, 0).map_or(Val::Error, Val::Tensor),
            Builtin::Patches => self.patches(&a),
            Builtin::Conv => self.conv(&a),
            Builtin::Window { .. } => self.window(&a),
            Builtin::Cast(to) => self.cast(to, &a),
            Builtin::Float => self.float_of(&a),
            Builtin::ShapeOf => self.shape_of(&a),
            Builtin::Prod => self.prod(&a),
            Builtin::Init(InitKind::Uniform | InitKind::Normal | InitKind::Constant) => self.init(&a),
            Builtin::Training => Val::Bool(None),
            Builtin::Source(_) => self.source(b, &a),
        }
    }

    fn arange(&mut self, a: &Args) -> Val {
        match a.val(0) {
            Val::Int(d) => {
                let n = d.unwrap_or_else(|| Dim::sym(self.fresh_sym("n")));
                let classes = Some(Classes { n: n.clone(), at: a.call });
                Val::Tensor(TensorTy { dtype: DType::I32, shape: Shape::of(vec![n]), classes })
            }
            v => self.error(expected("an int", &self.show(&v), a.span(0))),
        }
    }

    fn float_of(&mut self, a: &Args) -> Val {
        match a.val(0) {
            Val::Int(i) => Val::Float(i.and_then(|d| d.as_const()).map(|k| k as f64)),
            Val::Float(f) => Val::Float(f),
            v => self.error(expected("an int or float", &self.show(&v), a.span(0))),
        }
    }

    fn shape_of(&mut self, a: &Args) -> Val {
        match a.val(0) {
            Val::Tensor(t) => Val::Dims(t.shape.rest.is_none().then_some(t.shape.dims)),
            v => self.error(expected("a tensor", &self.show(&v), a.span(0))),
        }
    }

    fn prod(&mut self, a: &Args) -> Val {
        match a.val(0) {
            Val::Dims(Some(d)) => Val::Int(Some(d.iter().fold(Dim::constant(1), |acc, x| acc.mul(x)))),
            Val::Dims(None) => Val::Int(None),
            v => self.error(expected("dims", &self.show(&v), a.span(0))),
        }
    }

    /// An IR unary op: its row says which dtypes it takes.
    fn unary_builtin(&mut self, op: crate::ir::UnaryOp, a: &Args) -> Val {
        let row = op.row();
        match a.val(0) {
            // Folded by the row's own rule, as lowering folds it.
            Val::Int(_) | Val::Float(_) if row.accepts(DType::F32) => {
                let Some(x) = super::expr::known(&a.val(0)).and_then(|s| s.as_f64()) else { return Val::Float(None) };
                match op.fold_f64(x).map(crate::arith::finite) {
                    Some(Err(_)) => {
                        let d = Diag::error(format!("`{}({x:?})` is not a finite number", row.name))
                            .at(a.call, "not a finite number")
                            .help("compile-time floats are finite: check the argument");
                        self.error(d)
                    }
                    y => Val::Float(y.and_then(Result::ok)),
                }
            }
            Val::Tensor(t) if row.accepts(t.dtype) => Val::tensor(t.dtype, t.shape),
            v => {
                let d = Diag::error(format!("`{}` needs an f32 tensor or a number, found {}", row.name, self.show(&v)))
                    .at(a.span(0), "wrong type")
                    .help("cast integer tensors with `f32(x)`");
                self.error(d)
            }
        }
    }

    fn float_tensor(&mut self, a: &Args, i: usize) -> Option<TensorTy> {
        match a.val(i) {
            Val::Tensor(t) if t.dtype == DType::F32 => Some(t),
            v => {
                let d = expected("an f32 tensor", &self.show(&v), a.span(i));
                self.diags.push(d);
                None
            }
        }
    }

    fn tensor(&mut self, a: &Args, i: usize) -> Option<TensorTy> {
        match a.val(i) {
            Val::Tensor(t) => Some(t),
            v => {
                let d = expected("a tensor", &self.show(&v), a.span(i));
                self.diags.push(d);
                None
            }
        }
    }

    /// An axis argument: a constant int, normalised against `rank`; with a
    /// `...` shape only negative axes (counted from the end) are meaningful.
    fn axis(&mut self, v: &Val, span: Span, shape: &Shape, extra: usize) -> Option<usize> {
        let i = match v {
            Val::Int(Some(d)) => d.as_const(),
            _ => None,
        };
        let Some(i) = i else {
            // An axis that already failed was reported where it failed.
            if !v.is_error() {
                self.diags.push(expected("a constant int axis", &self.show(v), span));
            }
            return None;
        };
        let rank = shape.dims.len() + extra;
        if shape.rest.is_some() && i >= 0 {
            let d = Diag::error(format!("axis {i} of a `...` shape is ambiguous"))
                .at(span, "counted from the front")
                .help("count from the end instead: `axis: -1` is the last dim");
            self.diags.push(d);
            return None;
        }
        let k = normalize(i, rank);
        if k.is_none() {
            self.diags.push(Diag::error(format!("axis {i} is out of range for rank {rank}")).at(span, "out of range"));
        }
        k
    }

    /// Reductions: `sum(x)`, `x.mean(axis: 1)`; `r` is `None` for
    /// `argmax(x, axis: -1)`, which takes one axis, the last by default.
    fn reduce(&mut self, r: Option<Reduction>, a: &Args, axis_slot: usize) -> Val {
        let Some(t) = self.tensor(a, 0) else { return Val::Error };
        let arg = r.is_none();
        let out_dtype = if arg { DType::I32 } else { t.dtype };
        let slot = if matches!(r, Some(Reduction::Max | Reduction::Min)) { axis_slot + 1 } else { axis_slot };
        let keepdim = match a.slots.get(slot + 1).and_then(|s| s.as_ref()).map(|s| s.val.clone()) {
            None => false,
            Some(Val::Bool(Some(k))) => k,
            Some(v) => {
                self.diags.push(expected("`true` or `false`", &self.show(&v), a.span(slot + 1)));
                false
            }
        };
        // A bad axis makes the result unknown: poison, so that it does not
        // go on to clash with whatever the result is used as.
        let axes: Option<Vec<usize>> = match a.slots[slot].as_ref().map(|s| (s.val.clone(), s.span)) {
            None if arg => self.axis(&Val::Int(Some(Dim::constant(-1))), a.call, &t.shape, 0).map(|k| vec![k]),
            None => {
                if t.shape.rest.is_some() {
                    return Val::tensor(out_dtype, Shape::scalar());
                }
                Some((0..t.shape.dims.len()).collect())
            }
            Some((Val::List(xs), span)) => {
                // Check every axis, so each bad one is reported.
                let ks: Vec<Option<usize>> = xs.iter().map(|x| self.axis(x, span, &t.shape, 0)).collect();
                ks.into_iter().collect()
            }
            Some((v, span)) => self.axis(&v, span, &t.shape, 0).map(|k| vec![k]),
        };
        let Some(axes) = axes else { return Val::Error };
        if let Some(r @ (Reduction::Sum | Reduction::Mean)) = r
            && t.dtype == DType::Bool
        {
            let d = Diag::error(format!("`{}` of a bool tensor", Builtin::Reduce(r).name()))
                .at(a.span(0), "bool")
                .help("cast with `f32(x)` first");
            return self.error(d);
        }
        let mut dims = Vec::new();
        for (i, d) in t.shape.dims.iter().enumerate() {
            if !axes.contains(&i) {
                dims.push(d.clone());
            } else if keepdim {
                dims.push(Dim::constant(1));
            }
        }
        // argmax over C scores is a class id in 0..C; the max or min of ids
        // is one of them.
        let classes = match (r, axes.as_slice()) {
            (None, [k]) => Some(Classes { n: t.shape.dims[*k].clone(), at: a.call }),
            (Some(Reduction::Max | Reduction::Min), _) => t.classes.clone(),
            (None | Some(Reduction::Sum | Reduction::Mean), _) => None,
        };
        let shape = Shape { rest: t.shape.rest, dims };
        Val::Tensor(TensorTy { dtype: out_dtype, shape, classes })
    }

    fn where_(&mut self, a: &Args) -> Val {
        let cond = match a.val(0) {
            Val::Tensor(t) if t.dtype == DType::Bool => t,
            v => {
                return self.error(
                    expected("a bool tensor", &self.show(&v), a.span(0)).help("build one with a comparison: `x > 0.0`"),
                );
            }
        };
        let (x, y) = (a.val(1), a.val(2));
        let (Some(tx), Some(ty)) = (self.as_tensor(&x, &y, a.span(1)), self.as_tensor(&y, &x, a.span(2))) else {
            return Val::Error;
        };
        if tx.dtype != ty.dtype {
            let d = Diag::error(format!(
                "`where` branches have different dtypes: {} and {}",
                tx.dtype.name(),
                ty.dtype.name()
            ))
            .at(a.span(1), tx.dtype.name())
            .label(a.span(2), ty.dtype.name());
            return self.error(d);
        }
        // Blame the two operands that clash: the condition and a branch, or
        // the two branches.
        let sc = a.span(0);
        let (cx, cy) = (cond.shape.broadcast(&tx.shape), cond.shape.broadcast(&ty.shape));
        let shape = tx.shape.broadcast(&ty.shape).and_then(|s| s.broadcast(&cond.shape));
        match (shape, cx, cy) {
            (Ok(s), ..) => Val::tensor(tx.dtype, s),
            (Err(_), Err(_), _) => match tx.shape.broadcast(&cond.shape) {
                Err(e) => self.broadcast_error("where", e, (&tx, a.span(1)), (&cond, sc), a.call),
                Ok(_) => Val::Error,
            },
            (Err(_), _, Err(_)) => match ty.shape.broadcast(&cond.shape) {
                Err(e) => self.broadcast_error("where", e, (&ty, a.span(2)), (&cond, sc), a.call),
                Ok(_) => Val::Error,
            },
            (Err(e), ..) => self.broadcast_error("where", e, (&tx, a.span(1)), (&ty, a.span(2)), a.call),
        }
    }

    /// Dims given as a list of ints (or a `dims` value).
    fn dims_arg(&mut self, a: &Args, i: usize) -> Option<Vec<Option<Dim>>> {
        match a.val(i) {
            Val::List(xs) => {
                let mut out = Vec::new();
                for x in xs {
                    match x {
                        Val::Int(d) => out.push(d),
                        Val::Error => return None,
                        v => {
                            self.diags.push(expected(
                                "a list of ints",
                                &format!("a list holding {}", self.show(&v)),
                                a.span(i),
                            ));
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Val::Dims(Some(d)) => Some(d.into_iter().map(Some).collect()),
            Val::Dims(None) => None,
            v => {
                self.diags.push(expected("a list of dims like `[B, 784]`", &self.show(&v), a.span(i)));
                None
            }
        }
    }

    /// `x.reshape([-1, c])` of `x: f32[...S, c]`: the leading `...` and any
    /// fixed dims before the kept trailing ones merge into one axis, whose
    /// size is a fresh symbol. Only that form is sound without the rank:
    /// any other reshape of a `...` shape may not keep the element count.
    fn flatten_leading(&mut self, t: &TensorTy, target: &[Option<Dim>], a: &Args) -> Val {
        let minus_one = |d: &Option<Dim>| d.as_ref().and_then(Dim::as_const) == Some(-1);
        let kept = target.get(1..).unwrap_or_default();
        let fits = target.first().is_some_and(minus_one)
            && kept.len() <= t.shape.dims.len()
            && kept.iter().zip(&t.shape.dims[t.shape.dims.len() - kept.len()..]).all(|(k, d)| k.as_ref() == Some(d));
        if !fits {
            let d = Diag::error("cannot reshape a `...` shape: its element count is unknown")
                .at(a.span(0), format!("this is {}{}", t.dtype.name(), self.show_shape(&t.shape)))
                .help("reshape where the caller's concrete shape is known, or merge the leading axes with `reshape([-1, ...trailing dims])`");
            return self.error(d);
        }
        let mut dims = vec![Dim::sym(self.fresh_sym("n"))];
        dims.extend(kept.iter().flatten().cloned());
        Val::tensor(t.dtype, Shape::of(dims))
    }

    fn reshape(&mut self, a: &Args) -> Val {
        let (Some(t), Some(target)) = (self.tensor(a, 0), self.dims_arg(a, 1)) else { return Val::Error };
        if t.shape.rest.is_some() {
            return self.flatten_leading(&t, &target, a);
        }
        let target: Vec<Target<Dim>> = target
            .into_iter()
            .map(|d| match d {
                Some(d) if d.as_const() == Some(-1) => Target::Infer,
                Some(d) => Target::Dim(d),
                None => Target::Dim(Dim::sym(self.fresh_sym("?"))),
            })
            .collect();
        let mut e = SymExtents::new(self, a.span(1));
        let r = dims::reshape(&mut e, &t.shape.dims, &target);
        let failed = e.failed.take();
        match r {
            Ok(dims) => Val::Tensor(t.with_shape(Shape::of(dims))),
            Err(ReshapeError::Holes) => self.error(Diag::error("at most one `-1` in a reshape").at(a.span(1), "here")),
            Err(ReshapeError::Negative(d)) => {
                let d = Diag::error(format!("a dim of {} in a reshape", self.show_dim(&d)))
                    .at(a.span(1), "target shape")
                    .help("dims are sizes, at least 0; `-1` stands for the one inferred from the element count");
                self.error(d)
            }
            Err(ReshapeError::Quotient(m)) => {
                let d = failed.unwrap_or_else(|| Diag::error(m).at(a.span(1), "here"));
                self.error(d)
            }
            Err(ReshapeError::Count { total, product }) => {
                let d = Diag::error(format!(
                    "cannot reshape {}{} into {}: {} elements vs {}",
                    t.dtype.name(),
                    self.show_shape(&t.shape),
                    dims::show_target(&target, |d| self.show_dim(d)),
                    self.show_dim(&total),
                    self.show_dim(&product)
                ))
                .at(a.span(1), "target shape")
                .label(a.span(0), format!("this is {}{}", t.dtype.name(), self.show_shape(&t.shape)))
                .help("a reshape keeps the number of elements");
                self.error(d)
            }
        }
    }

    /// Dims with opaque quotients (`d/h`) can't be compared: the check
    /// happens when the model is instantiated with numbers.
    fn has_opaque(&self, a: &Dim, b: &Dim) -> bool {
        a.syms()
            .chain(b.syms())
            .any(|s| self.sym_names.get(s.0 as usize).is_some_and(|n| n.starts_with('(') || n == "?"))
    }

    fn permute(&mut self, a: &Args) -> Val {
        let Some(t) = self.tensor(a, 0) else { return Val::Error };
        let Some(perm) = self.dims_arg(a, 1) else { return Val::Error };
        let perm: Vec<Option<i64>> = perm.iter().map(|d| d.as_ref().and_then(Dim::as_const)).collect();
        let n = t.shape.dims.len();
        let mut seen = vec![false; n];
        let mut dims = Vec::new();
        for p in &perm {
            match p.and_then(|p| normalize(p, n)) {
                Some(k) if !seen[k] && t.shape.rest.is_none() => {
                    seen[k] = true;
                    dims.push(t.shape.dims[k].clone());
                }
                _ => {
                    let d = Diag::error(format!(
                        "`{:?}` is not a permutation of the {n} axes",
                        perm.iter().map(|p| p.unwrap_or(-99)).collect::<Vec<_>>()
                    ))
                    .at(a.span(1), "bad permutation");
                    return self.error(d);
                }
            }
        }
        if dims.len() != n {
            return self
                .error(Diag::error(format!("a permutation of rank {n} needs {n} axes")).at(a.span(1), "wrong length"));
        }
        Val::Tensor(t.with_shape(Shape::of(dims)))
    }

    fn transpose(&mut self, a: &Args) -> Val {
        let Some(t) = self.tensor(a, 0) else { return Val::Error };
        let get = |i: usize, default: i64| if a.has(i) { a.val(i) } else { Val::Int(Some(Dim::constant(default))) };
        let (va, vb) = (get(1, -2), get(2, -1));
        let (Some(x), Some(y)) = (self.axis(&va, a.span(1), &t.shape, 0), self.axis(&vb, a.span(2), &t.shape, 0))
        else {
            return Val::Error;
        };
        let mut dims = t.shape.dims.clone();
        dims.swap(x, y);
        Val::Tensor(t.with_shape(Shape { rest: t.shape.rest, dims }))
    }

    /// `unsqueeze` (`insert`) or `squeeze`.
    fn unsqueeze(&mut self, insert: bool, a: &Args) -> Val {
        let Some(t) = self.tensor(a, 0) else { return Val::Error };
        let extra = usize::from(insert);
        let Some(k) = self.axis(&a.val(1), a.span(1), &t.shape, extra) else { return Val::Error };
        let mut dims = t.shape.dims.clone();
        if insert {
            dims.insert(k, Dim::constant(1));
        } else if !dims[k].is_one() {
            let d =
                Diag::error(format!("cannot squeeze axis of size {}", self.show_dim(&dims[k]))).at(a.span(1), "not 1");
            return self.error(d);
        } else {
            dims.remove(k);
        }
        Val::Tensor(t.with_shape(Shape { rest: t.shape.rest, dims }))
    }

    fn concat(&mut self, name: &str, stack: bool, a: &Args) -> Val {
        let Val::List(xs) = a.val(0) else {
            return self.error(expected("a list of tensors `[a, b]`", &self.show(&a.val(0)), a.span(0)));
        };
        let mut ts = Vec::new();
        for x in &xs {
            match x {
                Val::Tensor(t) => ts.push(t.clone()),
                Val::Error => return Val::Error,
                v => {
                    return self.error(expected(
                        "a list of tensors",
                        &format!("a list holding {}", self.show(v)),
                        a.span(0),
                    ));
                }
            }
        }
        let Some(first) = ts.first().cloned() else {
            return self.error(Diag::error(format!("`{}` of an empty list", name)).at(a.span(0), "empty"));
        };
        let axis_v = if a.has(1) { a.val(1) } else { Val::Int(Some(Dim::constant(0))) };
        let extra = usize::from(stack);
        let Some(k) = self.axis(&axis_v, a.span(1), &first.shape, extra) else { return Val::Error };
        let mut total = Dim::constant(0);
        for t in &ts {
            let same_rest = t.shape.rest == first.shape.rest && t.shape.dims.len() == first.shape.dims.len();
            let mismatch = !same_rest
                || t.dtype != first.dtype
                || t.shape
                    .dims
                    .iter()
                    .zip(&first.shape.dims)
                    .enumerate()
                    .any(|(i, (x, y))| (extra == 1 || i != k) && x != y);
            if mismatch {
                let d = Diag::error(format!(
                    "`{}` needs matching tensors, found {}{} and {}{}",
                    name,
                    first.dtype.name(),
                    self.show_shape(&first.shape),
                    t.dtype.name(),
                    self.show_shape(&t.shape)
                ))
                .at(a.span(0), "these tensors")
                .help(if extra == 1 {
                    "stacked tensors must have the same shape"
                } else {
                    "all dims but the joined axis must be equal"
                });
                return self.error(d);
            }
            if extra == 0 {
                total = total.add(&t.shape.dims[k]);
            }
        }
        let mut dims = first.shape.dims.clone();
        if extra == 1 {
            dims.insert(k, Dim::constant(ts.len() as i64));
        } else {
            dims[k] = total;
        }
        // Ids joined with ids of the same range are still in that range.
        let classes = ts.iter().fold(first.classes.clone(), |c, t| Classes::shared(&c, &t.classes));
        Val::Tensor(TensorTy { dtype: first.dtype, shape: Shape { rest: first.shape.rest, dims }, classes })
    }

    fn pad(&mut self, a: &Args) -> Val {
        let Some(t) = self.tensor(a, 0) else { return Val::Error };
        let Val::List(rows) = a.val(1) else {
            return self.error(expected("a list of `[lo, hi]` pairs", &self.show(&a.val(1)), a.span(1)));
        };
        if rows.len() > t.shape.dims.len() {
            return self.error(Diag::error("more padding pairs than dims").at(a.span(1), "too many"));
        }
        let mut dims = t.shape.dims.clone();
        let start = dims.len() - rows.len();
        for (i, row) in rows.iter().enumerate() {
            let pair = match row {
                Val::List(p) if p.len() == 2 => match (&p[0], &p[1]) {
                    (Val::Int(Some(lo)), Val::Int(Some(hi))) => Some((lo.clone(), hi.clone())),
                    _ => None,
                },
                _ => None,
            };
            let Some((lo, hi)) = pair else {
                return self.error(expected("`[lo, hi]` pairs of constant ints", "something else", a.span(1)));
            };
            if [&lo, &hi].iter().any(|d| d.as_const().is_some_and(|v| v < 0)) {
                let d = Diag::error(format!("padding `[{}, {}]` is negative", self.show_dim(&lo), self.show_dim(&hi)))
                    .at(a.span(1), "negative padding")
                    .help("padding adds elements: each `[lo, hi]` is at least 0; slice to remove some");
                return self.error(d);
            }
            dims[start + i] = dims[start + i].add(&lo).add(&hi);
        }
        Val::Tensor(t.with_shape(Shape { rest: t.shape.rest, dims }))
    }

    fn take(&mut self, a: &Args) -> Val {
        let (Some(t), Some(ids)) = (self.tensor(a, 0), self.tensor(a, 1)) else { return Val::Error };
        let axis_v = if a.has(2) { a.val(2) } else { Val::Int(Some(Dim::constant(0))) };
        let Some(k) = self.axis(&axis_v, a.span(2), &t.shape, 0) else { return Val::Error };
        self.gather(&t, &ids, k, (a.span(0), a.span(1)))
    }

    fn one_hot(&mut self, a: &Args) -> Val {
        let Some(ids) = self.tensor(a, 0) else { return Val::Error };
        if ids.dtype != DType::I32 {
            return self.error(expected("an i32 tensor of class ids", &self.show(&a.val(0)), a.span(0)));
        }
        let n = match a.val(1) {
            Val::Int(Some(d)) => d,
            Val::Int(None) => Dim::sym(self.fresh_sym("n")),
            v => return self.error(expected("an int", &self.show(&v), a.span(1))),
        };
        if let Err(d) = self.ids_fit("one_hot", &ids, a.span(0), (&n, a.span(1))) {
            return self.error(d);
        }
        let mut shape = ids.shape.clone();
        shape.dims.push(n);
        Val::tensor(DType::F32, shape)
    }

    fn patches(&mut self, a: &Args) -> Val {
        let Some(t) = self.float_tensor(a, 0) else { return Val::Error };
        if t.shape.rest.is_some() || t.shape.dims.len() != 4 {
            let d = expected("an f32[B, H, W, C] tensor (NHWC)", &self.show(&a.val(0)), a.span(0));
            return self.error(d);
        }
        let Some(size) = self.dims_arg(a, 1) else { return Val::Error };
        let dim_or = |v: Val, default: i64| match v {
            Val::Int(d) => d,
            _ => Some(Dim::constant(default)),
        };
        let stride = if a.has(2) { dim_or(a.val(2), 1) } else { Some(Dim::constant(1)) };
        let pad = if a.has(3) { dim_or(a.val(3), 0) } else { Some(Dim::constant(0)) };
        let (Some(stride), Some(pad), [Some(kh), Some(kw)]) = (stride, pad, size.as_slice()) else {
            return self.error(
                Diag::error("`patches` needs `size: [kh, kw]`, `stride` and `padding` as ints").at(a.call, "here"),
            );
        };
        if stride.as_const().is_some_and(|s| s < 1) || pad.as_const().is_some_and(|p| p < 0) {
            return self.error(Diag::error("stride must be ≥ 1 and padding ≥ 0").at(a.call, "here"));
        }
        let d = &t.shape.dims;
        let mut out_dims = vec![d[0].clone()];
        for (dim, k) in [(&d[1], kh), (&d[2], kw)] {
            let span_len = dim.add(&pad.mul(&Dim::constant(2))).sub(k);
            if span_len.as_const().is_some_and(|v| v < 0) {
                let e = Diag::error(format!(
                    "a {}-wide window does not fit in a dim of {}",
                    self.show_dim(k),
                    self.show_dim(dim)
                ))
                .at(a.span(1), "window too large");
                return self.error(e);
            }
            // Windows that do not fit at the end are dropped: floor division.
            let q = match (span_len.as_const(), stride.as_const()) {
                (Some(v), Some(s)) => Dim::constant(v / s),
                _ => match self.quotient(&span_len, &stride, a.call) {
                    Ok(q) => q,
                    Err(e) => return self.error(e),
                },
            };
            out_dims.push(q.add(&Dim::constant(1)));
        }
        out_dims.push(kh.mul(kw).mul(&d[3]));
        Val::tensor(DType::F32, Shape::of(out_dims))
    }

    /// The IR's own shape rule (`ir::ops::conv::conv_shape`), on symbolic dims.
    fn conv(&mut self, a: &Args) -> Val {
        let (Some(x), Some(w)) = (self.float_tensor(a, 0), self.float_tensor(a, 1)) else { return Val::Error };
        for (t, i) in [(&x, 0), (&w, 1)] {
            if t.shape.rest.is_some() {
                let d = expected("a tensor of known rank", &self.show(&a.val(i)), a.span(i));
                return self.error(d.help("an image is [batch, spatial.., channels], a kernel [window.., cin, cout]"));
            }
        }
        let n = x.shape.dims.len().saturating_sub(2);
        let mut per = Vec::new();
        for (i, default) in [(2, 1), (3, 0), (4, 1)] {
            match self.per_dim(a, i, default) {
                Ok(p) => per.push(p),
                Err(d) => return self.error(d),
            }
        }
        let groups = match (a.has(5), a.val(5)) {
            (false, _) => Some(1),
            (true, Val::Int(d)) => d.and_then(|d| d.as_const()),
            (true, v) => return self.error(expected("an int", &self.show(&v), a.span(5))),
        };
        let (Some(per), Some(groups)) = (per.into_iter().collect::<Option<Vec<PerDim>>>(), groups) else {
            // Not known here: lowering checks the concrete sizes.
            let mut dims = vec![x.shape.dims[0].clone()];
            dims.extend((0..n).map(|_| Dim::sym(self.fresh_sym("o"))));
            dims.extend(w.shape.dims.last().cloned());
            return Val::tensor(DType::F32, Shape::of(dims));
        };
        let window: Vec<Option<i64>> = w.shape.dims.iter().take(n).map(Dim::as_const).collect();
        let per: [PerDim; 3] = per.try_into().unwrap_or([PerDim::All(1), PerDim::All(0), PerDim::All(1)]);
        let attrs = match ConvAttrs::from_args(n, &window, per, groups) {
            Ok(at) => at,
            Err(m) => return self.error(Diag::error(m).at(a.call, "in this convolution")),
        };
        let mut e = SymExtents::new(self, a.call);
        match conv_shape(&mut e, &x.shape.dims, &w.shape.dims, &attrs) {
            Ok(dims) => Val::tensor(DType::F32, Shape::of(dims)),
            Err(m) => {
                let d =
                    Diag::error(format!("cannot convolve {} with {}: {m}", self.show(&a.val(0)), self.show(&a.val(1))))
                        .at(a.call, "in this convolution")
                        .help(
                            "images are NHWC [batch, spatial.., channels]; kernels HWIO [window.., cin / groups, cout]",
                        );
                self.error(d)
            }
        }
    }

    /// `window_max` / `window_mean`: the IR's window rule per spatial dim.
    fn window(&mut self, a: &Args) -> Val {
        let Some(x) = self.float_tensor(a, 0) else { return Val::Error };
        if x.shape.rest.is_some() || x.shape.dims.len() < 3 {
            let d = expected("an f32[batch, spatial.., channels] tensor", &self.show(&a.val(0)), a.span(0));
            return self.error(d);
        }
        let n = x.shape.dims.len() - 2;
        let mut per = Vec::new();
        for i in [1, 2] {
            match self.per_dim(a, i, 0) {
                Ok(Some(PerDim::All(v))) => per.push(Some(vec![v; n])),
                Ok(Some(PerDim::Each(v))) if v.len() == n => per.push(Some(v)),
                Ok(None) => per.push(None),
                Ok(Some(_)) => {
                    let d = Diag::error(format!("expected an int or a list of {n} ints (one per spatial dim)"));
                    return self.error(d.at(a.span(i), "here"));
                }
                Err(d) => return self.error(d),
            }
        }
        let size = per[0].clone();
        let stride = if a.has(2) { per[1].clone() } else { size.clone() };
        let mut dims = vec![x.shape.dims[0].clone()];
        for i in 0..n {
            let (Some(k), Some(s)) = (size.as_ref().map(|v| v[i]), stride.as_ref().map(|v| v[i])) else {
                dims.push(Dim::sym(self.fresh_sym("o")));
                continue;
            };
            if k < 1 || s < 1 {
                return self.error(Diag::error("window sizes and strides must be at least 1").at(a.call, "here"));
            }
            let mut e = SymExtents::new(self, a.call);
            match window_dim(&mut e, &x.shape.dims[i + 1], &Dim::constant(k), s as usize, [0, 0], 1) {
                Ok(d) => dims.push(d),
                Err(m) => return self.error(Diag::error(m).at(a.call, "in this pooling")),
            }
        }
        dims.push(x.shape.dims[n + 1].clone());
        Val::tensor(DType::F32, Shape::of(dims))
    }

    /// A per-dim `conv` argument; `Ok(None)` when its value is not known here.
    fn per_dim(&mut self, a: &Args, i: usize, default: i64) -> Result<Option<PerDim>, Diag> {
        if !a.has(i) {
            return Ok(Some(PerDim::All(default)));
        }
        let bad = |ck: &Self, v: &Val| expected("an int, a list of ints or \"same\"", &ck.show(v), a.span(i));
        match a.val(i) {
            Val::Int(d) => Ok(d.and_then(|d| d.as_const()).map(PerDim::All)),
            Val::Str(s) if s == "same" => Ok(Some(PerDim::Same)),
            Val::List(xs) => {
                let mut each = Vec::new();
                for x in &xs {
                    match x {
                        Val::Int(d) => each.push(d.as_ref().and_then(Dim::as_const)),
                        v => return Err(bad(self, v)),
                    }
                }
                Ok(each.into_iter().collect::<Option<Vec<i64>>>().map(PerDim::Each))
            }
            v => Err(bad(self, &v)),
        }
    }

    fn cast(&mut self, to: DType, a: &Args) -> Val {
        match a.val(0) {
            // Ids stay ids through a cast between integer types.
            Val::Tensor(t) if matches!(to, DType::I32) && matches!(t.dtype, DType::I32 | DType::U8) => {
                Val::Tensor(TensorTy { dtype: to, ..t })
            }
            Val::Tensor(t) => Val::tensor(to, t.shape),
            Val::Int(_) | Val::Float(_) | Val::Bool(_) => Val::scalar(to),
            v => self.error(expected("a tensor or a number", &self.show(&v), a.span(0))),
        }
    }

    fn init(&mut self, a: &Args) -> Val {
        for slot in a.slots.iter().flatten() {
            if !matches!(slot.val, Val::Int(_) | Val::Float(_)) {
                let d = expected("a number", &self.show(&slot.val), slot.span)
                    .help("initialiser parameters are compile-time numbers");
                return self.error(d);
            }
        }
        Val::Init
    }

    fn source(&mut self, b: Builtin, a: &Args) -> Val {
        for (slot, (name, _)) in a.slots.iter().zip(b.params()) {
            let Some(s) = slot else { continue };
            let Some(domain) = OptionDomain::of(name) else {
                let d = Diag::error(format!("internal compiler error: `{name}` of `{}` has no domain", b.name()));
                return self.error(d.at(s.span, "here"));
            };
            let ok = match domain {
                OptionDomain::Path | OptionDomain::Str => matches!(s.val, Val::Str(_)),
                OptionDomain::PositiveInt => matches!(s.val, Val::Int(Some(_))),
                OptionDomain::Flag => matches!(s.val, Val::Bool(_)),
                OptionDomain::Fraction => matches!(s.val, Val::Float(_) | Val::Int(_)),
            };
            if !ok {
                let d = expected(domain.kind(), &self.show(&s.val), s.span).help(format!(
                    "for `{}` of `{}`",
                    name,
                    b.name()
                ));
                return self.error(d);
            }
        }
        Val::Source(b.name().to_string())
    }
}

/// Symbolic dims for the IR's shape rules: a quotient that is not exact
/// becomes the checker's opaque symbol for it.
pub(super) struct SymExtents<'c, 'a> {
    ck: &'c mut Checker<'a>,
    span: Span,
    /// The checker's own diagnostic for a failed division, richer than the
    /// message the rule gets back.
    failed: Option<Diag>,
}

impl<'c, 'a> SymExtents<'c, 'a> {
    pub(super) fn new(ck: &'c mut Checker<'a>, span: Span) -> Self {
        SymExtents { ck, span, failed: None }
    }
}

impl Extents for SymExtents<'_, '_> {
    type Dim = Dim;
    fn lit(&self, v: i64) -> Dim {
        Dim::constant(v)
    }
    fn known(&self, d: &Dim) -> Option<i64> {
        d.as_const()
    }
    fn add(&mut self, a: &Dim, b: &Dim) -> Dim {
        a.add(b)
    }
    fn mul(&mut self, a: &Dim, b: &Dim) -> Dim {
        a.mul(b)
    }
    fn floor_div(&mut self, a: &Dim, by: i64) -> Result<Dim, String> {
        match a.as_const() {
            Some(v) => Ok(Dim::constant(v.div_euclid(by))),
            None => self.ck.quotient(a, &Dim::constant(by), self.span).map_err(|d| d.message),
        }
    }
    fn div_exact(&mut self, a: &Dim, b: &Dim) -> Result<Dim, String> {
        self.ck.quotient(a, b, self.span).map_err(|d| {
            let m = d.message.clone();
            self.failed = Some(d);
            m
        })
    }
    fn same(&self, a: &Dim, b: &Dim) -> bool {
        a == b
    }
    fn differ(&self, a: &Dim, b: &Dim) -> bool {
        a != b && !self.ck.has_opaque(a, b)
    }
    fn show(&self, d: &Dim) -> String {
        self.ck.show_dim(d)
    }
}
