//! Builtins → IR: each builtin's composition of primitive ops.

use super::expr::Arg;
use super::{Init, LResult, Lowerer, Val, at, check_size, numel};
use crate::builtins::{Builtin, InitKind, OptionDomain, Reduction, normalize};
use crate::diag::Diag;
use crate::ir::dims::{self, ReshapeError, Sizes, Target};
use crate::ir::ops::conv::PerDim;
use crate::ir::{BinaryOp, ConvAttrs, DType, IrError, NodeId, Type, UnaryOp};
use crate::span::Span;

/// Bound builtin arguments by parameter position.
struct Args {
    slots: Vec<Option<(Val, Span)>>,
    call: Span,
}

impl Args {
    fn get(&self, i: usize) -> Option<&Val> {
        self.slots.get(i).and_then(|s| s.as_ref()).map(|(v, _)| v)
    }
    fn span(&self, i: usize) -> Span {
        self.slots.get(i).and_then(|s| s.as_ref()).map_or(self.call, |(_, s)| *s)
    }
    fn int_or(&self, i: usize, default: i64) -> LResult<i64> {
        match self.get(i) {
            None => Ok(default),
            Some(Val::Int(v)) => Ok(*v),
            Some(_) => Err(Diag::error("expected a constant int").at(self.span(i), "here")),
        }
    }
    fn float(&self, i: usize, default: f64) -> LResult<f64> {
        match self.get(i) {
            None => Ok(default),
            Some(Val::Int(v)) => Ok(*v as f64),
            Some(Val::Float(v)) => Ok(*v),
            Some(_) => Err(Diag::error("expected a number").at(self.span(i), "here")),
        }
    }
    fn flag(&self, i: usize) -> bool {
        matches!(self.get(i), Some(Val::Bool(true)))
    }
}

impl Lowerer<'_> {
    pub(crate) fn builtin(&mut self, b: Builtin, args: Vec<Arg>, call: Span) -> LResult<Val> {
        let names: Vec<&str> = b.params().iter().map(|(n, _)| *n).collect();
        let a = Args { slots: super::expr::slots(&names, args)?, call };
        self.builtin_args(b, &a)
    }

    fn x(&mut self, a: &Args, i: usize) -> LResult<NodeId> {
        let v = a.get(i).cloned().ok_or_else(|| Diag::error("missing argument").at(a.call, "here"))?;
        self.node(&v, None, a.span(i))
    }

    #[warn(clippy::wildcard_enum_match_arm)] // one arm per family, no fall-through
    fn builtin_args(&mut self, b: Builtin, a: &Args) -> LResult<Val> {
        let span = a.call;
        let node = |r: Result<NodeId, crate::ir::IrError>| r.map(Val::Node).map_err(at(span));
        match b {
            Builtin::Unary(op) => self.unary_builtin(op, a),
            Builtin::Reduce(r @ (Reduction::Max | Reduction::Min)) if a.get(1).is_some() => {
                let (x, y) = (a.get(0).cloned().unwrap_or(Val::Int(0)), a.get(1).cloned().unwrap_or(Val::Int(0)));
                self.elementwise_minmax(r == Reduction::Max, x, y, span)
            }
            Builtin::Reduce(r @ (Reduction::Max | Reduction::Min)) => self.reduce(r, a, 2, 3),
            Builtin::Reduce(r @ (Reduction::Sum | Reduction::Mean)) => self.reduce(r, a, 1, 2),
            Builtin::Argmax => self.argmax(a),
            Builtin::Where => {
                let c = self.x(a, 0)?;
                let (x, y) = (a.get(1).cloned().unwrap_or(Val::Int(0)), a.get(2).cloned().unwrap_or(Val::Int(0)));
                let like = [&x, &y].iter().find_map(|v| if let Val::Node(n) = v { Some(self.dtype(*n)) } else { None });
                let (x, y) = (self.node(&x, like, a.span(1))?, self.node(&y, like, a.span(2))?);
                node(self.g.select(c, x, y))
            }
            Builtin::Reshape => {
                let x = self.x(a, 0)?;
                let dims = self.reshape_dims(x, a)?;
                node(self.g.reshape(x, &dims))
            }
            Builtin::Permute => {
                let x = self.x(a, 0)?;
                let rank = self.shape(x).len();
                let perm = self.axes(a.get(1), rank, a.span(1))?;
                node(self.g.permute(x, &perm))
            }
            Builtin::Transpose => {
                let x = self.x(a, 0)?;
                let rank = self.shape(x).len();
                let i = normalize(a.int_or(1, -2)?, rank).ok_or_else(|| bad_axis(a.span(1)))?;
                let j = normalize(a.int_or(2, -1)?, rank).ok_or_else(|| bad_axis(a.span(2)))?;
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.swap(i, j);
                node(self.g.permute(x, &perm))
            }
            Builtin::Unsqueeze | Builtin::Squeeze => {
                let x = self.x(a, 0)?;
                let mut shape = self.shape(x);
                let insert = b == Builtin::Unsqueeze;
                let k =
                    normalize(a.int_or(1, 0)?, shape.len() + usize::from(insert)).ok_or_else(|| bad_axis(a.span(1)))?;
                if insert {
                    shape.insert(k, 1)
                } else {
                    shape.remove(k);
                }
                node(self.g.reshape(x, &shape))
            }
            Builtin::Join { stack } => self.concat(stack, a),
            Builtin::Pad => self.pad(a),
            Builtin::Take => {
                let (x, ids) = (self.x(a, 0)?, self.x(a, 1)?);
                let k = normalize(a.int_or(2, 0)?, self.shape(x).len()).ok_or_else(|| bad_axis(a.span(2)))?;
                node(self.g.gather(x, ids, k))
            }
            Builtin::OneHot => {
                let ids = self.x(a, 0)?;
                let n = usize::try_from(a.int_or(1, 0)?)
                    .map_err(|_| Diag::error("`one_hot` needs a non-negative class count").at(a.span(1), "here"))?;
                let mut shape = self.shape(ids);
                check_size(&[shape.clone(), vec![n]].concat(), span)?;
                let ids = self.g.reshape(ids, &[shape.clone(), vec![1]].concat()).map_err(at(span))?;
                shape.push(n);
                let iota = self.g.iota(&shape, shape.len() - 1).map_err(at(span))?;
                let eq = self.g.broadcast_binary(BinaryOp::Eq, ids, iota).map_err(at(span))?;
                node(self.g.cast(eq, DType::F32))
            }
            Builtin::Arange => {
                let n = a.int_or(0, 0)?.max(0) as usize;
                check_size(&[n], span)?;
                node(self.g.iota(&[n], 0))
            }
            Builtin::Random { normal } => self.random(normal, a),
            Builtin::Patches => self.patches(a),
            Builtin::Conv => self.conv(a),
            Builtin::Window { max } => self.window(max, a),
            Builtin::StopGradient => {
                let x = self.x(a, 0)?;
                node(self.g.stop_gradient(x))
            }
            Builtin::Cast(to) => match a.get(0) {
                Some(Val::Node(n)) => node(self.g.cast(*n, to)),
                Some(Val::Int(i)) if to == DType::F32 => Ok(Val::Float(*i as f64)),
                Some(v) => Ok(v.clone()),
                None => Err(Diag::error("missing argument").at(span, "here")),
            },
            Builtin::Float => Ok(Val::Float(a.float(0, 0.0)?)),
            Builtin::ShapeOf => {
                let x = self.x(a, 0)?;
                Ok(Val::Dims(self.shape(x)))
            }
            Builtin::Prod => match a.get(0) {
                Some(Val::Dims(d)) => match numel(d).and_then(|n| i64::try_from(n).ok()) {
                    Some(n) => Ok(Val::Int(n)),
                    None => Err(Diag::error(format!("`prod` of {d:?} overflows 64 bits")).at(a.span(0), "here")),
                },
                _ => Err(Diag::error("expected dims").at(a.span(0), "here")),
            },
            Builtin::Init(InitKind::Uniform) => {
                Ok(Val::Init(Init::Uniform { lo: a.float(0, 0.0)?, hi: a.float(1, 1.0)? }))
            }
            Builtin::Init(InitKind::Normal) => {
                Ok(Val::Init(Init::Normal { mean: a.float(0, 0.0)?, std: a.float(1, 1.0)? }))
            }
            Builtin::Init(InitKind::Constant) => Ok(Val::Init(Init::Constant(a.float(0, 0.0)?))),
            Builtin::Training => Ok(Val::Bool(self.training)),
            Builtin::Source(kind) => {
                source_options(b, a)?;
                let path_at = a.span(0);
                let named = b.params().iter().zip(&a.slots).filter_map(|((n, _), s)| {
                    let (v, _) = s.as_ref()?;
                    Some(match (n, v) {
                        (&("dir" | "path"), Val::Str(p)) => (n.to_string(), Val::Str(self.beside_source(p, path_at))),
                        _ => (n.to_string(), v.clone()),
                    })
                });
                Ok(Val::Source(kind, named.collect(), path_at))
            }
        }
    }

    fn unary_builtin(&mut self, op: UnaryOp, a: &Args) -> LResult<Val> {
        if let Some(Val::Int(_) | Val::Float(_)) = a.get(0) {
            let v = a.float(0, 0.0)?;
            // Folded by the IR's own scalar rule, so constants and tensors agree.
            let folded = op.fold_f64(v).ok_or_else(|| Diag::error("not a float op").at(a.call, "here"))?;
            let not_finite =
                |_| Diag::error(format!("`{}({v:?})` is not a finite number", op.row().name)).at(a.call, "here");
            return Ok(Val::Float(crate::arith::finite(folded).map_err(not_finite)?));
        }
        let x = self.x(a, 0)?;
        Ok(Val::Node(self.g.unary(op, x).map_err(at(a.call))?))
    }

    fn elementwise_minmax(&mut self, max: bool, x: Val, y: Val, span: Span) -> LResult<Val> {
        if let (Val::Int(p), Val::Int(q)) = (&x, &y) {
            return Ok(Val::Int(if max { *p.max(q) } else { *p.min(q) }));
        }
        let like = [&x, &y].iter().find_map(|v| if let Val::Node(n) = v { Some(self.dtype(*n)) } else { None });
        let (p, q) = (self.node(&x, like, span)?, self.node(&y, like, span)?);
        let op = if max { BinaryOp::Max } else { BinaryOp::Min };
        Ok(Val::Node(self.g.broadcast_binary(op, p, q).map_err(at(span))?))
    }

    fn axes(&mut self, v: Option<&Val>, rank: usize, span: Span) -> LResult<Vec<usize>> {
        let list = match v {
            Some(Val::List(xs)) => xs.clone(),
            Some(Val::Dims(d)) => d.iter().map(|x| Val::Int(*x as i64)).collect(),
            Some(v @ Val::Int(_)) => vec![v.clone()],
            None => (0..rank as i64).map(Val::Int).collect(),
            Some(_) => return Err(bad_axis(span)),
        };
        list.iter()
            .map(|x| match x {
                Val::Int(i) => normalize(*i, rank).ok_or_else(|| bad_axis(span)),
                _ => Err(bad_axis(span)),
            })
            .collect()
    }

    /// `sum mean max min (x, axis, keepdim)`; `axis_slot` and `keep_slot`
    /// differ because `max`/`min` have an `other` parameter in between.
    fn reduce(&mut self, r: Reduction, a: &Args, axis_slot: usize, keep_slot: usize) -> LResult<Val> {
        let x = self.x(a, 0)?;
        let rank = self.shape(x).len();
        let axes = self.axes(a.get(axis_slot), rank, a.span(axis_slot))?;
        let keep = a.flag(keep_slot);
        let span = a.call;
        let g = &mut self.g;
        let r = match r {
            Reduction::Sum => g.sum_axes(x, &axes, keep),
            Reduction::Mean => g.mean(x, &axes, keep),
            Reduction::Max => g.max_axes(x, &axes, keep),
            Reduction::Min => {
                let n = g.unary(UnaryOp::Neg, x).map_err(at(span))?;
                let m = g.max_axes(n, &axes, keep).map_err(at(span))?;
                g.unary(UnaryOp::Neg, m)
            }
        };
        Ok(Val::Node(r.map_err(at(span))?))
    }

    /// The first index of the maximum: `min(where(x == max, iota, n))`.
    fn argmax(&mut self, a: &Args) -> LResult<Val> {
        let x = self.x(a, 0)?;
        let shape = self.shape(x);
        let span = a.call;
        let k = normalize(a.int_or(1, -1)?, shape.len()).ok_or_else(|| bad_axis(a.span(1)))?;
        let g = &mut self.g;
        let m = g.max_axes(x, &[k], true).map_err(at(span))?;
        let hit = g.broadcast_binary(BinaryOp::Eq, x, m).map_err(at(span))?;
        let iota = g.iota(&shape, k).map_err(at(span))?;
        let big = g.constant(shape[k] as f64, Type::new(DType::I32, shape.clone()));
        let idx = g.select(hit, iota, big).map_err(at(span))?;
        let neg = g.unary(UnaryOp::Neg, idx).map_err(at(span))?;
        let mx = g.max_axes(neg, &[k], false).map_err(at(span))?;
        Ok(Val::Node(g.unary(UnaryOp::Neg, mx).map_err(at(span))?))
    }

    /// The checker's rule ([`dims::reshape`]) on the concrete sizes: it
    /// fails here only where the checker could not decide (`d / heads`).
    fn reshape_dims(&mut self, x: NodeId, a: &Args) -> LResult<Vec<usize>> {
        let shape = self.shape(x);
        check_size(&shape, a.span(0))?;
        let dim = |v: &Val| match v {
            Val::Int(-1) => Ok(Target::Infer),
            Val::Int(i) => Ok(Target::Dim(*i)),
            Val::Float(f) => Err(Diag::error(format!("a dim of {f} is not a whole number"))
                .at(a.span(1), "in these dims")
                .help("a quotient of sizes (`d / heads`) must divide exactly")),
            _ => Err(Diag::error("expected ints").at(a.span(1), "here")),
        };
        let target: Vec<Target<i64>> = match a.get(1) {
            Some(Val::List(xs)) => xs.iter().map(dim).collect::<LResult<_>>()?,
            Some(Val::Dims(d)) => d.iter().map(|v| Target::Dim(*v as i64)).collect(),
            _ => return Err(Diag::error("expected a list of dims").at(a.span(1), "here")),
        };
        let input: Vec<i64> = shape.iter().map(|d| *d as i64).collect();
        let fail = |m: String| Err(Diag::error(m).at(a.span(1), "target shape"));
        match dims::reshape(&mut Sizes, &input, &target) {
            Ok(d) => Ok(d.into_iter().map(|v| v.max(0) as usize).collect()),
            Err(ReshapeError::Holes) => fail("at most one `-1` in a reshape".into()),
            Err(ReshapeError::Negative(d)) => fail(format!("a dim of {d} in a reshape")),
            Err(ReshapeError::Quotient(m)) => fail(m),
            Err(ReshapeError::Count { total, product }) => fail(format!(
                "cannot reshape {shape:?} into {}: {total} elements vs {product}",
                dims::show_target(&target, i64::to_string)
            )),
        }
    }

    fn concat(&mut self, stack: bool, a: &Args) -> LResult<Val> {
        let Some(Val::List(xs)) = a.get(0) else {
            return Err(Diag::error("expected a list of tensors").at(a.span(0), "here"));
        };
        let mut nodes = Vec::new();
        for x in xs {
            nodes.push(self.node(x, None, a.span(0))?);
        }
        let Some(first) = nodes.first() else { return Err(Diag::error("empty list").at(a.span(0), "here")) };
        let rank = self.shape(*first).len() + usize::from(stack);
        let k = normalize(a.int_or(1, 0)?, rank).ok_or_else(|| bad_axis(a.span(1)))?;
        if stack {
            for n in &mut nodes {
                let mut s = self.shape(*n);
                s.insert(k, 1);
                *n = self.g.reshape(*n, &s).map_err(at(a.call))?;
            }
        }
        Ok(Val::Node(self.g.concat(&nodes, k).map_err(at(a.call))?))
    }

    fn pad(&mut self, a: &Args) -> LResult<Val> {
        let x = self.x(a, 0)?;
        let rank = self.shape(x).len();
        let Some(Val::List(rows)) = a.get(1) else {
            return Err(Diag::error("expected [lo, hi] pairs").at(a.span(1), "here"));
        };
        let (mut lo, mut hi) = (vec![0; rank], vec![0; rank]);
        let start = rank.checked_sub(rows.len()).ok_or_else(|| Diag::error("too many pairs").at(a.span(1), "here"))?;
        for (i, r) in rows.iter().enumerate() {
            match r {
                Val::List(p) if matches!(p.as_slice(), [Val::Int(l), Val::Int(h)] if *l >= 0 && *h >= 0) => {
                    if let [Val::Int(l), Val::Int(h)] = p.as_slice() {
                        (lo[start + i], hi[start + i]) = (*l as usize, *h as usize);
                    }
                }
                _ => return Err(Diag::error("expected [lo, hi] pairs of non-negative ints").at(a.span(1), "here")),
            }
        }
        let padded: Option<Vec<usize>> = self
            .shape(x)
            .iter()
            .zip(lo.iter().zip(&hi))
            .map(|(d, (l, h))| d.checked_add(*l)?.checked_add(*h))
            .collect();
        check_size(&padded.unwrap_or_else(|| vec![usize::MAX; 2]), a.call)?;
        Ok(Val::Node(self.g.pad(x, &lo, &hi, 0.0).map_err(at(a.call))?))
    }

    fn random(&mut self, normal: bool, a: &Args) -> LResult<Val> {
        let x = self.x(a, 0)?;
        let shape = self.shape(x);
        let key = self
            .rng_key
            .ok_or_else(|| Diag::error("random numbers are only available in a training step").at(a.call, "here"))?;
        let span = a.call;
        let salt = self.next_salt();
        let u = self.g.random(key, salt, &shape).map_err(at(span))?;
        if !normal {
            return Ok(Val::Node(u));
        }
        // Box–Muller on two independent uniforms; 1 - u is in (0, 1], so log is finite.
        let salt2 = self.next_salt();
        let g = &mut self.g;
        let v = g.random(key, salt2, &shape).map_err(at(span))?;
        let one_minus = g.scalar_sub(1.0, u).map_err(at(span))?;
        let l = g.unary(UnaryOp::Log, one_minus).map_err(at(span))?;
        let r = g.mul_scalar(l, -2.0).map_err(at(span))?;
        let r = g.unary(UnaryOp::Sqrt, r).map_err(at(span))?;
        let t = g.mul_scalar(v, std::f64::consts::TAU).map_err(at(span))?;
        let c = g.unary(UnaryOp::Cos, t).map_err(at(span))?;
        Ok(Val::Node(g.broadcast_binary(BinaryOp::Mul, r, c).map_err(at(span))?))
    }

    /// The IR's convolution, its attributes by the rule the checker used.
    fn conv(&mut self, a: &Args) -> LResult<Val> {
        let (x, w) = (self.x(a, 0)?, self.x(a, 1)?);
        let (xs, ws) = (self.shape(x), self.shape(w));
        let n = xs.len().saturating_sub(2);
        let per = [(2, 1), (3, 0), (4, 1)].map(|(i, default)| per_dim(a, i, default));
        let [stride, padding, dilation] = per;
        let window: Vec<Option<i64>> = ws.iter().take(n).map(|&k| Some(k as i64)).collect();
        let attrs = ConvAttrs::from_args(n, &window, [stride?, padding?, dilation?], a.int_or(5, 1)?)
            .map_err(|m| Diag::error(m).at(a.call, "in this convolution"))?;
        Ok(Val::Node(self.g.conv(x, w, attrs).map_err(at(a.call))?))
    }

    /// Pooling, by [`Self::tiled_windows`] when the windows tile the image
    /// (the backward pass is then elementwise on the image, gather form),
    /// else by [`Self::strided_windows`].
    fn window(&mut self, max: bool, a: &Args) -> LResult<Val> {
        let x = self.x(a, 0)?;
        let shape = self.shape(x);
        let n = shape.len().saturating_sub(2);
        let list = |i: usize| -> LResult<Vec<usize>> {
            let p = per_dim(a, i, 1)?;
            let v = match p {
                PerDim::All(v) => vec![v; n],
                PerDim::Each(v) if v.len() == n => v,
                PerDim::Each(_) | PerDim::Same => {
                    return Err(Diag::error("expected one int per spatial dim").at(a.span(i), "here"));
                }
            };
            if v.iter().any(|&k| k < 1) {
                return Err(Diag::error("window sizes and strides must be at least 1").at(a.span(i), "here"));
            }
            Ok(v.into_iter().map(|k| k as usize).collect())
        };
        let size = list(1)?;
        let stride = if a.get(2).is_some() { list(2)? } else { size.clone() };
        let span = a.call;
        let mut out = vec![shape[0]];
        for i in 0..n {
            let d = crate::ir::ops::conv::window_dim(
                &mut Sizes,
                &(shape[i + 1] as i64),
                &(size[i] as i64),
                stride[i],
                [0, 0],
                1,
            )
            .map_err(|m| Diag::error(m).at(span, "in this pooling"))?;
            out.push(d as usize);
        }
        out.push(shape[n + 1]);
        let r = if size == stride {
            self.tiled_windows(x, &size, &out, max)
        } else {
            self.strided_windows(x, &size, &stride, &out, max)
        };
        Ok(Val::Node(r.map_err(at(span))?))
    }

    /// Windows that tile the image: a slice to whole windows, a reshape that
    /// gives each window its own axes, a reduction over them.
    fn tiled_windows(&mut self, x: NodeId, size: &[usize], out: &[usize], max: bool) -> Result<NodeId, IrError> {
        let shape = self.shape(x);
        let n = size.len();
        let end: Vec<usize> =
            (0..n + 2).map(|d| if d == 0 || d == n + 1 { shape[d] } else { out[d] * size[d - 1] }).collect();
        let g = &mut self.g;
        let tiled = g.slice(x, &vec![0; n + 2], &end, &vec![1; n + 2])?;
        let mut split = vec![shape[0]];
        for i in 0..n {
            split.extend([out[i + 1], size[i]]);
        }
        split.push(shape[n + 1]);
        let windows = g.reshape(tiled, &split)?;
        let axes: Vec<usize> = (0..n).map(|i| 2 + 2 * i).collect();
        if max { g.max_axes(windows, &axes, false) } else { g.mean(windows, &axes, false) }
    }

    /// Other strides: one strided slice per window offset, combined
    /// elementwise (the backward pass pads each offset back).
    fn strided_windows(
        &mut self,
        x: NodeId,
        size: &[usize],
        stride: &[usize],
        out: &[usize],
        max: bool,
    ) -> Result<NodeId, IrError> {
        let shape = self.shape(x);
        let n = size.len();
        let offsets: usize = size.iter().product();
        let spatial =
            |d: usize, f: &dyn Fn(usize) -> usize, other: usize| if d == 0 || d == n + 1 { other } else { f(d - 1) };
        let mut acc: Option<NodeId> = None;
        for off in 0..offsets {
            let mut k = vec![0; n];
            let mut rest = off;
            for i in (0..n).rev() {
                k[i] = rest % size[i];
                rest /= size[i];
            }
            let start: Vec<usize> = (0..n + 2).map(|d| spatial(d, &|i| k[i], 0)).collect();
            let end: Vec<usize> =
                (0..n + 2).map(|d| spatial(d, &|i| k[i] + stride[i] * (out[i + 1] - 1) + 1, shape[d])).collect();
            let step: Vec<usize> = (0..n + 2).map(|d| spatial(d, &|i| stride[i], 1)).collect();
            let s = self.g.slice(x, &start, &end, &step)?;
            acc = Some(match acc {
                None => s,
                Some(prev) if max => self.g.binary(BinaryOp::Max, prev, s)?,
                Some(prev) => self.g.add(prev, s)?,
            });
        }
        let sum = acc.ok_or_else(|| IrError::ty("window", "an empty window"))?;
        if max { Ok(sum) } else { self.g.mul_scalar(sum, 1.0 / offsets as f64) }
    }

    /// im2col: every kh×kw window as one row ordered (kh, kw, c), by
    /// concatenating kh·kw strided slices of the padded input.
    fn patches(&mut self, a: &Args) -> LResult<Val> {
        let x = self.x(a, 0)?;
        let span = a.call;
        let size = match a.get(1) {
            Some(Val::List(v)) => v.iter().map(|d| if let Val::Int(i) = d { *i } else { -1 }).collect::<Vec<_>>(),
            _ => vec![],
        };
        let (stride, pad) = (a.int_or(2, 1)?, a.int_or(3, 0)?);
        let [kh, kw] = size.as_slice() else {
            return Err(Diag::error("`size` must be [kh, kw]").at(a.span(1), "here"));
        };
        if *kh < 1 || *kw < 1 || stride < 1 || pad < 0 {
            return Err(Diag::error("window, stride and padding must be positive").at(span, "here"));
        }
        let (kh, kw, s, p) = (*kh as usize, *kw as usize, stride as usize, pad as usize);
        let padded: Option<Vec<usize>> = self
            .shape(x)
            .iter()
            .enumerate()
            .map(|(i, d)| if i == 1 || i == 2 { d.checked_add(p.checked_mul(2)?) } else { Some(*d) })
            .collect();
        check_size(&padded.unwrap_or_else(|| vec![usize::MAX; 2]), span)?;
        // One slice per window position: keep the unrolled loop finite.
        if kh.checked_mul(kw).is_none_or(|k| k > 65536) {
            return Err(
                Diag::error(format!("a {kh}x{kw} window is too large")).at(a.span(1), "the limit is 65536 positions")
            );
        }
        let x = if p > 0 { self.g.pad(x, &[0, p, p, 0], &[0, p, p, 0], 0.0).map_err(at(span))? } else { x };
        let shape = self.shape(x);
        let (b, h, w, c) = (shape[0], shape[1], shape[2], shape[3]);
        if h < kh || w < kw {
            return Err(Diag::error(format!("a {kh}x{kw} window does not fit in {h}x{w}")).at(span, "here"));
        }
        let (oh, ow) = ((h - kh) / s + 1, (w - kw) / s + 1);
        let mut cols = Vec::new();
        for i in 0..kh {
            for j in 0..kw {
                let sl = self
                    .g
                    .slice(x, &[0, i, j, 0], &[b, i + s * (oh - 1) + 1, j + s * (ow - 1) + 1, c], &[1, s, s, 1])
                    .map_err(at(span))?;
                cols.push(sl);
            }
        }
        Ok(Val::Node(self.g.concat(&cols, 3).map_err(at(span))?))
    }
}

fn bad_axis(span: Span) -> Diag {
    Diag::error("axis out of range").at(span, "here")
}

impl Lowerer<'_> {
    /// A data path as written in a file: relative to that file's directory,
    /// as `use` paths are, so a run does not depend on the working directory.
    pub(crate) fn beside_source(&self, path: &str, at: Span) -> String {
        let file = self.program.sources.get(at.file);
        let dir = file.path.as_deref().and_then(std::path::Path::parent);
        match dir {
            Some(d) if !std::path::Path::new(path).is_absolute() && !d.as_os_str().is_empty() => {
                d.join(path).display().to_string()
            }
            _ => path.to_string(),
        }
    }
}

/// A per-dim `conv` argument (see `ConvAttrs::from_args`).
fn per_dim(a: &Args, i: usize, default: i64) -> LResult<PerDim> {
    let bad = || Diag::error("expected an int, a list of ints or \"same\"").at(a.span(i), "here");
    match a.get(i) {
        None => Ok(PerDim::All(default)),
        Some(Val::Int(v)) => Ok(PerDim::All(*v)),
        Some(Val::Str(s)) if s == "same" => Ok(PerDim::Same),
        Some(Val::List(xs)) => {
            let each = xs.iter().map(|x| if let Val::Int(v) = x { Some(*v) } else { None });
            each.collect::<Option<Vec<i64>>>().map(PerDim::Each).ok_or_else(bad)
        }
        Some(_) => Err(bad()),
    }
}

/// A data source's options in their domains: a bad value is an error at
/// its span, never replaced by a default.
fn source_options(b: Builtin, a: &Args) -> LResult<()> {
    for (i, (name, _)) in b.params().iter().enumerate() {
        let (Some(v), Some(domain)) = (a.get(i), OptionDomain::of(name)) else { continue };
        let ok = match (domain, v) {
            (OptionDomain::PositiveInt, Val::Int(n)) => *n >= 1,
            (OptionDomain::Fraction, Val::Float(f)) => (0.0..1.0).contains(f),
            (OptionDomain::Fraction, Val::Int(n)) => *n == 0,
            // The checker checked the kind; the rest have no range.
            _ => true,
        };
        if let (false, Some(range)) = (ok, domain.range()) {
            return Err(Diag::error(format!("`{name}` of `{}` must be {range}", b.name()))
                .at(a.span(i), "out of range")
                .help(match *name {
                    "context" => "the number of ids in each window, e.g. `context: 64`",
                    "stride" => "how far each window starts after the previous one, e.g. `stride: 1`",
                    _ => "the share of samples held out for the test split, e.g. `test_fraction: 0.1`",
                }));
        }
    }
    Ok(())
}
