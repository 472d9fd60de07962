//! Scheduling: an optimized [`ir::Graph`](crate::ir::Graph) becomes a list of
//! kernels over a static buffer plan.
//!
//! - Elementwise chains fuse into one loop; movement ops (reshape, permute,
//!   broadcast, slice) become strided [`View`]s on the loads, not copies.
//! - A reduction's elementwise producer is evaluated inside its loop; the
//!   result is accumulated into the destination ([`StoreMode::Add`]/`Max`),
//!   which the same kernel starts at the identity ([`Store::init`]).
//! - A contraction is a [`GemmKernel`] (a call into the `gemm` crate) over
//!   operands whose views reduce to `[batch, rows, cols]` strides; other
//!   operands are packed by a loop kernel first. A contraction read only
//!   through one permutation is written in that layout (the transposed
//!   weight gradient), so its readers see it contiguous.
//! - Loop kernels over the same space merge when no element of one depends
//!   on another element of the other: a multi-output loop (the whole Adam
//!   update is one pass), producers feeding consumers through registers.
//!   An elementwise consumer of a matrix product becomes its epilogue.
//!   Dims that every view walks contiguously are then collapsed into one.
//! - A convolution is a [`ConvKernel`]: a call into the runtime's driver,
//!   which tiles im2col and products (see `src/build/conv.c`), over dense
//!   operands (others are packed by a loop kernel first).
//! - Gather is an expression node (fusable); scatter-add, pad and concat are
//!   loop kernels with special destinations.
//! - Every buffer is bound to a caller slot (graph inputs and outputs) or
//!   placed in one arena by a liveness plan; nothing is allocated per step.
//!
//! Invariants the code generator relies on: kernels run in list order; every
//! [`View`] of a kernel has the kernel's `space` as its shape; expression
//! nodes refer only to earlier nodes of the same kernel; every read stays
//! inside its buffer (views are derived from in-bounds movement ops, gather
//! and scatter indices are range-checked by the generated code).

#![warn(clippy::wildcard_enum_match_arm)]

mod collapse;
mod fuse;
mod merge;
mod plan;
mod print;
pub use print::Annotated;
mod verify;
pub mod view;

use std::fmt;

use crate::ir::{BinaryOp, ConvRole, DType, Graph, NodeId, Origin, Shape, UnaryOp};
pub use view::{Tf, View};

/// Scheduling options.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// An output named like an input (with the same type) shares that
    /// input's slot: the caller's buffer is updated in place.
    pub in_place: bool,
}

/// Why a graph could not be scheduled.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleError {
    /// The graph breaks an IR invariant the scheduler relies on.
    Invalid(String),
    /// A size or index that does not fit the generated code's integers.
    TooLarge(String),
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::Invalid(m) => write!(f, "cannot schedule: {m}"),
            ScheduleError::TooLarge(m) => write!(f, "too large to compile: {m}"),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// A buffer id: an index into [`Schedule::buffers`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct BufId(pub u32);

impl BufId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for BufId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// Where a buffer lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Place {
    /// The caller's buffer in slot `i` of [`Schedule::slots`].
    Slot(usize),
    /// Byte offset into the arena (set by the plan).
    Arena(usize),
    /// Byte offset into the constant segment (literals, written once).
    Const(usize),
}

#[derive(Clone, Debug)]
pub struct Buffer {
    pub dtype: DType,
    pub shape: Shape,
    pub place: Place,
    /// The graph node whose value this buffer holds, if any.
    pub node: Option<NodeId>,
}

impl Buffer {
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * elem_size(self.dtype)
    }
}

/// Bytes per element in memory (bool is one byte, 0 or 1).
pub fn elem_size(dtype: DType) -> usize {
    match dtype {
        DType::F32 | DType::I32 => 4,
        DType::Bool | DType::U8 => 1,
    }
}

/// What a caller slot is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlotRole {
    Input,
    Output,
    /// An input whose new value the step writes back (in-place mode).
    InOut,
}

/// A caller-visible buffer, by graph input/output name.
#[derive(Clone, Debug)]
pub struct Slot {
    pub name: String,
    pub role: SlotRole,
    pub dtype: DType,
    pub shape: Shape,
}

/// An index into a [`LoopKernel`]'s expression nodes.
pub type ExprId = u32;

/// One node of a fused expression, evaluated per element of the kernel space.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `buf` at `view` (offset in elements).
    Load {
        buf: BufId,
        view: View,
    },
    Const(f64),
    /// The affine value of `view` at the index (iota).
    Iota(View),
    /// `random_uniform(key, salt, flat index)`, the flat index given by `index`.
    Random {
        key: ExprId,
        salt: u64,
        index: View,
    },
    Unary(UnaryOp, ExprId),
    Binary(BinaryOp, ExprId, ExprId),
    Select(ExprId, ExprId, ExprId),
    Cast(DType, ExprId),
    /// `buf[view + index * stride]` if `0 <= index < dim`, else 0.
    Gather {
        buf: BufId,
        view: View,
        index: ExprId,
        stride: i64,
        dim: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ENode {
    pub expr: Expr,
    pub dtype: DType,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StoreMode {
    Assign,
    /// `dst += value` (sum reductions, scatter-add).
    Add,
    /// `dst = max(dst, value)`, NaN-propagating.
    Max,
}

/// A data-dependent destination: the element goes `index * stride` further,
/// and is dropped unless `0 <= index < dim`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scatter {
    pub index: ExprId,
    pub stride: i64,
    pub dim: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Store {
    pub buf: BufId,
    pub view: View,
    pub value: ExprId,
    pub mode: StoreMode,
    pub scatter: Option<Scatter>,
    /// An accumulating store whose destination this kernel first sets to
    /// the mode's identity (a reduction), instead of adding to it.
    pub init: bool,
}

/// A loop nest over `space`, row-major, evaluating `nodes` and doing
/// `stores` for every index.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopKernel {
    pub space: Shape,
    pub nodes: Vec<ENode>,
    pub stores: Vec<Store>,
}

/// One strided matrix operand: element `(b, r, c)` at
/// `offset + b*bs + r*rs + c*cs` of `buf`.
#[derive(Clone, Debug, PartialEq)]
pub struct MatOperand {
    pub buf: BufId,
    pub offset: i64,
    pub bs: i64,
    pub rs: i64,
    pub cs: i64,
}

/// `out[b] = lhs[b] (m x k) * rhs[b] (k x n)`, then the epilogue.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmKernel {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lhs: MatOperand,
    pub rhs: MatOperand,
    /// Any strides (a transposed output is written transposed).
    pub out: MatOperand,
    /// A loop over `[m, n]` (batch 1, `out` row-major) run on the rows
    /// just computed, while they are in cache.
    pub epilogue: Option<LoopKernel>,
}

/// A convolution's geometry as the runtime's driver (`src/build/conv.c`)
/// reads it: three spatial dims (1- and 2-D ones padded with leading 1s).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGeom {
    pub role: ConvRole,
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub groups: usize,
    pub image: [usize; 3],
    pub window: [usize; 3],
    pub out: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
    pub dilation: [usize; 3],
    /// Images, kernel rows or output channels per unit (see [`Self::units`]).
    pub block: usize,
    /// The driver's direct kernels rather than products (see [`Self::direct`]).
    pub direct: bool,
    /// Partial kernel gradients, one per block of images (see [`Self::parts`]).
    pub parts: usize,
}

impl ConvGeom {
    /// Items per unit. Each unit is computed on its own, with the same
    /// products on any thread, so the unit, not the thread count, fixes the
    /// order of every sum: images enough for about 1024 output pixels (a
    /// tile of products); for the kernel gradient, half the rows of the
    /// window (the driver packs whole rows as contiguous runs, and each
    /// unit reads all of dY: a small kernel is one unit) or, with groups or
    /// a dilated last dim, about 64 kernel rows of whole window offsets;
    /// one where the driver loops directly (depthwise).
    pub fn block(&self) -> usize {
        let (cig, cog) = (self.cin / self.groups.max(1), self.cout / self.groups.max(1));
        if cig == 1 && cog == 1 {
            return 1;
        }
        if self.parts > 0 {
            return self.batch.div_ceil(self.parts);
        }
        match self.role {
            ConvRole::Forward | ConvRole::InputGrad => (1024 / self.out.iter().product::<usize>().max(1)).max(1),
            // Each unit streams all of dY: few units.
            ConvRole::FilterGrad if self.groups == 1 && self.dilation[2] == 1 => {
                let (row, rows) = (self.window[2] * self.cin, self.window[0] * self.window[1]);
                if row * rows <= 64 { row * rows } else { row * rows.div_ceil(2) }
            }
            ConvRole::FilterGrad => cig * 64usize.div_ceil(cig),
        }
    }

    /// Rows of the kernel matrix: window offsets x input channels per group.
    fn kernel_rows(&self) -> usize {
        self.window.iter().product::<usize>() * (self.cin / self.groups.max(1))
    }

    /// Whether the driver's direct kernels (loops over the window with a
    /// register tile of output channels, src/build/conv.c) run this role
    /// instead of products: where the products would be thin, with 16 or
    /// fewer output channels per group or a reduction shorter than 64. They
    /// need output channels per group in multiples of 8; the input gradient
    /// runs as a forward convolution of dY with the flipped kernel (stride 1),
    /// whose output channels are the input's. Measured per role with
    /// `cargo bench --bench codegen -- conv` (BENCHMARKS.md): a first layer
    /// (1 -> 32) 2.4x faster forward and 2.6x for the kernel gradient, 16 -> 16
    /// 1.3x, 2.5x and 1.2x; at 32 -> 32 and wider the products win.
    pub fn direct(&self) -> bool {
        let (cig, cog) = (self.cin / self.groups.max(1), self.cout / self.groups.max(1));
        let pointwise = self.window == [1; 3] && self.stride == [1; 3] && self.pad == [0; 3];
        if pointwise || (cig == 1 && cog == 1) {
            return false;
        }
        let taps = self.window.iter().product::<usize>();
        let thin = |channels: usize, rows: usize| channels.is_multiple_of(8) && (channels <= 16 || rows < 64);
        match self.role {
            ConvRole::Forward | ConvRole::FilterGrad => thin(cog, taps * cig),
            ConvRole::InputGrad => {
                let flippable =
                    (0..3).all(|i| self.stride[i] == 1 && self.pad[i] <= self.dilation[i] * (self.window[i] - 1));
                flippable && thin(cig, taps * cog)
            }
        }
    }

    /// How many blocks of images compute the kernel gradient apart, each
    /// into its own copy that a loop then sums (0: one pass over all images,
    /// split by kernel rows). Kernel rows split a 3x3 window into at most
    /// three units, which two threads share 2:1; blocks of images split
    /// evenly. A fixed count, not the thread count, so results do not
    /// depend on it; at most 8 copies and 4 Mi floats of them, and none for
    /// kernels too small to be worth splitting.
    pub fn parts(&self) -> usize {
        let (cig, cog) = (self.cin / self.groups.max(1), self.cout / self.groups.max(1));
        if self.role != ConvRole::FilterGrad || (cig == 1 && cog == 1) || self.flops() < 4 << 20 {
            return 0;
        }
        let copies = (4 << 20) / (self.kernel_rows() * self.cout).max(1);
        // Every copy gets images: 10 images in 8 parts would be 5 blocks of 2.
        let per = self.batch.div_ceil(self.batch.min(8).min(copies).max(1));
        let parts = self.batch.div_ceil(per);
        if parts >= 2 { parts } else { 0 }
    }

    /// The driver's descriptor, word for word (`nnc_conv_desc`).
    pub fn words(&self) -> Vec<i64> {
        let role = match self.role {
            ConvRole::Forward => 0,
            ConvRole::InputGrad => 1,
            ConvRole::FilterGrad => 2,
        };
        let head = [role, self.batch, self.cin, self.cout, self.groups];
        let dims = [self.image, self.window, self.out, self.stride, self.pad, self.dilation];
        let tail = [self.block, self.direct as usize, self.parts];
        head.into_iter().chain(dims.into_iter().flatten()).chain(tail).map(|v| v as i64).collect()
    }

    /// The units threads split, [`Self::block`] items each: images, or for
    /// the kernel gradient rows of the kernel matrix (window offsets x
    /// channels per group) or, with [`Self::parts`], images again.
    pub fn units(&self) -> usize {
        let items = match self.role {
            ConvRole::Forward | ConvRole::InputGrad => self.batch,
            ConvRole::FilterGrad if self.parts > 0 => self.batch,
            ConvRole::FilterGrad => self.kernel_rows(),
        };
        items.div_ceil(self.block.max(1))
    }

    /// Multiply-adds, twice.
    pub fn flops(&self) -> usize {
        let pixels = self.batch * self.out.iter().product::<usize>();
        2 * pixels * self.window.iter().product::<usize>() * (self.cin / self.groups.max(1)) * self.cout
    }
}

/// One role of a convolution over dense NHWC / HWIO buffers (offsets in
/// elements), by the runtime's driver; `desc` is the byte offset of
/// [`ConvGeom::words`] in the constant segment.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvKernel {
    pub geom: ConvGeom,
    pub desc: usize,
    pub x: (BufId, i64),
    pub w: (BufId, i64),
    pub y: (BufId, i64),
}

impl ConvKernel {
    /// The operands the role reads and the one it writes.
    pub fn roles(&self) -> ([(BufId, i64); 2], (BufId, i64)) {
        match self.geom.role {
            ConvRole::Forward => ([self.x, self.w], self.y),
            ConvRole::InputGrad => ([self.y, self.w], self.x),
            ConvRole::FilterGrad => ([self.x, self.y], self.w),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum KernelBody {
    Loop(LoopKernel),
    Gemm(GemmKernel),
    Conv(ConvKernel),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// What the kernel computes, for dumps (`fused %18..%21`).
    pub label: String,
    pub body: KernelBody,
    /// The graph nodes it computes, by origin and op kind, for the
    /// profiler's attribution of a fused kernel's time.
    pub origins: Vec<Share>,
}

/// Nodes of one origin and op kind in a kernel, and their work: FLOPs of
/// a product, elements of anything else.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Share {
    pub origin: Origin,
    pub op: &'static str,
    pub work: f64,
}

/// Adds `s` to `shares`, merging it with an entry of the same origin and op.
pub fn add_share(shares: &mut Vec<Share>, s: Share) {
    match shares.iter_mut().find(|x| x.origin == s.origin && x.op == s.op) {
        Some(x) => x.work += s.work,
        None => shares.push(s),
    }
}

/// The whole step: kernels in order over planned buffers.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub slots: Vec<Slot>,
    pub buffers: Vec<Buffer>,
    pub kernels: Vec<Kernel>,
    /// Arena size in bytes (64-byte aligned offsets).
    pub arena_bytes: usize,
    /// The constant segment's initial contents (literals).
    pub consts: Vec<u8>,
}

/// A graph ready for code generation: optimized, and its schedule.
pub struct Prepared {
    pub graph: Graph,
    pub schedule: Schedule,
}

/// The back end's one entry point: graph → verify → optimize → schedule →
/// verify the schedule. `nnc run`, `watch`, `predict` (through the JIT in
/// `runtime`), `build` (an object file) and `nnc ir --stage kernels` all
/// compile what this returns, so what `ir` shows is what runs.
pub fn prepare(g: &Graph, opts: Options) -> Result<Prepared, ScheduleError> {
    fn ir(stage: &'static str) -> impl Fn(crate::ir::IrError) -> ScheduleError {
        move |e| ScheduleError::Invalid(format!("{stage}: {e}"))
    }
    crate::ir::verify(g).map_err(ir("the lowered graph"))?;
    let graph = crate::opt::optimize(g).map_err(ir("optimizing"))?;
    crate::ir::verify(&graph).map_err(ir("the optimized graph"))?;
    let schedule = schedule(&graph, opts)?;
    Ok(Prepared { graph, schedule })
}

/// Schedules `g` (which should already be optimized and verified); the
/// plan is verified before it is returned.
pub fn schedule(g: &Graph, opts: Options) -> Result<Schedule, ScheduleError> {
    let mut s = fuse::run(g, opts)?;
    s.kernels = merge::run(std::mem::take(&mut s.kernels), &s.buffers);
    s.kernels.iter_mut().for_each(collapse::run);
    plan::run(&mut s)?;
    verify::verify(&s)?;
    Ok(s)
}

/// How one expression reads memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Access<'a> {
    Nothing,
    /// The element of `buf` at this view of the kernel's index.
    Element(BufId, &'a View),
    /// Any element of `buf`: the index is data.
    Indexed(BufId),
}

impl Expr {
    /// The memory this expression reads. Every buffer analysis (liveness,
    /// in-place and merge safety, the schedule verifier) asks this one
    /// exhaustive method, so a new kind of read cannot slip past them.
    pub fn reads(&self) -> Access<'_> {
        match self {
            Expr::Load { buf, view } => Access::Element(*buf, view),
            Expr::Gather { buf, .. } => Access::Indexed(*buf),
            Expr::Const(_) | Expr::Iota(_) | Expr::Random { .. } => Access::Nothing,
            Expr::Unary(..) | Expr::Binary(..) | Expr::Select(..) | Expr::Cast(..) => Access::Nothing,
        }
    }

    /// The expression's operands (earlier nodes of its kernel).
    pub fn operands(&self, mut f: impl FnMut(ExprId)) {
        match self {
            Expr::Load { .. } | Expr::Const(_) | Expr::Iota(_) => {}
            Expr::Random { key, .. } => f(*key),
            Expr::Unary(_, x) | Expr::Cast(_, x) | Expr::Gather { index: x, .. } => f(*x),
            Expr::Binary(_, x, y) => {
                f(*x);
                f(*y);
            }
            Expr::Select(c, x, y) => {
                f(*c);
                f(*x);
                f(*y);
            }
        }
    }
}

impl LoopKernel {
    /// Buffers this kernel reads.
    pub fn reads(&self) -> impl Iterator<Item = BufId> + '_ {
        self.nodes.iter().filter_map(|n| match n.expr.reads() {
            Access::Element(buf, _) | Access::Indexed(buf) => Some(buf),
            Access::Nothing => None,
        })
    }
}

impl Kernel {
    /// A kernel no graph node stands for (a copy between buffers).
    pub fn plain(label: String, body: KernelBody) -> Kernel {
        Kernel { label, body, origins: Vec::new() }
    }

    /// `self` followed by `other`, as one kernel with both origins.
    pub fn joined(&self, other: &Kernel, body: KernelBody) -> Kernel {
        let mut origins = self.origins.clone();
        for &s in &other.origins {
            add_share(&mut origins, s);
        }
        Kernel { label: format!("{} + {}", self.label, other.label), body, origins }
    }

    /// Floating-point operations of its products (multiply-adds count
    /// twice); elementwise loops count none, as in the step's summary.
    pub fn flops(&self) -> usize {
        match &self.body {
            KernelBody::Gemm(g) => 2 * g.batch * g.m * g.n * g.k,
            KernelBody::Conv(c) => c.geom.flops(),
            KernelBody::Loop(_) => 0,
        }
    }

    /// Bytes it must move at least: every buffer it touches, once.
    pub fn bytes(&self, bufs: &[Buffer]) -> usize {
        let mut seen: Vec<BufId> = self.reads();
        seen.extend(self.writes());
        seen.sort_unstable_by_key(|b| b.index());
        seen.dedup();
        seen.iter().map(|b| bufs[b.index()].bytes()).sum()
    }

    /// Buffers read (accumulating stores also read their destination).
    pub fn reads(&self) -> Vec<BufId> {
        match &self.body {
            KernelBody::Loop(l) => {
                let acc = l.stores.iter().filter(|s| s.mode != StoreMode::Assign && !s.init);
                l.reads().chain(acc.map(|s| s.buf)).collect()
            }
            KernelBody::Gemm(g) => {
                let epi = g.epilogue.iter().flat_map(|l| l.reads());
                [g.lhs.buf, g.rhs.buf].into_iter().chain(epi).collect()
            }
            KernelBody::Conv(c) => c.roles().0.iter().map(|r| r.0).collect(),
        }
    }

    pub fn writes(&self) -> Vec<BufId> {
        match &self.body {
            KernelBody::Loop(l) => l.stores.iter().map(|s| s.buf).collect(),
            KernelBody::Gemm(g) => {
                let epi = g.epilogue.iter().flat_map(|l| l.stores.iter().map(|s| s.buf));
                std::iter::once(g.out.buf).chain(epi).collect()
            }
            KernelBody::Conv(c) => vec![c.roles().1.0],
        }
    }
}

impl LoopKernel {
    /// Whether the inner loop can run four lanes at a time: every store is
    /// f32/i32 with inner stride 0 or 1 (accumulating stores may also be
    /// 0), and every op has a vector form (no gathers, scatters, integer
    /// division, u8 math). Strided loads are put together lane by lane.
    pub fn vectorizable(&self, bufs: &[Buffer]) -> bool {
        let inner_ok = self.space.last().is_some_and(|&n| n >= 4);
        inner_ok
            && self.nodes.iter().all(|n| self.node_vectorizable(n))
            && self.stores.iter().all(|s| store_vectorizable(s, bufs))
    }

    fn node_vectorizable(&self, n: &ENode) -> bool {
        let dt = |x: ExprId| self.nodes[x as usize].dtype;
        // u8 is loaded (and widened), never computed on, in vectors.
        let is_load = matches!(n.expr, Expr::Load { .. });
        (n.dtype != DType::U8 || is_load)
            && match &n.expr {
                Expr::Load { .. } | Expr::Random { .. } => true,
                Expr::Const(_) | Expr::Select(..) | Expr::Iota(_) => true,
                Expr::Gather { .. } => false,
                // Scalar runtime calls (sin, cos) go lane by lane.
                Expr::Unary(..) => true,
                Expr::Binary(op, a, _) => {
                    let int_div = *op == BinaryOp::Div && dt(*a) != DType::F32;
                    *op != BinaryOp::Pow && !int_div && !(dt(*a) == DType::Bool && is_compare(*op))
                }
                Expr::Cast(..) => true,
            }
    }
}

fn store_vectorizable(s: &Store, bufs: &[Buffer]) -> bool {
    let stride = s.view.inner_stride();
    s.scatter.is_none()
        && matches!(bufs[s.buf.index()].dtype, DType::F32 | DType::I32)
        && (stride == 1 || (stride == 0 && s.mode != StoreMode::Assign))
}

/// Whether `op` compares (its result is bool).
pub fn is_compare(op: BinaryOp) -> bool {
    use BinaryOp as B;
    match op {
        B::Lt | B::Le | B::Gt | B::Ge | B::Eq | B::Ne => true,
        B::Add | B::Sub | B::Mul | B::Div | B::Pow | B::Max | B::Min | B::And | B::Or => false,
    }
}
