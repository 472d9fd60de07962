//! Convolution over NHWC images with HWIO kernels (XLA's ConvGeneralDilated
//! in one layout), as one op with three roles over a single index relation:
//!
//! ```text
//! y[b, o, g·cog + co]  ~  x[b, o·s + k·d − lo, g·cig + ci]  ·  w[k, ci, g·cog + co]
//! ```
//!
//! over every batch entry `b`, output position `o`, window offset `k`, group
//! `g` and channel pair `(ci, co)` whose input position lies inside the image
//! (the padding is zeros). `Forward` sums the products into `y` from `(x, w)`,
//! `InputGrad` into `x` from `(y, w)` and `FilterGrad` into `w` from `(x, y)`.
//! Each is linear in both operands and the adjoint of the other two, so the
//! VJP of any role is the other two roles: the family is closed under
//! differentiation, and one kernel driver computes all three.
//!
//! The shape rule ([`conv_shape`]) is generic over [`Extents`], so the
//! checker applies this very rule to symbolic dims.

use ndarray::ArrayD;

use crate::ir::dims::{Extents, Sizes};
use crate::ir::error::IrError;
use crate::ir::graph::Graph;
use crate::ir::op::{LoweringClass, Op, OpRule, VjpCtx, arity};
use crate::ir::tensor::Tensor;
use crate::ir::types::{DType, NodeId, ShapeDisplay, Type};

/// Which of the three tensors of the relation a node computes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ConvRole {
    /// `y` from `(x, w)`.
    Forward,
    /// `x` from `(y, w)`: the input gradient (a transposed convolution).
    InputGrad,
    /// `w` from `(x, y)`: the kernel gradient.
    FilterGrad,
}

/// The window geometry, one entry per spatial dim.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ConvAttrs {
    pub stride: Vec<usize>,
    /// Zeros added before and after each spatial dim.
    pub pad: Vec<[usize; 2]>,
    pub dilation: Vec<usize>,
    /// Channels split into this many independent groups (`cin` for depthwise).
    pub groups: usize,
}

impl ConvAttrs {
    /// Stride and dilation 1, no padding, one group.
    pub fn plain(rank: usize) -> ConvAttrs {
        ConvAttrs { stride: vec![1; rank], pad: vec![[0, 0]; rank], dilation: vec![1; rank], groups: 1 }
    }
}

/// A per-dim argument of `conv` as written: one value for every spatial
/// dim, one each, or (padding only) `"same"`.
#[derive(Clone, Debug, PartialEq)]
pub enum PerDim {
    All(i64),
    Each(Vec<i64>),
    Same,
}

impl ConvAttrs {
    /// The attributes of `conv(x, w, stride:, padding:, dilation:, groups:)`
    /// over `n` spatial dims, `window` the kernel's spatial sizes (needed,
    /// known, only for `"same"`). The checker and lowering both call this.
    pub fn from_args(
        n: usize,
        window: &[Option<i64>],
        [stride, padding, dilation]: [PerDim; 3],
        groups: i64,
    ) -> Result<ConvAttrs, String> {
        let each = |name: &str, v: &PerDim, min: i64| -> Result<Vec<usize>, String> {
            let vals = match v {
                PerDim::All(x) => vec![*x; n],
                PerDim::Each(xs) if xs.len() == n => xs.clone(),
                PerDim::Each(xs) => return Err(format!("`{name}` has {} entries for {n} spatial dims", xs.len())),
                PerDim::Same => return Err(format!("`{name}` must be an int or a list of ints")),
            };
            match vals.iter().find(|&&x| x < min) {
                Some(x) => Err(format!("`{name}` must be at least {min}, got {x}")),
                None => Ok(vals.into_iter().map(|x| x as usize).collect()),
            }
        };
        let stride = each("stride", &stride, 1)?;
        let dilation = each("dilation", &dilation, 1)?;
        let pad = if padding == PerDim::Same {
            if stride.iter().any(|&s| s != 1) {
                return Err("`padding: \"same\"` needs stride 1 (give the padding for strided windows)".into());
            }
            let mut pads = Vec::with_capacity(n);
            for (k, d) in window.iter().zip(&dilation) {
                let k = k.ok_or("`padding: \"same\"` needs the window's size known")?;
                let total = d * (k.max(1) as usize - 1);
                pads.push([total / 2, total - total / 2]);
            }
            pads
        } else {
            each("padding", &padding, 0)?.into_iter().map(|p| [p, p]).collect()
        };
        if groups < 1 {
            return Err(format!("`groups` must be at least 1, got {groups}"));
        }
        Ok(ConvAttrs { stride, pad, dilation, groups: groups as usize })
    }
}

/// The spatial ranks the code generator's driver supports.
pub const MAX_SPATIAL: usize = 3;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Conv {
    pub role: ConvRole,
    pub attrs: ConvAttrs,
    /// Spatial sizes of the image `x` (the input gradient cannot recover
    /// them from `y`: windows that do not fit are dropped).
    pub image: Vec<usize>,
    /// Spatial sizes of the window (likewise for the kernel gradient).
    pub window: Vec<usize>,
}

/// The forward shape rule: `x: [B, S.., cin]`, `w: [K.., cin / groups, cout]`
/// give `[B, O.., cout]` with `O = floor((S + lo + hi − d·(K − 1) − 1) / s) + 1`,
/// as Keras and PyTorch (windows that do not fit are dropped).
pub fn conv_shape<E: Extents>(e: &mut E, x: &[E::Dim], w: &[E::Dim], a: &ConvAttrs) -> Result<Vec<E::Dim>, String> {
    let n = x.len().saturating_sub(2);
    if x.len() < 3 || x.len() > MAX_SPATIAL + 2 {
        return Err(format!(
            "the image must be [batch, 1 to {MAX_SPATIAL} spatial dims, channels], got rank {}",
            x.len()
        ));
    }
    if w.len() != x.len() {
        return Err(format!(
            "a rank-{} image needs a rank-{} kernel [window.., cin, cout], got rank {}",
            x.len(),
            x.len(),
            w.len()
        ));
    }
    let per_dim = [a.stride.len(), a.pad.len(), a.dilation.len()];
    if per_dim.iter().any(|&l| l != n) {
        return Err(format!("stride, padding and dilation need {n} entries (one per spatial dim)"));
    }
    if a.stride.contains(&0) || a.dilation.contains(&0) || a.groups == 0 {
        return Err("stride, dilation and groups must be at least 1".into());
    }
    let groups = e.lit(a.groups as i64);
    let cin = e.mul(&w[n], &groups);
    if !e.same(&cin, &x[n + 1]) {
        let takes = match a.groups {
            1 => e.show(&w[n]),
            g => format!("{} per group x {g} groups = {}", e.show(&w[n]), e.show(&cin)),
        };
        return Err(format!("the image has {} channels but the kernel takes {takes}", e.show(&x[n + 1])));
    }
    if e.known(&w[n + 1]).is_some_and(|c| c % a.groups as i64 != 0) {
        return Err(format!("{} output channels do not split into {} groups", e.show(&w[n + 1]), a.groups));
    }
    let mut out = vec![x[0].clone()];
    for i in 0..n {
        out.push(window_dim(e, &x[i + 1], &w[i], a.stride[i], a.pad[i], a.dilation[i])?);
    }
    out.push(w[n + 1].clone());
    Ok(out)
}

/// The number of positions of a window `k` wide (dilated by `dil`) swept
/// with `stride` over a dim of `size` padded by `pad`:
/// `floor((size + lo + hi − dil·(k − 1) − 1) / stride) + 1`; windows that
/// would run past the end are dropped. Convolution and pooling both use it.
pub fn window_dim<E: Extents>(
    e: &mut E,
    size: &E::Dim,
    k: &E::Dim,
    stride: usize,
    pad: [usize; 2],
    dil: usize,
) -> Result<E::Dim, String> {
    if e.known(k).is_some_and(|k| k < 1) {
        return Err("the window must be at least 1 in every dim".into());
    }
    let d_k = e.mul(k, &e.lit(-(dil as i64)));
    let span = e.add(size, &d_k);
    let span = e.add(&span, &e.lit((pad[0] + pad[1] + dil) as i64 - 1));
    if e.known(&span).is_some_and(|v| v < 0) {
        let eff = e.known(k).map_or_else(|| e.show(k), |k| (dil as i64 * (k - 1) + 1).to_string());
        return Err(format!(
            "a window {eff} wide does not fit in a dim of {} padded by {} + {}",
            e.show(size),
            pad[0],
            pad[1]
        ));
    }
    let q = e.floor_div(&span, stride.max(1) as i64)?;
    Ok(e.add(&q, &e.lit(1)))
}

/// Visits every multi-index below `dims`, row-major.
fn odometer(dims: &[usize], f: &mut dyn FnMut(&[usize])) {
    if dims.contains(&0) {
        return;
    }
    let mut i = vec![0; dims.len()];
    loop {
        f(&i);
        let Some(d) = (0..dims.len()).rev().find(|&d| i[d] + 1 < dims[d]) else { return };
        i[d] += 1;
        i[d + 1..].iter_mut().for_each(|v| *v = 0);
    }
}

fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

impl Conv {
    fn spatial(&self) -> usize {
        self.image.len()
    }

    fn with_role(&self, role: ConvRole) -> Op {
        Op::Conv(Conv { role, ..self.clone() })
    }

    /// The shapes of `(x, w, y)` given this node's two input shapes.
    fn shapes(&self, a: &[usize], b: &[usize]) -> Result<[Vec<usize>; 3], String> {
        let n = self.spatial();
        if n == 0 || n > MAX_SPATIAL || self.window.len() != n {
            return Err(format!("1 to {MAX_SPATIAL} spatial dims, the image's and the window's"));
        }
        if a.len() != n + 2 || b.len() != n + 2 {
            return Err(format!("both operands must have rank {}", n + 2));
        }
        let g = self.attrs.groups.max(1);
        let (x, w) = match self.role {
            ConvRole::Forward => (a.to_vec(), b.to_vec()),
            ConvRole::InputGrad => ([&[a[0]][..], &self.image, &[b[n] * g]].concat(), b.to_vec()),
            ConvRole::FilterGrad => {
                if !a[n + 1].is_multiple_of(g) {
                    return Err(format!("{} channels do not split into {g} groups", a[n + 1]));
                }
                (a.to_vec(), [&self.window[..], &[a[n + 1] / g, b[n + 1]]].concat())
            }
        };
        if x[1..=n] != self.image[..] || w[..n] != self.window[..] {
            return Err("the operands' spatial sizes differ from the image and window attributes".into());
        }
        let i64s = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<_>>();
        let y: Vec<usize> =
            conv_shape(&mut Sizes, &i64s(&x), &i64s(&w), &self.attrs)?.into_iter().map(|d| d.max(0) as usize).collect();
        let given = match self.role {
            ConvRole::Forward => None,
            ConvRole::InputGrad => Some(a),
            ConvRole::FilterGrad => Some(b),
        };
        if given.is_some_and(|given| given != &y[..]) {
            return Err(format!("the output gradient must be {}", ShapeDisplay(&y)));
        }
        Ok([x, w, y])
    }

    /// Calls `f(xi, wi, yi)` with the flat indices of every triple of the
    /// relation (see the module doc).
    fn each_triple(&self, [x, w, y]: &[Vec<usize>; 3], f: &mut dyn FnMut(usize, usize, usize)) {
        let n = self.spatial();
        let a = &self.attrs;
        let (cig, cout) = (w[n], y[n + 1]);
        let cog = cout / a.groups;
        let (sx, sw, sy) = (row_major(x), row_major(w), row_major(y));
        for b in 0..x[0] {
            odometer(&y[1..=n], &mut |o| {
                odometer(&w[..n], &mut |k| {
                    let mut xo = b * sx[0];
                    for i in 0..n {
                        let p = (o[i] * a.stride[i] + k[i] * a.dilation[i]) as i64 - a.pad[i][0] as i64;
                        if p < 0 || p >= self.image[i] as i64 {
                            return;
                        }
                        xo += p as usize * sx[i + 1];
                    }
                    let yo = b * sy[0] + (0..n).map(|i| o[i] * sy[i + 1]).sum::<usize>();
                    let wo = (0..n).map(|i| k[i] * sw[i]).sum::<usize>();
                    for g in 0..a.groups {
                        for ci in 0..cig {
                            for co in 0..cog {
                                f(xo + g * cig + ci, wo + ci * cout + g * cog + co, yo + g * cog + co);
                            }
                        }
                    }
                })
            });
        }
    }
}

impl OpRule for Conv {
    fn name(&self) -> &'static str {
        "conv"
    }
    fn class(&self) -> LoweringClass {
        LoweringClass::Contraction
    }
    fn attrs(&self) -> String {
        let a = &self.attrs;
        let role = match self.role {
            ConvRole::Forward => "fwd",
            ConvRole::InputGrad => "dx",
            ConvRole::FilterGrad => "dw",
        };
        let pad: Vec<String> = a.pad.iter().map(|[l, h]| format!("{l}:{h}")).collect();
        format!(
            "{role} image={} window={} stride={} pad=[{}] dil={} groups={}",
            ShapeDisplay(&self.image),
            ShapeDisplay(&self.window),
            ShapeDisplay(&a.stride),
            pad.join(","),
            ShapeDisplay(&a.dilation),
            a.groups
        )
    }
    fn infer(&self, ins: &[&Type]) -> Result<Type, IrError> {
        arity("conv", ins, 2)?;
        let err = |m: String| IrError::ty("conv", format!("{m} ({} and {}, {})", ins[0], ins[1], self.attrs()));
        if ins[0].dtype != DType::F32 || ins[1].dtype != DType::F32 {
            return Err(err("operands must be f32".into()));
        }
        let [x, w, y] = self.shapes(&ins[0].shape, &ins[1].shape).map_err(err)?;
        Ok(Type::f32(match self.role {
            ConvRole::Forward => y,
            ConvRole::InputGrad => x,
            ConvRole::FilterGrad => w,
        }))
    }
    fn eval(&self, ty: &Type, ins: &[&Tensor]) -> Result<Tensor, IrError> {
        let flat = |t: &Tensor| t.float("conv").map(|a| a.iter().copied().collect::<Vec<f64>>());
        let (a, b) = (flat(ins[0])?, flat(ins[1])?);
        let shapes = self.shapes(ins[0].shape(), ins[1].shape()).map_err(|m| IrError::ty("conv", m))?;
        let mut out = vec![0.0; ty.numel()];
        let role = self.role;
        self.each_triple(&shapes, &mut |xi, wi, yi| match role {
            ConvRole::Forward => out[yi] += a[xi] * b[wi],
            ConvRole::InputGrad => out[xi] += a[yi] * b[wi],
            ConvRole::FilterGrad => out[wi] += a[xi] * b[yi],
        });
        let arr = ArrayD::from_shape_vec(ty.shape.clone(), out).map_err(|e| IrError::ty("conv", e.to_string()))?;
        Ok(Tensor::Float(arr))
    }
    fn vjp(&self, g: &mut Graph, cx: &VjpCtx) -> Result<Vec<Option<NodeId>>, IrError> {
        use ConvRole::{FilterGrad, Forward, InputGrad};
        let (a, b, c) = (cx.inputs[0], cx.inputs[1], cx.cot);
        // (role, operands) of each input's cotangent.
        let rules = match self.role {
            Forward => [(InputGrad, [c, b]), (FilterGrad, [a, c])],
            InputGrad => [(Forward, [c, b]), (FilterGrad, [c, a])],
            FilterGrad => [(InputGrad, [b, c]), (Forward, [a, c])],
        };
        let mut out = Vec::with_capacity(2);
        for (i, (role, ops)) in rules.into_iter().enumerate() {
            out.push(if cx.wants[i] { Some(g.insert(self.with_role(role), &ops)?) } else { None });
        }
        Ok(out)
    }
}
