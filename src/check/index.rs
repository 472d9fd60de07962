//! Indexing and slicing: `x[i]`, `x[a:b:s]`, `x[..., -1]`, `table[ids]`.

use super::Checker;
use super::builtins::SymExtents;
use super::dim::{Dim, Shape};
use super::val::{TensorTy, Val};
use crate::builtins::normalize;
use crate::diag::Diag;
use crate::ir::dims;
use crate::span::Span;
use crate::syntax::ast::{DType, Expr, IndexItem};

impl Checker<'_> {
    /// A compile-time integer index, if the expression is one.
    pub(super) fn const_index(&mut self, e: &Expr) -> Option<i64> {
        match self.expr(e) {
            Val::Int(Some(d)) => d.as_const(),
            _ => None,
        }
    }

    pub(super) fn index_dims(&mut self, d: Option<Vec<Dim>>, items: &[IndexItem], span: Span) -> Val {
        let [IndexItem::Expr(e)] = items else {
            return self.error(Diag::error("dims take one integer index").at(span, "here"));
        };
        let i = self.const_index(e);
        match (d, i) {
            (Some(dims), Some(i)) => match normalize(i, dims.len()) {
                Some(k) => Val::Int(Some(dims[k].clone())),
                None => self.error(
                    Diag::error(format!("index {i} is out of range for dims of rank {}", dims.len()))
                        .at(e.span, "out of range"),
                ),
            },
            _ => Val::Int(None),
        }
    }

    pub(super) fn index_tensor(&mut self, t: TensorTy, items: &[IndexItem], base_span: Span, span: Span) -> Val {
        // An integer tensor index gathers: `table[ids]`.
        if let [IndexItem::Expr(e)] = items {
            let v = self.expr(e);
            if let Val::Tensor(ids) = &v {
                return self.gather(&t, ids, 0, (base_span, e.span));
            }
        }
        let ellipses = items.iter().filter(|i| matches!(i, IndexItem::Ellipsis(_))).count();
        if ellipses > 1 {
            return self.error(Diag::error("at most one `...` in an index").at(span, "here"));
        }
        let explicit = items.len() - ellipses;
        let rank = t.shape.dims.len();
        if explicit > rank {
            let d = Diag::error(format!("too many indices: {explicit} for a tensor of rank {rank}"))
                .at(span, "indexed here")
                .label(base_span, format!("this is {}{}", t.dtype.name(), self.show_shape(&t.shape)));
            return self.error(d);
        }
        if t.shape.rest.is_some() && ellipses == 0 {
            return self.error(
                Diag::error("indexing a `...` shape needs a `...` in the index")
                    .at(span, "here")
                    .help("index from the end: `x[..., 0]`"),
            );
        }
        // Positions in the tensor's known dims that each index item addresses.
        let mut out = Shape { rest: t.shape.rest, dims: Vec::new() };
        let mut axis = 0;
        // An index or slice out of range poisons the result: its shape is
        // unknown, and guessing one would only cause follow-on errors.
        let mut ok = true;
        for item in items {
            match item {
                IndexItem::Ellipsis(_) => {
                    let skip = rank - explicit;
                    out.dims.extend_from_slice(&t.shape.dims[axis..axis + skip]);
                    axis += skip;
                }
                IndexItem::Expr(e) => {
                    ok &= self.point_index(e, &t.shape.dims[axis]);
                    axis += 1;
                }
                IndexItem::Slice { start, end, step, span } => {
                    match self.slice_len(&t.shape.dims[axis], [start, end, step], *span) {
                        Some(d) => out.dims.push(d),
                        None => ok = false,
                    }
                    axis += 1;
                }
            }
        }
        if !ok {
            return Val::Error;
        }
        out.dims.extend_from_slice(&t.shape.dims[axis..]);
        Val::Tensor(t.with_shape(out))
    }

    /// Check a point index against its dim; false if it is out of range or
    /// not an int (an error was reported) or already poisoned.
    fn point_index(&mut self, e: &Expr, dim: &Dim) -> bool {
        match self.expr(e) {
            Val::Int(Some(i)) => {
                if let (Some(i), Some(n)) = (i.as_const(), dim.as_const())
                    && normalize(i, n as usize).is_none()
                {
                    let d = Diag::error(format!("index {i} is out of range for a dim of size {n}"))
                        .at(e.span, "out of range");
                    self.diags.push(d);
                    return false;
                }
                true
            }
            Val::Int(None) => true,
            Val::Error => false,
            other => {
                let d = Diag::error(format!("an index must be an int, found {}", self.show(&other)))
                    .at(e.span, "not an int")
                    .help("to select rows by a tensor of ids, index with it alone: `table[ids]`");
                self.diags.push(d);
                false
            }
        }
    }

    /// The length of `a:b:s` along a dim, by the rule lowering applies
    /// ([`dims::slice`]); `None` if it is out of range or a bound is not an
    /// int (reported here).
    fn slice_len(&mut self, dim: &Dim, parts: [&Option<Expr>; 3], span: Span) -> Option<Dim> {
        let [start, end, step] = parts.map(|p| p.as_ref().map(|e| (self.expr(e), e.span)));
        let bound = |cx: &mut Self, v: Option<(Val, Span)>| match v {
            None => Some(None),
            Some((Val::Int(Some(d)), _)) => Some(Some(d)),
            // Known to lowering only: a dim the checker cannot compare.
            Some((Val::Int(None), _)) => Some(Some(Dim::sym(cx.fresh_sym("?")))),
            Some((Val::Error, _)) => None,
            Some((other, at)) => {
                let d = Diag::error(format!("a slice bound must be an int, found {}", cx.show(&other)))
                    .at(at, "not an int");
                cx.diags.push(d);
                None
            }
        };
        let (lo, hi) = (bound(self, start)?, bound(self, end)?);
        let step_n = match &step {
            None => 1,
            Some((Val::Int(Some(d)), s)) => match d.as_const() {
                Some(k) if k >= 1 => k,
                _ => return self.bad_step(*s),
            },
            Some((_, s)) => return self.bad_step(*s),
        };
        let mut e = SymExtents::new(self, span);
        let r = dims::slice(&mut e, dim, lo, hi, step_n);
        match r {
            Ok(r) => Some(r.len),
            Err(m) => {
                self.diags.push(Diag::error(m).at(span, "bad slice"));
                None
            }
        }
    }

    fn bad_step(&mut self, at: Span) -> Option<Dim> {
        self.diags.push(Diag::error("a slice step must be a positive constant").at(at, "here"));
        None
    }

    /// `take(x, ids, axis)`: out shape x[..axis] + ids + x[axis+1..].
    pub(super) fn gather(&mut self, t: &TensorTy, ids: &TensorTy, axis: usize, (sx, si): (Span, Span)) -> Val {
        if !matches!(ids.dtype, DType::I32 | DType::U8) {
            let d = Diag::error(format!("indices must be i32, found {}", ids.dtype.name()))
                .at(si, "not integer")
                .help("cast with `i32(x)`");
            return self.error(d);
        }
        if t.shape.rest.is_some() || axis >= t.shape.dims.len() {
            let d = Diag::error("gather needs a tensor of known rank with the gathered axis").at(sx, "this tensor");
            return self.error(d);
        }
        let mut dims = t.shape.dims[..axis].to_vec();
        if ids.shape.rest.is_some() && axis > 0 {
            return self.error(Diag::error("`...` indices can only gather along axis 0").at(si, "here"));
        }
        if let Err(d) = self.ids_fit("indexing", ids, si, (&t.shape.dims[axis], sx)) {
            return self.error(d);
        }
        dims.extend(ids.shape.dims.iter().cloned());
        dims.extend_from_slice(&t.shape.dims[axis + 1..]);
        Val::Tensor(t.with_shape(Shape { rest: ids.shape.rest, dims }))
    }

    /// Ids used to pick one of `n` rows or columns must be declared to lie
    /// below `n`: a larger id would read a zero row in silence (gather and
    /// one_hot define out-of-range reads as 0).
    pub(super) fn ids_fit(
        &mut self,
        what: &str,
        ids: &TensorTy,
        at: Span,
        (n, n_at): (&Dim, Span),
    ) -> Result<(), Diag> {
        let Some(c) = &ids.classes else {
            return Err(Diag::error(format!("{what} with ids whose range is not declared"))
                .at(at, format!("these {} ids could be any value", ids.dtype.name()))
                .label(n_at, format!("{} entries", self.show_dim(n)))
                .help(super::shape::declare_classes_help(&self.show_dim(n))));
        };
        if c.fits_in(n) {
            return Ok(());
        }
        let (k, m) = (self.show_dim(&c.n), self.show_dim(n));
        let mut d = Diag::error(format!("{what}: ids in 0..{k} used with {m} entries"))
            .at(at, format!("ids in 0..{k}"))
            .label(n_at, format!("{m} entries"));
        if c.at != at {
            d = d.label(c.at, format!("`classes {k}` declared here"));
        }
        Err(d.help(format!("the class count and the size they index must agree: make the table at least {k} long, or the count at most {m}")))
    }
}
