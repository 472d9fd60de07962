//! Type annotations → checker types, and unification of a signature's
//! types with the argument types at a call.

use super::dim::{Dim, Shape};
use super::val::{Classes, TensorTy, Val};
use super::{Checker, DimBind};
use crate::diag::{Diag, Label};
use crate::span::Span;
use crate::syntax::ast::{self, DType, DimExpr, DimOp, ShapeItem, TypeKind};

/// What to do with a name in a dim position that is not bound yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Unbound {
    /// Checking a definition: it becomes a rigid symbol.
    Fresh,
    /// Anything else: it is an error.
    Reject,
}

/// Why an argument does not match its declared type, with a label where
/// the clashing dim variable was bound, if it was bound elsewhere.
#[derive(Debug)]
pub(super) struct Mismatch {
    why: String,
    labels: Vec<Label>,
    help: Option<String>,
}

impl From<String> for Mismatch {
    fn from(why: String) -> Mismatch {
        Mismatch { why, labels: Vec::new(), help: None }
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl Mismatch {
    /// Add the binding site, if any, to the error reporting this mismatch.
    pub(super) fn explain(self, d: Diag) -> Diag {
        let d = self.labels.into_iter().fold(d, |d, l| d.label(l.span, l.text));
        match self.help {
            Some(h) => d.help(h),
            None => d,
        }
    }
}

/// Anonymous `...` in one signature all stand for the same dims.
const ANON_REST: &str = "...";

impl Checker<'_> {
    pub(super) fn eval_type(&mut self, t: &ast::Type, unbound: Unbound) -> Result<Val, Diag> {
        if let (Some(c), false) = (&t.classes, matches!(t.kind, TypeKind::Tensor { .. })) {
            return Err(Diag::error("`classes` applies to integer tensors")
                .at(c.span(), "on a compile-time value")
                .help("write it on an `i32` type: `labels: i32[B] classes 10`"));
        }
        Ok(match &t.kind {
            TypeKind::Int => Val::Int(None),
            TypeKind::Float => Val::Float(None),
            TypeKind::Dims => Val::Dims(None),
            TypeKind::Init => Val::Init,
            TypeKind::Tensor { dtype, shape } => {
                let shape = self.eval_shape(shape, unbound)?;
                let classes = match &t.classes {
                    Some(c) => Some(self.eval_classes(*dtype, c, unbound)?),
                    None => None,
                };
                Val::Tensor(TensorTy { dtype: *dtype, shape, classes })
            }
        })
    }

    /// `classes N` on an integer type.
    fn eval_classes(&mut self, dtype: DType, c: &DimExpr, unbound: Unbound) -> Result<Classes, Diag> {
        if !matches!(dtype, DType::I32 | DType::U8) {
            return Err(Diag::error("`classes` applies to integer tensors")
                .at(c.span(), format!("on {}", dtype.name()))
                .help("class ids are `i32` (or `u8`): `label: i32 classes 10`"));
        }
        Ok(Classes { n: self.eval_dim(c, unbound)?, at: c.span() })
    }

    fn eval_shape(&mut self, items: &[ShapeItem], unbound: Unbound) -> Result<Shape, Diag> {
        let mut shape = Shape::scalar();
        for (i, item) in items.iter().enumerate() {
            match item {
                ShapeItem::Rest(name, span) => {
                    if i != 0 {
                        return Err(Diag::error("`...` must come first in a shape")
                            .at(*span, "not the first dim")
                            .help("write the leading dims as `...`, e.g. `f32[..., N]`"));
                    }
                    let key = name.as_ref().map_or(ANON_REST, |n| n.name.as_str());
                    shape = self.rest_binding(key, *span, unbound)?;
                }
                ShapeItem::Dim(d) => shape.dims.push(self.eval_dim(d, unbound)?),
            }
        }
        Ok(shape)
    }

    fn rest_binding(&mut self, key: &str, span: Span, unbound: Unbound) -> Result<Shape, Diag> {
        if let Some(DimBind::Rest(s)) = self.frame().dims.get(key) {
            return Ok(s.clone());
        }
        if unbound == Unbound::Reject {
            return Err(Diag::error(format!("`...{}` is not bound by any parameter", key.trim_start_matches('.')))
                .at(span, "unbound")
                .help("a `...` in a return type must also appear in a parameter's type"));
        }
        let rest = self.fresh_rest(key.trim_start_matches('.'));
        let s = Shape { rest: Some(rest), dims: Vec::new() };
        self.frame().dims.insert(key.to_string(), DimBind::Rest(s.clone()));
        Ok(s)
    }

    pub(super) fn eval_dim(&mut self, e: &DimExpr, unbound: Unbound) -> Result<Dim, Diag> {
        match e {
            DimExpr::Int(v, span) if *v < 0 || *v > i64::from(i32::MAX) => {
                Err(Diag::error(format!("dim {v} is out of range")).at(*span, "too large"))
            }
            DimExpr::Int(v, _) => Ok(Dim::constant(*v)),
            DimExpr::Name(id) => self.dim_name(id, unbound),
            DimExpr::Bin(a, op, b, span) => {
                let (a, b) = (self.eval_dim(a, unbound)?, self.eval_dim(b, unbound)?);
                Ok(match op {
                    DimOp::Add => a.add(&b),
                    DimOp::Sub => a.sub(&b),
                    DimOp::Mul => a.mul(&b),
                    DimOp::Div => self.quotient(&a, &b, *span)?,
                })
            }
        }
    }

    /// `a / b`: exact when it can be proved, else an opaque symbol.
    pub(super) fn quotient(&mut self, a: &Dim, b: &Dim, span: Span) -> Result<Dim, Diag> {
        if b.as_const() == Some(0) {
            return Err(Diag::error("division by zero in a dim").at(span, "divides by 0"));
        }
        if let Some(q) = a.div_exact(b) {
            return Ok(q);
        }
        if let (Some(x), Some(y)) = (a.as_const(), b.as_const()) {
            return Err(Diag::error(format!("{x} is not divisible by {y}"))
                .at(span, "not a whole number")
                .help("dims must be whole numbers: change the sizes so they divide"));
        }
        let key = (a.clone(), b.clone());
        if let Some(s) = self.quotients.get(&key) {
            return Ok(Dim::sym(*s));
        }
        // `(H - 1)/2`, not `H - 1/2`: a sum in a quotient is bracketed.
        let operand = |d: &Dim| match self.show_dim(d) {
            s if s.contains(' ') => format!("({s})"),
            s => s,
        };
        let name = format!("({}/{})", operand(a), operand(b));
        let s = self.fresh_sym(&name);
        self.quotients.insert(key, s);
        Ok(Dim::sym(s))
    }

    fn dim_name(&mut self, id: &ast::Ident, unbound: Unbound) -> Result<Dim, Diag> {
        match self.lookup(&id.name) {
            Some((Val::Int(Some(d)), _)) => Ok(d),
            Some((Val::Int(None), _)) => {
                let s = self.fresh_sym(&id.name);
                Ok(Dim::sym(s))
            }
            Some((Val::Error, _)) => Ok(Dim::sym(self.fresh_sym(&id.name))),
            Some((v, def)) => {
                let mut d =
                    Diag::error(format!("`{}` is {}, not a dim", id.name, v.kind())).at(id.span, "used as a dim here");
                if let Some(def) = def {
                    d = d.label(def, "defined here");
                }
                Err(d)
            }
            None if unbound == Unbound::Fresh => {
                let s = self.fresh_sym(&id.name);
                let d = Dim::sym(s);
                self.frame().dims.insert(id.name.clone(), DimBind::Dim(d.clone(), id.span));
                Ok(d)
            }
            None => {
                let names = self.visible_names();
                let mut d = Diag::error(format!("unknown dim `{}`", id.name)).at(id.span, "not bound");
                if let Some(h) = crate::diag::did_you_mean(&id.name, names.iter().map(String::as_str)) {
                    d = d.help(h);
                } else {
                    d = d.help("dims here must be constants, model parameters, or dims bound by the parameters");
                }
                Err(d)
            }
        }
    }

    /// Unify a parameter's declared type with an argument, binding the
    /// signature's dim variables in the current frame. `Err` is the reason.
    pub(super) fn match_type(&mut self, t: &ast::Type, actual: &Val, at: Span) -> Result<(), Mismatch> {
        match (&t.kind, actual) {
            (_, Val::Error) => Ok(()),
            (TypeKind::Int, Val::Int(_)) | (TypeKind::Float, Val::Float(_) | Val::Int(_)) => Ok(()),
            (TypeKind::Dims, Val::Dims(_)) | (TypeKind::Init, Val::Init) => Ok(()),
            (TypeKind::Dims, Val::List(items)) if items.iter().all(|i| matches!(i, Val::Int(_))) => Ok(()),
            (TypeKind::Tensor { dtype, shape }, Val::Tensor(a)) => {
                if *dtype != a.dtype {
                    let why = format!("expected dtype {}, found {}", dtype.name(), a.dtype.name());
                    let help = (*dtype == DType::F32 && a.dtype == DType::U8).then(|| {
                        "raw u8 data (pixels) becomes f32 in the dataset, where it is scaled once: \
                         `x = f32(image) / 255.0`"
                            .to_string()
                    });
                    return Err(Mismatch { why, labels: Vec::new(), help });
                }
                self.match_shape(shape, &a.shape, at)?;
                self.match_classes(t.classes.as_ref(), a, at)
            }
            // Weak scalars: a literal or compile-time number where a scalar tensor is expected.
            (TypeKind::Tensor { dtype, shape }, Val::Float(_) | Val::Int(_)) if shape.is_empty() => {
                match (dtype, actual) {
                    (ast::DType::F32, _) | (ast::DType::I32, Val::Int(_)) => Ok(()),
                    _ => Err(format!("expected {}, found {}", dtype.name(), actual.kind()).into()),
                }
            }
            (TypeKind::Tensor { dtype: ast::DType::Bool, shape }, Val::Bool(_)) if shape.is_empty() => Ok(()),
            (k, a) => Err(format!("expected {}, found {}", kind_name(k), self.show(a)).into()),
        }
    }

    fn match_shape(&mut self, decl: &[ShapeItem], actual: &Shape, at: Span) -> Result<(), Mismatch> {
        let fixed: Vec<&DimExpr> =
            decl.iter().filter_map(|i| if let ShapeItem::Dim(d) = i { Some(d) } else { None }).collect();
        let rest = decl.iter().find_map(|i| if let ShapeItem::Rest(n, s) = i { Some((n, *s)) } else { None });
        let n = actual.dims.len();
        match rest {
            None if actual.rest.is_some() => {
                return Err(String::from("expected a fixed rank, found a `...` shape").into());
            }
            None if n != fixed.len() => return Err(format!("expected rank {}, found rank {n}", fixed.len()).into()),
            Some(_) if n < fixed.len() => {
                return Err(format!("expected rank at least {}, found rank {n}", fixed.len()).into());
            }
            _ => {}
        }
        let offset = n - fixed.len();
        if let Some((name, _)) = rest {
            let prefix = Shape { rest: actual.rest, dims: actual.dims[..offset].to_vec() };
            let key = name.as_ref().map_or(ANON_REST, |n| n.name.as_str()).to_string();
            match self.frame().dims.get(&key).cloned() {
                Some(DimBind::Rest(bound)) if bound != prefix => {
                    return Err(format!(
                        "`{key}` was bound to {} but here it is {}",
                        self.show_shape(&bound),
                        self.show_shape(&prefix)
                    )
                    .into());
                }
                Some(_) => {}
                None => {
                    self.frame().dims.insert(key, DimBind::Rest(prefix));
                }
            }
        }
        // Bind plain names first so `N * 2` after `N` can be evaluated.
        for (d, a) in fixed.iter().zip(&actual.dims[offset..]) {
            if let DimExpr::Name(id) = d
                && self.lookup(&id.name).is_none()
            {
                self.frame().dims.insert(id.name.clone(), DimBind::Dim(a.clone(), at));
            }
        }
        for (d, a) in fixed.iter().zip(&actual.dims[offset..]) {
            let want = self.eval_dim(d, Unbound::Reject).map_err(|e| e.message)?;
            if &want != a {
                let why =
                    format!("expected {} for `{}`, found {}", self.show_dim(&want), dim_src(d, self), self.show_dim(a));
                let labels = self.bound_at(d, &want, at).into_iter().collect();
                return Err(Mismatch { why, labels, help: None });
            }
        }
        Ok(())
    }

    /// Where a dim variable got the value it now clashes with.
    fn bound_at(&self, d: &DimExpr, want: &Dim, at: Span) -> Option<Label> {
        let DimExpr::Name(id) = d else { return None };
        match self.frames.last().and_then(|f| f.dims.get(&id.name)) {
            Some(DimBind::Dim(_, s)) if *s != at => {
                Some(Label { span: *s, text: format!("`{}` was bound to {} here", id.name, self.show_dim(want)) })
            }
            _ => None,
        }
    }

    /// A parameter declared `classes C` takes ids with a declared range,
    /// and `C` unifies with it like a dim.
    fn match_classes(&mut self, decl: Option<&DimExpr>, actual: &TensorTy, at: Span) -> Result<(), Mismatch> {
        let Some(d) = decl else { return Ok(()) };
        let Some(c) = &actual.classes else {
            let n = match self.eval_dim(d, Unbound::Reject) {
                Ok(n) => self.show_dim(&n),
                Err(_) => dim_src(d, self),
            };
            return Err(Mismatch {
                why: format!(
                    "expected ids in 0..{n} (`classes {}`), found ids whose range is not declared",
                    dim_src(d, self)
                ),
                labels: Vec::new(),
                help: Some(declare_classes_help(&n)),
            });
        };
        if let DimExpr::Name(id) = d
            && self.lookup(&id.name).is_none()
        {
            self.frame().dims.insert(id.name.clone(), DimBind::Dim(c.n.clone(), c.at));
        }
        let want = self.eval_dim(d, Unbound::Reject).map_err(|e| e.message)?;
        if c.fits_in(&want) {
            return Ok(());
        }
        let (w, k) = (self.show_dim(&want), self.show_dim(&c.n));
        let mut labels: Vec<Label> = self.bound_at(d, &want, at).into_iter().collect();
        if let Some(head) = labels.first().and_then(|b| self.heads.get(&b.span)) {
            labels.push(Label { span: *head, text: format!("the model's output layer: {w} outputs") });
        }
        labels.push(Label { span: c.at, text: format!("the ids are declared `classes {k}` here") });
        Err(Mismatch {
            why: format!("expected ids in 0..{w} (`classes {}`), found ids in 0..{k}", dim_src(d, self)),
            labels,
            help: Some(format!("{w} outputs for {k} classes: make the two sizes agree")),
        })
    }
}

/// Where a class count can be declared, for ids that have none.
pub(super) fn declare_classes_help(n: &str) -> String {
    format!(
        "declare the range where the ids come from: on the dataset field (`label: i32 classes {n}`) \
         or on the parameter that takes them (`ids: i32[B, T] classes {n}`)"
    )
}

fn dim_src(d: &DimExpr, cx: &Checker) -> String {
    cx.program.sources.text(d.span()).to_string()
}

fn kind_name(k: &TypeKind) -> &'static str {
    match k {
        TypeKind::Int => "an int",
        TypeKind::Float => "a float",
        TypeKind::Dims => "dims",
        TypeKind::Init => "an initialiser",
        TypeKind::Tensor { .. } => "a tensor",
    }
}
