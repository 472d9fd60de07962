//! Fusion: decide which nodes get a buffer, then build one or more kernels
//! per materialised node, inlining everything else as expressions.
//!
//! A node is materialised when it is a graph input/output or literal, when
//! its op needs its own kernel (reduce, contract, pad, concat, scatter-add,
//! random), when it feeds a broadcast (so it is not recomputed per copy), or
//! when its value reaches more than one kernel (so it is computed once).
//! Movement ops, constants and iota are always recomputed: they are index
//! arithmetic. A reshape that no strided view can express (a transposed
//! view merged into one dim) materialises its input and scheduling restarts.

use std::collections::HashMap;

use super::view::{Tf, View};
use super::{
    Access, BufId, Buffer, ConvGeom, ConvKernel, ENode, Expr, ExprId, GemmKernel, Kernel, KernelBody, LoopKernel,
    MatOperand, Options, Place, Scatter, Schedule, ScheduleError, Share, Slot, SlotRole, Store, StoreMode, add_share,
    elem_size,
};
use crate::ir::ops::contract::free_dims;
use crate::ir::{BinaryOp, Contract, Conv, ConvRole, DType, Graph, NodeId, Op, ReduceOp, Shape, Type, UnaryOp};

/// Why building kernels stopped.
enum Stop {
    /// Materialise this node and start again.
    Retry(NodeId),
    Fail(ScheduleError),
}

impl From<ScheduleError> for Stop {
    fn from(e: ScheduleError) -> Stop {
        Stop::Fail(e)
    }
}

fn invalid(msg: impl Into<String>) -> Stop {
    Stop::Fail(ScheduleError::Invalid(msg.into()))
}

pub(super) fn run(g: &Graph, opts: Options) -> Result<Schedule, ScheduleError> {
    crate::ir::verify(g).map_err(|e| ScheduleError::Invalid(e.to_string()))?;
    check_sizes(g)?;
    let mut mat = initial(g);
    let layouts = layouts(g);
    loop {
        match Builder::new(g, opts, &mat, &layouts).build() {
            Ok(s) => return Ok(s),
            Err(Stop::Retry(id)) if !mat[id.index()] => mat[id.index()] = true,
            Err(Stop::Retry(id)) => {
                return Err(ScheduleError::Invalid(format!(
                    "{id} is materialised but still not expressible as a view"
                )));
            }
            Err(Stop::Fail(e)) => return Err(e),
        }
    }
}

/// Offsets are i64 in generated code and indices i32: refuse what overflows.
fn check_sizes(g: &Graph) -> Result<(), ScheduleError> {
    for n in g.nodes() {
        let bytes = n.ty.shape.iter().try_fold(elem_size(n.ty.dtype), |a, &d| a.checked_mul(d));
        if bytes.is_none_or(|b| b > (i64::MAX / 4) as usize) {
            return Err(ScheduleError::TooLarge(format!("{} ({})", n.ty, n.op.name())));
        }
    }
    Ok(())
}

/// Recomputing these per use costs no more than loading them.
fn cheap(op: &Op) -> bool {
    match op {
        Op::Const(_) | Op::Iota(_) | Op::StopGradient => true,
        Op::Reshape(_) | Op::Permute(_) | Op::Broadcast(_) | Op::Slice(_) => true,
        Op::Input(_) | Op::Literal(_) | Op::Random(_) | Op::Unary(_) | Op::Binary(_) => false,
        Op::Select | Op::Cast(_) | Op::Reduce(_) | Op::Pad(_) | Op::Concat(_) => false,
        Op::Contract(_) | Op::Conv(_) | Op::Gather(_) | Op::ScatterAdd(_) => false,
    }
}

/// Ops that always get their own buffer (and kernel, unless a source).
fn own_buffer(op: &Op) -> bool {
    match op {
        Op::Input(_) | Op::Literal(_) | Op::Random(_) | Op::Reduce(_) | Op::Contract(_) | Op::Conv(_) => true,
        Op::Pad(_) | Op::Concat(_) | Op::ScatterAdd(_) => true,
        Op::Const(_) | Op::Iota(_) | Op::Unary(_) | Op::Binary(_) | Op::Select => false,
        Op::Cast(_) | Op::StopGradient | Op::Reshape(_) | Op::Permute(_) => false,
        Op::Broadcast(_) | Op::Slice(_) | Op::Gather(_) => false,
    }
}

/// The first materialisation decision (see the module doc).
fn initial(g: &Graph) -> Vec<bool> {
    let need = crate::opt::dce::live(g);
    let mut mat = vec![false; g.len()];
    let mut users: Vec<Vec<NodeId>> = vec![Vec::new(); g.len()];
    for id in g.ids().filter(|id| need[id.index()]) {
        let n = g.node(id);
        mat[id.index()] |= own_buffer(&n.op);
        for x in &n.inputs {
            users[x.index()].push(id);
        }
        match &n.op {
            Op::Gather(_) => mat[n.inputs[0].index()] = true,
            Op::Broadcast(_) => {
                let x = n.inputs[0];
                let expands = g.node(x).ty.numel() < n.ty.numel();
                mat[x.index()] |= expands && !cheap(&g.node(x).op);
            }
            Op::Input(_) | Op::Const(_) | Op::Literal(_) | Op::Iota(_) | Op::Random(_) | Op::Unary(_) => {}
            Op::Binary(_) | Op::Select | Op::Cast(_) | Op::StopGradient | Op::Reduce(_) | Op::Reshape(_) => {}
            Op::Permute(_) | Op::Slice(_) | Op::Pad(_) | Op::Concat(_) | Op::Contract(_) | Op::ScatterAdd(_) => {}
            Op::Conv(_) => {}
        }
    }
    for (_, id) in g.outputs() {
        mat[id.index()] = true;
    }
    // Every input gets a slot, used or not, so callers can bind them all.
    for id in g.inputs() {
        mat[id.index()] = true;
    }
    // The kernel(s) each value reaches; reverse order sees users first.
    let mut root: Vec<Option<NodeId>> = vec![None; g.len()];
    for id in g.ids().rev().filter(|id| need[id.index()]) {
        if mat[id.index()] {
            root[id.index()] = Some(id);
            continue;
        }
        let mut reach = users[id.index()].iter().map(|u| root[u.index()]);
        let first = reach.next().flatten();
        let single = first.is_some() && reach.all(|r| r == first);
        if !single && !cheap(&g.node(id).op) {
            mat[id.index()] = true;
            root[id.index()] = Some(id);
        } else if single {
            root[id.index()] = first;
        }
    }
    recompute_cheap(g, &need, &mut mat);
    mat
}

/// Values worth recomputing in every kernel that reads them rather than
/// storing once and loading back: a few cheap elementwise ops over stored
/// values (a pooling mask `f32(x == broadcast(max))`, read by its count and
/// by the gradient). Each reader loads the operands instead of the value;
/// the store and its buffer are gone. Only values that reach several
/// kernels are in question (one reader never stores them), and never one
/// that is expanded by a broadcast (it would be recomputed per copy).
fn recompute_cheap(g: &Graph, need: &[bool], mat: &mut [bool]) {
    const MAX_OPS: usize = 3;
    // Kept: values a broadcast expands (recomputed per output element) and
    // the data gathers read (they index a buffer).
    let mut keep = vec![false; g.len()];
    for id in g.ids().filter(|id| need[id.index()]) {
        let n = g.node(id);
        if let Op::Broadcast(_) = n.op {
            keep[n.inputs[0].index()] |= g.node(n.inputs[0]).ty.numel() < n.ty.numel();
        } else if let Op::Gather(_) = n.op {
            keep[n.inputs[0].index()] = true;
        }
    }
    let outputs: Vec<NodeId> = g.outputs().iter().map(|(_, id)| *id).collect();
    // In id order: a value whose operand was just unstored keeps its buffer.
    for id in g.ids() {
        if !need[id.index()] || !mat[id.index()] {
            continue;
        }
        let kept = own_buffer(&g.node(id).op) || keep[id.index()] || outputs.contains(&id);
        if !kept && recompute_ops(g, id, mat, MAX_OPS, &mut Vec::new()).is_some() {
            mat[id.index()] = false;
        }
    }
}

/// The elementwise ops `id` costs down to stored values (and views and
/// constants of them), if all of them are cheap and there are at most
/// `budget` (the walk stops there, so a long fused chain is not walked).
/// Shared subexpressions count once (`seen`): GELU's `0.0447 x²` is
/// `x * (x * c)` with `x = product + bias`, three operations, not four.
fn recompute_ops(g: &Graph, id: NodeId, mat: &[bool], budget: usize, seen: &mut Vec<NodeId>) -> Option<usize> {
    if seen.contains(&id) {
        return Some(0);
    }
    seen.push(id);
    let n = g.node(id);
    let own = match &n.op {
        Op::Const(_) | Op::Iota(_) => return Some(0),
        Op::Reshape(_) | Op::Permute(_) | Op::Broadcast(_) | Op::Slice(_) | Op::StopGradient => 0,
        Op::Unary(u) if cheap_unary(*u) => 1,
        Op::Binary(b) if *b != BinaryOp::Pow && *b != BinaryOp::Div => 1,
        Op::Select | Op::Cast(_) => 1,
        Op::Unary(_) | Op::Binary(_) | Op::Input(_) | Op::Literal(_) | Op::Random(_) | Op::Reduce(_) => return None,
        Op::Pad(_) | Op::Concat(_) | Op::Contract(_) | Op::Conv(_) | Op::Gather(_) | Op::ScatterAdd(_) => return None,
    };
    let mut used = own;
    for &x in &n.inputs {
        if used > budget {
            return None;
        }
        used += if mat[x.index()] { 0 } else { recompute_ops(g, x, mat, budget - used, seen)? };
    }
    (used <= budget).then_some(used)
}

/// Unary ops a few instructions long (not polynomial kernels or calls).
fn cheap_unary(u: UnaryOp) -> bool {
    use UnaryOp as U;
    match u {
        U::Neg | U::Abs | U::Floor | U::Sign | U::Not => true,
        U::Exp | U::Log | U::Sqrt | U::Rsqrt | U::Tanh | U::Sigmoid | U::Sin | U::Cos | U::Erf | U::Recip => false,
    }
}

/// The memory layout of each contraction read only through one permutation
/// (`permute(contract(..))`, the transposed weight gradient): its buffer
/// holds that permutation's result, which gemm writes through its output
/// strides, so readers load it contiguously.
fn layouts(g: &Graph) -> Vec<Option<Vec<usize>>> {
    let need = crate::opt::dce::live(g);
    let mut perms: Vec<Option<Option<Vec<usize>>>> = vec![None; g.len()];
    for id in g.ids().filter(|id| need[id.index()]) {
        let n = g.node(id);
        for &x in &n.inputs {
            let seen = if let Op::Permute(p) = &n.op { Some(p.perm.clone()) } else { None };
            let slot = &mut perms[x.index()];
            *slot = match slot.take() {
                None => Some(seen),
                Some(prev) => Some(if prev == seen { prev } else { None }),
            };
        }
    }
    for (_, id) in g.outputs() {
        perms[id.index()] = Some(None);
    }
    g.ids()
        .map(|id| {
            let Op::Contract(c) = &g.node(id).op else { return None };
            let perm = perms[id.index()].clone().flatten()?;
            let shape = &g.node(id).ty.shape;
            let view = layout_view(shape, &perm);
            let nb = c.lhs_batch.len();
            let nl = free_dims(g.node(g.node(id).inputs[0]).ty.rank(), &c.lhs_batch, &c.lhs_contract).len();
            let groups: [Vec<usize>; 3] =
                [(0..nb).collect(), (nb..nb + nl).collect(), (nb + nl..shape.len()).collect()];
            groups.iter().all(|gr| merge(&view, gr).is_some()).then_some(perm)
        })
        .collect()
}

/// The view of a tensor of `shape` stored as its permutation by `perm`.
fn layout_view(shape: &[usize], perm: &[usize]) -> View {
    let stored: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let c = View::contiguous(&stored).strides;
    let mut strides = vec![0i64; shape.len()];
    for (i, &p) in perm.iter().enumerate() {
        strides[p] = c[i];
    }
    View { shape: shape.to_vec(), strides, offset: 0 }
}

/// Builds the expression nodes of one loop kernel.
#[derive(Default)]
struct Exprs {
    nodes: Vec<ENode>,
    memo: HashMap<(NodeId, Vec<Tf>), ExprId>,
}

impl Exprs {
    fn push(&mut self, expr: Expr, dtype: DType) -> ExprId {
        self.nodes.push(ENode { expr, dtype });
        (self.nodes.len() - 1) as ExprId
    }
}

struct Builder<'g> {
    g: &'g Graph,
    opts: Options,
    mat: &'g [bool],
    layouts: &'g [Option<Vec<usize>>],
    buffers: Vec<Buffer>,
    buf_of: Vec<Option<BufId>>,
    slots: Vec<Slot>,
    consts: Vec<u8>,
    first: Vec<Kernel>,
    kernels: Vec<Kernel>,
    last: Vec<Kernel>,
    /// The node whose kernels are being built, and the nodes inlined into
    /// the next kernel so far: the kernel's origins.
    root: Option<NodeId>,
    inlined: Vec<NodeId>,
}

impl<'g> Builder<'g> {
    fn new(g: &'g Graph, opts: Options, mat: &'g [bool], layouts: &'g [Option<Vec<usize>>]) -> Builder<'g> {
        Builder {
            g,
            opts,
            mat,
            layouts,
            buffers: Vec::new(),
            buf_of: vec![None; g.len()],
            slots: Vec::new(),
            consts: Vec::new(),
            first: Vec::new(),
            kernels: Vec::new(),
            last: Vec::new(),
            root: None,
            inlined: Vec::new(),
        }
    }

    fn build(mut self) -> Result<Schedule, Stop> {
        self.bind_buffers();
        let direct = self.bind_outputs();
        for id in self.g.ids() {
            let n = self.g.node(id);
            if self.mat[id.index()] && !matches!(n.op, Op::Input(_) | Op::Literal(_)) {
                self.node_kernels(id)?;
            }
        }
        for (node_buf, slot_buf) in direct {
            self.check_in_place(node_buf, slot_buf);
        }
        let mut kernels = std::mem::take(&mut self.first);
        kernels.append(&mut self.kernels);
        kernels.append(&mut self.last);
        Ok(Schedule { slots: self.slots, buffers: self.buffers, kernels, arena_bytes: 0, consts: self.consts })
    }

    fn new_buffer(&mut self, ty: &Type, place: Place, node: Option<NodeId>) -> BufId {
        self.buffers.push(Buffer { dtype: ty.dtype, shape: ty.shape.clone(), place, node });
        BufId((self.buffers.len() - 1) as u32)
    }

    fn buf(&self, id: NodeId) -> Result<BufId, Stop> {
        self.buf_of[id.index()].ok_or_else(|| invalid(format!("{id} has no buffer")))
    }

    /// Inputs get their slots, literals the constant segment, the rest the arena.
    fn bind_buffers(&mut self) {
        for id in self.g.ids().filter(|id| self.mat[id.index()]) {
            let n = self.g.node(id);
            let place = match &n.op {
                Op::Input(inp) => {
                    self.slots.push(Slot {
                        name: inp.name.clone(),
                        role: SlotRole::Input,
                        dtype: n.ty.dtype,
                        shape: n.ty.shape.clone(),
                    });
                    Place::Slot(self.slots.len() - 1)
                }
                Op::Literal(lit) => {
                    let at = self.consts.len().next_multiple_of(64);
                    self.consts.resize(at, 0);
                    for v in &lit.values {
                        push_elem(&mut self.consts, n.ty.dtype, v.0);
                    }
                    Place::Const(at)
                }
                // Everything computed lives in the arena until the plan
                // binds outputs to slots.
                Op::Const(_) | Op::Iota(_) | Op::Random(_) | Op::Unary(_) | Op::Binary(_) | Op::Select => {
                    Place::Arena(0)
                }
                Op::Cast(_) | Op::StopGradient | Op::Reduce(_) | Op::Reshape(_) | Op::Permute(_) => Place::Arena(0),
                Op::Broadcast(_) | Op::Slice(_) | Op::Pad(_) | Op::Concat(_) | Op::Contract(_) => Place::Arena(0),
                Op::Conv(_) | Op::Gather(_) | Op::ScatterAdd(_) => Place::Arena(0),
            };
            self.buf_of[id.index()] = Some(self.new_buffer(&n.ty, place, Some(id)));
        }
    }

    /// Gives every output a slot. Returns the (node buffer, input buffer)
    /// pairs written in place, to be checked once all kernels exist.
    fn bind_outputs(&mut self) -> Vec<(BufId, BufId)> {
        let mut direct = Vec::new();
        for (name, id) in self.g.outputs() {
            let n = self.g.node(*id);
            let shared = self
                .g
                .find_input(name)
                .filter(|&i| self.opts.in_place && self.g.node(i).ty == n.ty && self.buf_of[i.index()].is_some());
            let (slot_buf, in_out) = match shared {
                Some(i) if i == *id => continue, // unchanged: nothing to write
                Some(i) => {
                    let b = self.buf_of[i.index()].unwrap_or(BufId(0));
                    if let Place::Slot(s) = self.buffers[b.index()].place {
                        self.slots[s].role = SlotRole::InOut;
                    }
                    (b, true)
                }
                None => {
                    self.slots.push(Slot {
                        name: name.clone(),
                        role: SlotRole::Output,
                        dtype: n.ty.dtype,
                        shape: n.ty.shape.clone(),
                    });
                    let place = Place::Slot(self.slots.len() - 1);
                    (self.new_buffer(&n.ty, place, None), false)
                }
            };
            let Some(node_buf) = self.buf_of[id.index()] else { continue };
            let place = &self.buffers[node_buf.index()].place;
            if let Place::Arena(_) = place {
                // Computed by a kernel: write straight into the slot.
                let slot_place = self.buffers[slot_buf.index()].place.clone();
                self.buffers[node_buf.index()].place = slot_place;
                if in_out {
                    direct.push((node_buf, slot_buf));
                }
            } else if matches!(self.g.node(*id).op, Op::Input(_) | Op::Literal(_)) && !in_out {
                self.first.push(copy_kernel(name, node_buf, slot_buf, &n.ty));
            } else if matches!(self.g.node(*id).op, Op::Input(_) | Op::Literal(_)) {
                // Read it before anything is updated in place; write it last.
                let tmp = self.new_buffer(&n.ty, Place::Arena(0), None);
                self.first.push(copy_kernel(name, node_buf, tmp, &n.ty));
                self.last.push(copy_kernel(name, tmp, slot_buf, &n.ty));
            } else {
                // The same node under a second name: copy its final value.
                self.last.push(copy_kernel(name, node_buf, slot_buf, &n.ty));
            }
        }
        direct
    }

    /// Writing output `out` over input `inp` in place is safe when a single
    /// kernel writes it, every read of the input happens in or before that
    /// kernel, and that kernel reads the input only at the element it
    /// writes. Otherwise the output goes to a temporary, copied back last.
    fn check_in_place(&mut self, out: BufId, inp: BufId) {
        let writers: Vec<usize> =
            (0..self.kernels.len()).filter(|&k| self.kernels[k].writes().contains(&out)).collect();
        let safe = match writers[..] {
            [w] => {
                let late_read = (w + 1..self.kernels.len()).any(|k| self.kernels[k].reads().contains(&inp));
                !late_read && same_element_only(&self.kernels[w], out, inp)
            }
            _ => false,
        };
        if !safe {
            self.buffers[out.index()].place = Place::Arena(0);
            let b = &self.buffers[out.index()];
            let ty = Type::new(b.dtype, b.shape.clone());
            self.last.push(copy_kernel("in-place", out, inp, &ty));
        }
    }

    /// The kernels computing materialised node `id`.
    fn node_kernels(&mut self, id: NodeId) -> Result<(), Stop> {
        let n = self.g.node(id);
        let out = self.buf(id)?;
        let label = format!("{} {id}", n.op.name());
        self.root = Some(id);
        self.inlined.clear();
        match &n.op {
            Op::Reduce(r) => {
                let x = n.inputs[0];
                let space = self.g.node(x).ty.shape.clone();
                let mut e = Exprs::default();
                let value = self.expr(&mut e, x, Vec::new())?;
                let mut strides = Vec::new();
                let c = View::contiguous(&n.ty.shape).strides;
                let mut kept = c.iter();
                for d in 0..space.len() {
                    let s = if r.axes.contains(&d) { 0 } else { *kept.next().unwrap_or(&0) };
                    strides.push(s);
                }
                let mode = match r.op {
                    ReduceOp::Sum => StoreMode::Add,
                    ReduceOp::Max => StoreMode::Max,
                };
                let view = View { shape: space.clone(), strides, offset: 0 };
                let st = Store { init: true, ..store(out, view, value, mode) };
                self.push_loop(&label, space, e, vec![st]);
            }
            Op::Pad(p) => {
                self.fill(&label, out, &n.ty, p.value.0);
                let c = View::contiguous(&n.ty.shape).strides;
                let offset = p.lo.iter().zip(&c).map(|(&l, &s)| l as i64 * s).sum();
                self.copy_into(&label, n.inputs[0], out, c, offset)?;
            }
            Op::Concat(cat) => {
                let c = View::contiguous(&n.ty.shape).strides;
                let mut at = 0;
                for &x in &n.inputs {
                    self.copy_into(&label, x, out, c.clone(), at as i64 * c[cat.axis])?;
                    at += self.g.node(x).ty.shape[cat.axis];
                }
            }
            Op::ScatterAdd(sa) => {
                self.fill(&label, out, &n.ty, 0.0);
                let (idx, upd) = (n.inputs[0], n.inputs[1]);
                let space = self.g.node(upd).ty.shape.clone();
                let k = self.g.node(idx).ty.rank();
                let mut e = Exprs::default();
                let value = self.expr(&mut e, upd, Vec::new())?;
                let embed = Tf::Embed { shape: space.clone(), dims: (sa.axis..sa.axis + k).collect() };
                let index = self.expr(&mut e, idx, vec![embed])?;
                let c = View::contiguous(&n.ty.shape).strides;
                let view = View { strides: skip_dims(&c, sa.axis, k), shape: space.clone(), offset: 0 };
                let mut st = store(out, view, value, StoreMode::Add);
                st.scatter = Some(Scatter { index, stride: c[sa.axis], dim: sa.dim });
                self.push_loop(&label, space, e, vec![st]);
            }
            Op::Contract(c) => self.gemm(&label, id, c)?,
            Op::Conv(c) => self.conv(&label, id, c)?,
            // One fused elementwise loop computes the node from its inputs.
            Op::Input(_)
            | Op::Const(_)
            | Op::Literal(_)
            | Op::Iota(_)
            | Op::Random(_)
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Select
            | Op::Cast(_)
            | Op::StopGradient
            | Op::Reshape(_)
            | Op::Permute(_)
            | Op::Broadcast(_)
            | Op::Slice(_)
            | Op::Gather(_) => {
                let mut e = Exprs::default();
                let value = self.op_expr(&mut e, id, Vec::new())?;
                let view = View::contiguous(&n.ty.shape);
                let st = store(out, view, value, StoreMode::Assign);
                self.push_loop(&label, n.ty.shape.clone(), e, vec![st]);
            }
        }
        Ok(())
    }

    fn push_loop(&mut self, label: &str, space: Shape, e: Exprs, stores: Vec<Store>) {
        let body = KernelBody::Loop(LoopKernel { space, nodes: e.nodes, stores });
        self.push(label.to_string(), body);
    }

    /// Adds a kernel standing for the root and the nodes inlined since the
    /// last one, each weighted by its work.
    fn push(&mut self, label: String, body: KernelBody) {
        let mut k = Kernel::plain(label, body);
        let flops = k.flops() as f64;
        for id in self.root.into_iter().chain(self.inlined.drain(..)) {
            let n = self.g.node(id);
            // Index arithmetic (constants, movement) costs next to nothing.
            let work = match () {
                _ if Some(id) == self.root && flops > 0.0 => flops,
                _ if cheap(&n.op) => 0.0,
                _ => n.ty.numel() as f64,
            };
            let share = Share { origin: self.g.origin(id), op: self.g.node(id).op.name(), work };
            add_share(&mut k.origins, share);
        }
        self.kernels.push(k);
    }

    /// `out[..] = value` over the whole buffer.
    fn fill(&mut self, label: &str, out: BufId, ty: &Type, value: f64) {
        let mut e = Exprs::default();
        let v = e.push(Expr::Const(ty.dtype.round(value)), ty.dtype);
        let st = store(out, View::contiguous(&ty.shape), v, StoreMode::Assign);
        self.push_loop(&format!("{label} (fill)"), ty.shape.clone(), e, vec![st]);
    }

    /// Stores node `x` into `out` at `offset` with `strides` (pad, concat).
    fn copy_into(&mut self, label: &str, x: NodeId, out: BufId, strides: Vec<i64>, offset: i64) -> Result<(), Stop> {
        let space = self.g.node(x).ty.shape.clone();
        let mut e = Exprs::default();
        let value = self.expr(&mut e, x, Vec::new())?;
        let view = View { shape: space.clone(), strides, offset };
        self.push_loop(label, space, e, vec![store(out, view, value, StoreMode::Assign)]);
        Ok(())
    }

    /// How materialised node `x` lies in its buffer.
    fn stored_view(&self, x: NodeId) -> View {
        let shape = &self.g.node(x).ty.shape;
        match &self.layouts[x.index()] {
            Some(perm) => layout_view(shape, perm),
            None => View::contiguous(shape),
        }
    }

    /// `x` seen through `tfs` (kernel side first): a load if materialised.
    fn expr(&mut self, e: &mut Exprs, x: NodeId, tfs: Vec<Tf>) -> Result<ExprId, Stop> {
        if let Some(&done) = e.memo.get(&(x, tfs.clone())) {
            return Ok(done);
        }
        let id = if self.mat[x.index()] {
            let n = self.g.node(x);
            let view = self.stored_view(x).apply_all(&tfs).map_err(Stop::Retry)?;
            let buf = self.buf(x)?;
            e.push(Expr::Load { buf, view }, n.ty.dtype)
        } else {
            self.op_expr(e, x, tfs.clone())?
        };
        e.memo.insert((x, tfs), id);
        Ok(id)
    }

    /// Node `x`'s own op as an expression (its inputs via [`Self::expr`]).
    fn op_expr(&mut self, e: &mut Exprs, x: NodeId, tfs: Vec<Tf>) -> Result<ExprId, Stop> {
        self.inlined.push(x);
        let n = self.g.node(x);
        let dt = n.ty.dtype;
        let ins = &n.inputs;
        let with = |tf: Tf| {
            let mut t = tfs.clone();
            t.push(tf);
            t
        };
        let view = |v: View| v.apply_all(&tfs).map_err(Stop::Retry);
        Ok(match &n.op {
            Op::Const(c) => e.push(Expr::Const(c.value.0), dt),
            Op::Iota(i) => e.push(Expr::Iota(view(View::axis_index(&i.shape, i.axis))?), dt),
            Op::Random(r) => {
                let key = self.expr(e, ins[0], with(Tf::Broadcast(r.shape.clone())))?;
                let index = view(View::contiguous(&r.shape))?;
                e.push(Expr::Random { key, salt: r.salt, index }, dt)
            }
            Op::Unary(u) => {
                let a = self.expr(e, ins[0], tfs)?;
                e.push(Expr::Unary(*u, a), dt)
            }
            Op::Binary(bop) => {
                let a = self.expr(e, ins[0], tfs.clone())?;
                let b = self.expr(e, ins[1], tfs)?;
                e.push(Expr::Binary(*bop, a, b), dt)
            }
            Op::Select => {
                let c = self.expr(e, ins[0], tfs.clone())?;
                let a = self.expr(e, ins[1], tfs.clone())?;
                let b = self.expr(e, ins[2], tfs)?;
                e.push(Expr::Select(c, a, b), dt)
            }
            Op::Cast(c) => {
                let a = self.expr(e, ins[0], tfs)?;
                e.push(Expr::Cast(c.to, a), dt)
            }
            Op::StopGradient => self.expr(e, ins[0], tfs)?,
            Op::Reshape(r) => self.expr(e, ins[0], with(Tf::Reshape { shape: r.shape.clone(), input: ins[0] }))?,
            Op::Permute(p) => self.expr(e, ins[0], with(Tf::Permute(p.perm.clone())))?,
            Op::Broadcast(b) => self.expr(e, ins[0], with(Tf::Broadcast(b.shape.clone())))?,
            Op::Slice(s) => {
                let tf = Tf::Slice { start: s.start.clone(), step: s.step.clone(), shape: n.ty.shape.clone() };
                self.expr(e, ins[0], with(tf))?
            }
            Op::Gather(gth) => {
                let data = &self.g.node(ins[0]).ty;
                let k = self.g.node(ins[1]).ty.rank();
                let c = View::contiguous(&data.shape).strides;
                let base = View { shape: n.ty.shape.clone(), strides: skip_dims(&c, gth.axis, k), offset: 0 };
                let dview = view(base)?;
                let embed = Tf::Embed { shape: n.ty.shape.clone(), dims: (gth.axis..gth.axis + k).collect() };
                let index = self.expr(e, ins[1], with(embed))?;
                let buf = self.buf(ins[0])?;
                let (stride, dim) = (c[gth.axis], data.shape[gth.axis]);
                e.push(Expr::Gather { buf, view: dview, index, stride, dim }, dt)
            }
            Op::Input(_) | Op::Literal(_) | Op::Reduce(_) | Op::Contract(_) | Op::Conv(_) => {
                return Err(invalid(format!("{x} ({}) must be materialised", n.op.name())));
            }
            Op::Pad(_) | Op::Concat(_) | Op::ScatterAdd(_) => {
                return Err(invalid(format!("{x} ({}) must be materialised", n.op.name())));
            }
        })
    }

    /// A contraction as a gemm call; operands that are not strided
    /// `[batch, rows, cols]` views of a buffer are packed first.
    fn gemm(&mut self, label: &str, id: NodeId, c: &Contract) -> Result<(), Stop> {
        let n = self.g.node(id);
        let (l, r) = (n.inputs[0], n.inputs[1]);
        let (lt, rt) = (self.g.node(l).ty.clone(), self.g.node(r).ty.clone());
        let lf = free_dims(lt.rank(), &c.lhs_batch, &c.lhs_contract);
        let rf = free_dims(rt.rank(), &c.rhs_batch, &c.rhs_contract);
        let size = |t: &Type, d: &[usize]| d.iter().map(|&i| t.shape[i]).product::<usize>();
        let lhs = self.operand(label, l, [&c.lhs_batch, &lf, &c.lhs_contract])?;
        let rhs = self.operand(label, r, [&c.rhs_batch, &c.rhs_contract, &rf])?;
        let buf = self.buf(id)?;
        let view = self.stored_view(id);
        let nb = c.lhs_batch.len();
        let groups: [Vec<usize>; 3] =
            [(0..nb).collect(), (nb..nb + lf.len()).collect(), (nb + lf.len()..n.ty.rank()).collect()];
        let s: Option<Vec<i64>> = groups.iter().map(|gr| merge(&view, gr)).collect();
        let s = s.ok_or_else(|| invalid(format!("{id}: output layout does not fit gemm")))?;
        let out = MatOperand { buf, offset: 0, bs: s[0], rs: s[1], cs: s[2] };
        let body = KernelBody::Gemm(GemmKernel {
            batch: size(&lt, &c.lhs_batch),
            m: size(&lt, &lf),
            n: size(&rt, &rf),
            k: size(&lt, &c.lhs_contract),
            lhs,
            rhs,
            out,
            epilogue: None,
        });
        self.push(label.to_string(), body);
        Ok(())
    }

    /// A convolution role as a call into the runtime's driver, its
    /// descriptor in the constant segment.
    fn conv(&mut self, label: &str, id: NodeId, c: &Conv) -> Result<(), Stop> {
        let n = self.g.node(id);
        let (a, b) = (self.dense(label, n.inputs[0])?, self.dense(label, n.inputs[1])?);
        let out = (self.buf(id)?, 0);
        let shape = |x: NodeId| self.g.node(x).ty.shape.clone();
        let (sa, sb) = (shape(n.inputs[0]), shape(n.inputs[1]));
        let ((x, w, y), (xs, ws, ys)) = match c.role {
            ConvRole::Forward => ((a, b, out), (&sa, &sb, &n.ty.shape)),
            ConvRole::InputGrad => ((out, b, a), (&n.ty.shape, &sb, &sa)),
            ConvRole::FilterGrad => ((a, out, b), (&sa, &n.ty.shape, &sb)),
        };
        let sp = c.image.len();
        if sp > 3 {
            return Err(invalid(format!("{id}: conv over {sp} spatial dims (the driver has 3)")));
        }
        // 1- and 2-D as 3-D with leading size-1 dims.
        let three = |v: &[usize], fill: usize| {
            let mut t = [fill; 3];
            t[3 - sp..].copy_from_slice(v);
            t
        };
        let mut geom = ConvGeom {
            role: c.role,
            batch: xs[0],
            cin: xs[sp + 1],
            cout: ys[sp + 1],
            groups: c.attrs.groups,
            image: three(&xs[1..=sp], 1),
            window: three(&ws[..sp], 1),
            out: three(&ys[1..=sp], 1),
            stride: three(&c.attrs.stride, 1),
            pad: three(&c.attrs.pad.iter().map(|p| p[0]).collect::<Vec<_>>(), 0),
            dilation: three(&c.attrs.dilation, 1),
            block: 1,
            direct: false,
            parts: 0,
        };
        geom.direct = geom.direct();
        geom.parts = geom.parts();
        geom.block = geom.block();
        let desc = self.consts.len().next_multiple_of(64);
        self.consts.resize(desc, 0);
        for v in geom.words() {
            self.consts.extend_from_slice(&v.to_le_bytes());
        }
        if geom.parts == 0 {
            let body = KernelBody::Conv(ConvKernel { geom, desc, x, w, y });
            self.push(label.to_string(), body);
            return Ok(());
        }
        // Each block of images writes its own partial kernel gradient; one
        // loop then sums them, in one order whatever the thread count.
        let kernel = Type::f32(vec![geom.parts, n.ty.numel()]);
        let partials = self.new_buffer(&kernel, Place::Arena(0), None);
        let body = KernelBody::Conv(ConvKernel { geom, desc, x, w: (partials, 0), y });
        self.push(format!("{label} (partials)"), body);
        let mut e = Exprs::default();
        let all = View::contiguous(&kernel.shape);
        let value = e.push(Expr::Load { buf: partials, view: all.clone() }, DType::F32);
        let view = View { strides: vec![0, 1], ..all };
        let st = Store { init: true, ..store(out.0, view, value, StoreMode::Add) };
        self.push_loop(&format!("{label} (sum of partials)"), kernel.shape.clone(), e, vec![st]);
        Ok(())
    }

    /// Node `x` as a dense row-major buffer and an element offset into it:
    /// its own, when it lies so, else a packed copy.
    fn dense(&mut self, label: &str, x: NodeId) -> Result<(BufId, i64), Stop> {
        let ty = self.g.node(x).ty.clone();
        let mut e = Exprs::default();
        let value = self.expr(&mut e, x, Vec::new())?;
        if let Expr::Load { buf, view } = &e.nodes[value as usize].expr {
            let all: Vec<usize> = (0..ty.rank()).collect();
            if merge(view, &all).is_some_and(|s| s == 1 || ty.numel() == 1) {
                return Ok((*buf, view.offset));
            }
        }
        let tmp = self.new_buffer(&ty, Place::Arena(0), None);
        let st = store(tmp, View::contiguous(&ty.shape), value, StoreMode::Assign);
        self.push_loop(&format!("{label} (pack {x})"), ty.shape.clone(), e, vec![st]);
        Ok((tmp, 0))
    }

    fn operand(&mut self, label: &str, x: NodeId, groups: [&[usize]; 3]) -> Result<MatOperand, Stop> {
        let ty = self.g.node(x).ty.clone();
        let mut e = Exprs::default();
        let value = self.expr(&mut e, x, Vec::new())?;
        if let Expr::Load { buf, view } = &e.nodes[value as usize].expr {
            let merged: Option<Vec<i64>> = groups.iter().map(|g| merge(view, g)).collect();
            if let Some(s) = merged {
                return Ok(MatOperand { buf: *buf, offset: view.offset, bs: s[0], rs: s[1], cs: s[2] });
            }
        }
        // Pack into [batch, rows, cols] order, computing the operand on the way.
        let order: Vec<usize> = groups.iter().flat_map(|g| g.iter().copied()).collect();
        let packed: Vec<usize> = order.iter().map(|&d| ty.shape[d]).collect();
        let pc = View::contiguous(&packed).strides;
        let mut strides = vec![0i64; ty.rank()];
        for (p, &d) in order.iter().enumerate() {
            strides[d] = pc[p];
        }
        let tmp = self.new_buffer(&ty.with_shape(packed), Place::Arena(0), None);
        let view = View { shape: ty.shape.clone(), strides, offset: 0 };
        let st = store(tmp, view, value, StoreMode::Assign);
        self.push_loop(&format!("{label} (pack {x})"), ty.shape.clone(), e, vec![st]);
        let size = |g: &[usize]| g.iter().map(|&d| ty.shape[d] as i64).product::<i64>();
        let (rows, cols) = (size(groups[1]), size(groups[2]));
        Ok(MatOperand { buf: tmp, offset: 0, bs: rows * cols, rs: cols, cs: 1 })
    }
}

/// One stride for dims `g` taken together, if they nest like a row-major
/// block (size-1 dims ignored; an empty or all-1 group has stride 0).
fn merge(v: &View, g: &[usize]) -> Option<i64> {
    let dims: Vec<usize> = g.iter().copied().filter(|&d| v.shape[d] != 1).collect();
    let ok = dims.windows(2).all(|w| v.strides[w[0]] == v.strides[w[1]] * v.shape[w[1]] as i64);
    ok.then(|| dims.last().map_or(0, |&d| v.strides[d]))
}

/// Strides of `c` (a tensor with an `axis`) over a shape where `axis` is
/// replaced by `k` index dims, which get stride 0.
fn skip_dims(c: &[i64], axis: usize, k: usize) -> Vec<i64> {
    c[..axis].iter().copied().chain(std::iter::repeat_n(0, k)).chain(c[axis + 1..].iter().copied()).collect()
}

fn store(buf: BufId, view: View, value: ExprId, mode: StoreMode) -> Store {
    Store { buf, view, value, mode, scatter: None, init: false }
}

fn copy_kernel(name: &str, from: BufId, to: BufId, ty: &Type) -> Kernel {
    let mut e = Exprs::default();
    let v = View::contiguous(&ty.shape);
    let x = e.push(Expr::Load { buf: from, view: v.clone() }, ty.dtype);
    let body = KernelBody::Loop(LoopKernel {
        space: ty.shape.clone(),
        nodes: e.nodes,
        stores: vec![store(to, v, x, StoreMode::Assign)],
    });
    Kernel::plain(format!("copy {name:?}"), body)
}

/// Whether every read of `inp` in kernel `k` is a load at exactly the view
/// of a store to `out` (so each element is read before it is overwritten).
fn same_element_only(k: &Kernel, out: BufId, inp: BufId) -> bool {
    let KernelBody::Loop(l) = &k.body else {
        return !k.reads().contains(&inp);
    };
    let out_views: Vec<&View> = l.stores.iter().filter(|s| s.buf == out).map(|s| &s.view).collect();
    let plain = l.stores.iter().all(|s| s.buf != out || (s.mode == StoreMode::Assign && s.scatter.is_none()));
    plain
        && l.nodes.iter().all(|n| match n.expr.reads() {
            Access::Element(buf, view) => buf != inp || out_views.iter().all(|v| *v == view),
            Access::Indexed(buf) => buf != inp,
            Access::Nothing => true,
        })
}

/// Appends `v` as one element of `dtype`, little-endian.
fn push_elem(out: &mut Vec<u8>, dtype: DType, v: f64) {
    match dtype {
        DType::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
        DType::I32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
        DType::Bool => out.push(u8::from(v != 0.0)),
        DType::U8 => out.push(v as u8),
    }
}
