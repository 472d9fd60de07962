//! Lowering of a [`LoopKernel`]: a row-major loop nest over the kernel
//! space whose innermost axis runs four lanes at a time (f32x4/i32x4) with a
//! scalar tail, or one lane when something in the kernel has no obvious
//! vector form (gathers, scatters, bool/u8 stores, integer division);
//! strided inner loads are put together lane by lane. Loops are rotated
//! (body block branching back to itself) and every address's outer part is
//! computed before the inner loop, so the inner loop only adds `i * stride`. Reductions over the innermost axis
//! keep four vector accumulators in registers and touch memory once per row.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{BlockArg, ConstantData, FuncRef, InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::{FunctionBuilder, Variable};

use super::math::{self, fconst, iconst, reg_ty, sel};
use super::ops;
use super::{CodegenError, RtCall};
use crate::ir::{BinaryOp, DType};
use crate::schedule::{BufId, Buffer, ENode, Expr, ExprId, LoopKernel, Store, StoreMode, View, elem_size};

/// Runtime functions a kernel may call, by [`RtCall`] row.
pub(super) struct Calls(pub [FuncRef; RtCall::ALL.len()]);

impl Calls {
    pub(super) fn get(&self, call: RtCall) -> FuncRef {
        self.0[call as usize]
    }
}

/// Memory accesses: in bounds by construction, alignment unknown.
fn mf() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The part of a kernel's space one call runs.
#[derive(Clone, Copy)]
pub(super) enum Range {
    Whole,
    /// Outermost dim `[start, end)`: a thread's share of a loop, or of a
    /// product's rows.
    Outer(Value, Value),
    /// Innermost dim `[start, end)`: a thread's share of a product's columns.
    Inner(Value, Value),
}

pub(super) struct Gen<'a> {
    k: &'a LoopKernel,
    bufs: &'a [Buffer],
    base: &'a HashMap<BufId, Value>,
    calls: &'a Calls,
    /// Lanes of the vector part of the inner loop (1: scalar only).
    w: u8,
    /// Every view of the kernel; `node_site`/`store_site` index into it.
    sites: Vec<&'a View>,
    node_site: Vec<Option<usize>>,
    store_site: Vec<usize>,
    /// Stores accumulated in registers over the inner loop.
    red: Vec<usize>,
    /// Per store: a reduction finished in registers (stored, not added).
    reg_init: Vec<bool>,
}

fn view_of(e: &Expr) -> Option<&View> {
    match e {
        Expr::Load { view, .. } | Expr::Iota(view) | Expr::Gather { view, .. } => Some(view),
        Expr::Random { index, .. } => Some(index),
        Expr::Const(_) | Expr::Unary(..) | Expr::Binary(..) | Expr::Select(..) | Expr::Cast(..) => None,
    }
}

impl<'a> Gen<'a> {
    pub fn new(k: &'a LoopKernel, bufs: &'a [Buffer], base: &'a HashMap<BufId, Value>, calls: &'a Calls) -> Gen<'a> {
        let mut sites = Vec::new();
        let mut node_site = Vec::new();
        for n in &k.nodes {
            node_site.push(view_of(&n.expr).map(|v| {
                sites.push(v);
                sites.len() - 1
            }));
        }
        let mut store_site = Vec::new();
        for s in &k.stores {
            sites.push(&s.view);
            store_site.push(sites.len() - 1);
        }
        let red: Vec<usize> = (0..k.stores.len())
            .filter(|&i| {
                let s = &k.stores[i];
                !k.space.is_empty() && s.mode != StoreMode::Assign && s.scatter.is_none() && s.view.inner_stride() == 0
            })
            .collect();
        // A reduction over exactly the innermost dim finishes each element
        // in registers: no fill, no read of the destination.
        let reg_init = (0..k.stores.len())
            .map(|i| {
                let s = &k.stores[i];
                let outer_kept = k.space.iter().zip(&s.view.strides).rev().skip(1).all(|(&n, &st)| n == 1 || st != 0);
                s.init && red.contains(&i) && outer_kept
            })
            .collect();
        let w = if k.vectorizable(bufs) { 4 } else { 1 };
        Gen { k, bufs, base, calls, w, sites, node_site, store_site, red, reg_init }
    }

    /// Emits the loop nest over the part of the space `range` says.
    pub fn emit(&self, b: &mut FunctionBuilder, range: Range) -> Result<(), CodegenError> {
        if self.k.space.contains(&0) {
            return Ok(());
        }
        self.fill_inits(b, range)?;
        if self.k.space.is_empty() {
            let outer = self.outer_offsets(b, &[]);
            let (lo, hi) = (Bound::known(b, 0), Bound::known(b, 1));
            return self.inner(b, lo, hi, &outer);
        }
        self.nest(b, 0, &mut Vec::new(), range)
    }

    fn nest(&self, b: &mut FunctionBuilder, d: usize, idx: &mut Vec<Value>, range: Range) -> Result<(), CodegenError> {
        let last = d + 1 == self.k.space.len();
        let (lo, hi) = match range {
            Range::Outer(s, e) if d == 0 => (Bound::dynamic(s), Bound::dynamic(e)),
            Range::Inner(s, e) if last => (Bound::dynamic(s), Bound::dynamic(e)),
            Range::Whole | Range::Outer(..) | Range::Inner(..) => {
                (Bound::known(b, 0), Bound::known(b, self.k.space[d] as i64))
            }
        };
        if d + 1 == self.k.space.len() {
            let outer = self.outer_offsets(b, idx);
            return self.inner(b, lo, hi, &outer);
        }
        let Some(l) = Loop::begin(b, lo, hi, 1) else { return Ok(()) };
        idx.push(l.i);
        let inner = if let Range::Inner(..) = range { range } else { Range::Whole };
        self.nest(b, d + 1, idx, inner)?;
        idx.pop();
        l.finish(b);
        Ok(())
    }

    /// Sets the destinations of reductions that do not finish in registers
    /// to the identity (only the part this range writes).
    fn fill_inits(&self, b: &mut FunctionBuilder, range: Range) -> Result<(), CodegenError> {
        for (s, st) in self.k.stores.iter().enumerate() {
            if !st.init || self.reg_init[s] {
                continue;
            }
            let dt = self.bufs[st.buf.index()].dtype;
            let space: Vec<usize> =
                self.k.space.iter().zip(&st.view.strides).map(|(&n, &s)| if s == 0 { 1 } else { n }).collect();
            let view = View { shape: space.clone(), ..st.view.clone() };
            let fill = LoopKernel {
                nodes: vec![ENode { expr: Expr::Const(identity(st.mode, dt)), dtype: dt }],
                stores: vec![Store {
                    view,
                    value: 0,
                    mode: StoreMode::Assign,
                    scatter: None,
                    init: false,
                    buf: st.buf,
                }],
                space,
            };
            // The fill keeps the split axis when the store does (else the
            // axis is reduced over, which splits never do).
            let keep = match range {
                Range::Outer(..) => fill.space.first() == self.k.space.first(),
                Range::Inner(..) => fill.space.last() == self.k.space.last(),
                Range::Whole => false,
            };
            Gen::new(&fill, self.bufs, self.base, self.calls).emit(b, if keep { range } else { Range::Whole })?;
        }
        Ok(())
    }

    /// `offset + Σ idx_d * stride_d` over the outer dims, for every view.
    fn outer_offsets(&self, b: &mut FunctionBuilder, idx: &[Value]) -> Vec<Value> {
        self.sites
            .iter()
            .map(|v| {
                let mut acc = b.ins().iconst(types::I64, v.offset);
                for (d, &i) in idx.iter().enumerate() {
                    if v.strides[d] != 0 {
                        let t = b.ins().imul_imm_s(i, v.strides[d]);
                        acc = b.ins().iadd(acc, t);
                    }
                }
                acc
            })
            .collect()
    }

    /// The innermost axis over `[lo, hi)`: vector loop (unrolled by four
    /// when accumulating in registers), a one-vector remainder loop, then
    /// the scalar tail.
    fn inner(&self, b: &mut FunctionBuilder, lo: Bound, hi: Bound, outer: &[Value]) -> Result<(), CodegenError> {
        let w = i64::from(self.w);
        let scalar_acc: Vec<Variable> = self.red.iter().map(|&s| self.acc_var(b, s, 1)).collect();
        let mut tail = lo;
        if w > 1 {
            let u = if self.red.is_empty() { 1 } else { 4 };
            let accs: Vec<Vec<Variable>> =
                (0..u).map(|_| self.red.iter().map(|&s| self.acc_var(b, s, self.w)).collect()).collect();
            let main_end = hi.floor_from(b, lo, w * u);
            if let Some(l) = Loop::begin(b, lo, main_end, w * u) {
                for (j, acc) in accs.iter().enumerate() {
                    let i = b.ins().iadd_imm_s(l.i, j as i64 * w);
                    self.element(b, i, self.w, outer, acc)?;
                }
                l.finish(b);
            }
            let rem_end = hi.floor_from(b, lo, w);
            if let Some(l) = Loop::begin(b, main_end, rem_end, w) {
                self.element(b, l.i, self.w, outer, &accs[0])?;
                l.finish(b);
            }
            self.fold_accs(b, &accs, &scalar_acc);
            tail = rem_end;
        }
        if let Some(l) = Loop::begin(b, tail, hi, 1) {
            self.element(b, l.i, 1, outer, &scalar_acc)?;
            l.finish(b);
        }
        for (r, &s) in self.red.iter().enumerate() {
            let st = &self.k.stores[s];
            let acc = b.use_var(scalar_acc[r]);
            let zero = b.ins().iconst(types::I64, 0);
            if self.reg_init[s] {
                // identity ⊕ acc, as a fill and an accumulation would give (-0.0 sums to 0.0).
                let dt = self.bufs[st.buf.index()].dtype;
                let id = constant(b, dt, 1, identity(st.mode, dt));
                let v = combine(b, st.mode, dt, id, acc);
                let a = self.addr(b, st.buf, outer[self.store_site[s]], zero, 0)?;
                store(b, dt, v, a);
            } else {
                self.store(b, st, self.store_site[s], zero, outer, acc, 1)?;
            }
        }
        Ok(())
    }

    /// A register accumulator for store `s`, holding the identity.
    fn acc_var(&self, b: &mut FunctionBuilder, s: usize, w: u8) -> Variable {
        let dt = self.bufs[self.k.stores[s].buf.index()].dtype;
        let init = constant(b, dt, w, identity(self.k.stores[s].mode, dt));
        let v = b.declare_var(reg_ty(dt, w));
        b.def_var(v, init);
        v
    }

    /// Combines the vector accumulators, lane by lane, into the scalar ones.
    fn fold_accs(&self, b: &mut FunctionBuilder, accs: &[Vec<Variable>], scalar: &[Variable]) {
        for (r, &s) in self.red.iter().enumerate() {
            let st = &self.k.stores[s];
            let dt = self.bufs[st.buf.index()].dtype;
            let mut v = b.use_var(accs[0][r]);
            for a in &accs[1..] {
                let x = b.use_var(a[r]);
                v = combine(b, st.mode, dt, v, x);
            }
            let lane = |b: &mut FunctionBuilder, l: u8| b.ins().extractlane(v, l);
            let (l0, l1, l2, l3) = (lane(b, 0), lane(b, 1), lane(b, 2), lane(b, 3));
            let p = combine(b, st.mode, dt, l0, l1);
            let q = combine(b, st.mode, dt, l2, l3);
            let h = combine(b, st.mode, dt, p, q);
            let acc = b.use_var(scalar[r]);
            let acc = combine(b, st.mode, dt, acc, h);
            b.def_var(scalar[r], acc);
        }
    }

    /// One step of the inner loop at index `i` (`w` lanes): every node,
    /// then every store (or register accumulation).
    fn element(
        &self,
        b: &mut FunctionBuilder,
        i: Value,
        w: u8,
        outer: &[Value],
        accs: &[Variable],
    ) -> Result<(), CodegenError> {
        let mut vals: Vec<Value> = Vec::with_capacity(self.k.nodes.len());
        for (j, n) in self.k.nodes.iter().enumerate() {
            let v = self.node(b, n, self.node_site[j].map(|s| outer[s]), i, w, &vals)?;
            vals.push(v);
        }
        for (s, st) in self.k.stores.iter().enumerate() {
            let v = vals[st.value as usize];
            if let Some(r) = self.red.iter().position(|&x| x == s) {
                let dt = self.bufs[st.buf.index()].dtype;
                let acc = b.use_var(accs[r]);
                let acc = combine(b, st.mode, dt, acc, v);
                b.def_var(accs[r], acc);
            } else if let Some(sc) = &st.scatter {
                self.scatter(b, st, outer[self.store_site[s]], i, vals[sc.index as usize], v)?;
            } else {
                self.store(b, st, self.store_site[s], i, outer, v, w)?;
            }
        }
        Ok(())
    }

    /// Address of element `outer + i * stride` of `buf`.
    fn addr(
        &self,
        b: &mut FunctionBuilder,
        buf: BufId,
        outer: Value,
        i: Value,
        stride: i64,
    ) -> Result<Value, CodegenError> {
        let off = match stride {
            0 => outer,
            1 => b.ins().iadd(outer, i),
            s => {
                let t = b.ins().imul_imm_s(i, s);
                b.ins().iadd(outer, t)
            }
        };
        let base = *self.base.get(&buf).ok_or_else(|| CodegenError::Internal(format!("no base for {buf}")))?;
        let size = elem_size(self.bufs[buf.index()].dtype);
        let bytes = if size == 1 { off } else { b.ins().ishl_imm_s(off, size.trailing_zeros() as i64) };
        Ok(b.ins().iadd(base, bytes))
    }

    #[allow(clippy::too_many_arguments)]
    fn store(
        &self,
        b: &mut FunctionBuilder,
        st: &Store,
        site: usize,
        i: Value,
        outer: &[Value],
        v: Value,
        w: u8,
    ) -> Result<(), CodegenError> {
        let a = self.addr(b, st.buf, outer[site], i, st.view.inner_stride())?;
        let dt = self.bufs[st.buf.index()].dtype;
        let v = match st.mode {
            StoreMode::Assign => v,
            mode @ (StoreMode::Add | StoreMode::Max) => {
                let old = load(b, dt, w, a);
                combine(b, mode, dt, old, v)
            }
        };
        store(b, dt, v, a);
        Ok(())
    }

    /// `dst[outer + idx*stride] += v` if `0 <= idx < dim`, else nothing.
    fn scatter(
        &self,
        b: &mut FunctionBuilder,
        st: &Store,
        outer: Value,
        i: Value,
        idx: Value,
        v: Value,
    ) -> Result<(), CodegenError> {
        let Some(sc) = &st.scatter else { return Ok(()) };
        let row = self.addr(b, st.buf, outer, i, st.view.inner_stride())?;
        let idx = b.ins().sextend(types::I64, idx);
        let ok = b.ins().icmp_imm_u(IntCC::UnsignedLessThan, idx, sc.dim as i64);
        let (hit, done) = (b.create_block(), b.create_block());
        b.ins().brif(ok, hit, &[], done, &[]);
        b.switch_to_block(hit);
        let size = elem_size(self.bufs[st.buf.index()].dtype) as i64;
        let off = b.ins().imul_imm_s(idx, sc.stride * size);
        let a = b.ins().iadd(row, off);
        let dt = self.bufs[st.buf.index()].dtype;
        let old = load(b, dt, 1, a);
        let new = combine(b, st.mode, dt, old, v);
        store(b, dt, new, a);
        b.ins().jump(done, &[]);
        b.switch_to_block(done);
        Ok(())
    }

    fn node(
        &self,
        b: &mut FunctionBuilder,
        n: &ENode,
        outer: Option<Value>,
        i: Value,
        w: u8,
        vals: &[Value],
    ) -> Result<Value, CodegenError> {
        let outer = || outer.ok_or_else(|| CodegenError::Internal("view without an offset".into()));
        let dt_of = |x: u32| self.k.nodes[x as usize].dtype;
        Ok(match &n.expr {
            Expr::Load { buf, view } => {
                let stride = view.inner_stride();
                let a = self.addr(b, *buf, outer()?, i, stride)?;
                match stride {
                    _ if w == 1 => load(b, n.dtype, 1, a),
                    // One broadcast per use, so it folds into the load.
                    0 => {
                        let s = lane(b, n.dtype, a);
                        b.ins().splat(reg_ty(n.dtype, w), s)
                    }
                    1 => load(b, n.dtype, w, a),
                    // A strided row (a transpose's, a pack's) lane by lane, so
                    // that the rest of the kernel still runs four lanes.
                    _ => {
                        let step = stride * elem_size(n.dtype) as i64;
                        let first = lane(b, n.dtype, a);
                        let mut v = b.ins().scalar_to_vector(reg_ty(n.dtype, w), first);
                        for l in 1..i64::from(w) {
                            // A 64-bit add: a stride can pass an i32 offset.
                            let al = b.ins().iadd_imm_s(a, l * step);
                            let x = lane(b, n.dtype, al);
                            v = b.ins().insertlane(v, x, l as u8);
                        }
                        v
                    }
                }
            }
            Expr::Const(v) => constant(b, n.dtype, w, *v),
            Expr::Iota(view) => {
                let stride = view.inner_stride();
                let off = offset_at(b, outer()?, i, stride);
                let x = b.ins().ireduce(types::I32, off);
                if w == 1 { x } else { lanes_from(b, x, stride) }
            }
            Expr::Random { key, salt, index } => {
                let stride = index.inner_stride();
                let off = offset_at(b, outer()?, i, stride);
                let idx = b.ins().ireduce(types::I32, off);
                let idx = if w == 1 { idx } else { lanes_from(b, idx, stride) };
                ops::random(b, vals[*key as usize], *salt, idx)
            }
            Expr::Unary(op, a) => ops::unary(b, self.calls, *op, n.dtype, vals[*a as usize])?,
            Expr::Binary(op, x, y) => {
                let (vx, vy) = (vals[*x as usize], vals[*y as usize]);
                match self.exact_reciprocal(*op, *x, *y) {
                    Some(r) => ops::divide_by_constant(b, vx, vy, r, w),
                    None => ops::binary(b, self.calls, *op, dt_of(*x), vx, vy)?,
                }
            }
            Expr::Select(c, x, y) => sel(b, vals[*c as usize], vals[*x as usize], vals[*y as usize]),
            Expr::Cast(to, a) => ops::cast(b, dt_of(*a), *to, vals[*a as usize])?,
            Expr::Gather { buf, view, index, stride, dim } => {
                if *dim == 0 {
                    return Ok(constant(b, n.dtype, 1, 0.0));
                }
                let row = self.addr(b, *buf, outer()?, i, view.inner_stride())?;
                let idx = b.ins().sextend(types::I64, vals[*index as usize]);
                let ok = b.ins().icmp_imm_u(IntCC::UnsignedLessThan, idx, *dim as i64);
                let zero = b.ins().iconst(types::I64, 0);
                let safe = b.ins().select(ok, idx, zero);
                let size = elem_size(n.dtype) as i64;
                let off = b.ins().imul_imm_s(safe, stride * size);
                let a = b.ins().iadd(row, off);
                let v = load(b, n.dtype, 1, a);
                let z = constant(b, n.dtype, 1, 0.0);
                b.ins().select(ok, v, z)
            }
        })
    }

    /// `1 / c` for `x / c` with `c` a constant and `x` a float made from a
    /// u8 or bool (`f32(image) / 255.0`), when [`corrected_quotient`] gives
    /// the division's own bits for every value `x` can take; all are tried.
    /// A division costs a 4-lane `divps` several cycles; this, three
    /// multiply-adds.
    fn exact_reciprocal(&self, op: BinaryOp, x: ExprId, y: ExprId) -> Option<f32> {
        let node = |e: ExprId| &self.k.nodes[e as usize];
        let (Expr::Const(c), Expr::Cast(DType::F32, src)) = (&node(y).expr, &node(x).expr) else { return None };
        let top = match node(*src).dtype {
            DType::U8 => 255u8,
            DType::Bool => 1,
            DType::F32 | DType::I32 => return None,
        };
        let (c, r) = (*c as f32, 1.0 / *c as f32);
        // Steps run with denormals flushed (FTZ/DAZ), which this check does
        // not model: no value on the way may be a denormal.
        let normal = |x: f32| !x.is_subnormal();
        let exact = (0..=top).map(f32::from).all(|v| {
            let q = v * r;
            let rem = (-q).mul_add(c, v);
            let out = ops::corrected_quotient(v, c, r);
            normal(q) && normal(rem) && normal(out) && out.to_bits() == (v / c).to_bits()
        });
        (op == BinaryOp::Div && node(y).dtype == DType::F32 && r.is_normal() && exact).then_some(r)
    }
}

/// The identity of an accumulating store mode.
fn identity(mode: StoreMode, dt: DType) -> f64 {
    match (mode, dt) {
        (StoreMode::Max, DType::I32) => f64::from(i32::MIN),
        (StoreMode::Max, _) => f64::NEG_INFINITY,
        (StoreMode::Add | StoreMode::Assign, _) => 0.0,
    }
}

fn offset_at(b: &mut FunctionBuilder, outer: Value, i: Value, stride: i64) -> Value {
    match stride {
        0 => outer,
        s => {
            let t = b.ins().imul_imm_s(i, s);
            b.ins().iadd(outer, t)
        }
    }
}

fn load(b: &mut FunctionBuilder, dt: DType, w: u8, a: Value) -> Value {
    match dt {
        DType::U8 if w > 1 => {
            // Four bytes, zero-extended to i32 lanes (reads only those four).
            let word = b.ins().load(types::I32, mf(), a, 0);
            let v = b.ins().scalar_to_vector(types::I32X4, word);
            let bytes = b.ins().bitcast(types::I8X16, math::le(), v);
            let half = b.ins().uwiden_low(bytes);
            b.ins().uwiden_low(half)
        }
        DType::Bool if w > 1 => {
            // Four 0/1 bytes widened, then negated into all-ones masks.
            let ones = load(b, DType::U8, w, a);
            b.ins().ineg(ones)
        }
        DType::U8 => b.ins().uload8(types::I32, mf(), a, 0),
        DType::Bool => b.ins().load(types::I8, mf(), a, 0),
        DType::F32 | DType::I32 => b.ins().load(reg_ty(dt, w), mf(), a, 0),
    }
}

/// `[x, x + stride, x + 2 stride, x + 3 stride]`: an index at each lane.
fn lanes_from(b: &mut FunctionBuilder, x: Value, stride: i64) -> Value {
    let bytes: Vec<u8> = (0..4).flat_map(|l| ((l * stride) as i32).to_le_bytes()).collect();
    let c = b.func.dfg.constants.insert(ConstantData::from(bytes));
    let lanes = b.ins().vconst(types::I32X4, c);
    let base = b.ins().splat(types::I32X4, x);
    b.ins().iadd(base, lanes)
}

/// The element at `a` as one lane of a vector register: f32 or i32, a
/// bool as an all-ones or zero i32 mask.
fn lane(b: &mut FunctionBuilder, dt: DType, a: Value) -> Value {
    match dt {
        DType::Bool => {
            let one = b.ins().uload8(types::I32, mf(), a, 0);
            b.ins().ineg(one)
        }
        DType::U8 => b.ins().uload8(types::I32, mf(), a, 0),
        DType::F32 | DType::I32 => b.ins().load(reg_ty(dt, 1), mf(), a, 0),
    }
}

fn store(b: &mut FunctionBuilder, dt: DType, v: Value, a: Value) {
    match dt {
        DType::U8 => b.ins().istore8(mf(), v, a, 0),
        DType::Bool | DType::F32 | DType::I32 => b.ins().store(mf(), v, a, 0),
    };
}

pub(super) fn constant(b: &mut FunctionBuilder, dt: DType, w: u8, v: f64) -> Value {
    match dt {
        DType::F32 => fconst(b, w, v as f32),
        DType::I32 | DType::U8 => iconst(b, w, v as i32),
        DType::Bool if w == 1 => b.ins().iconst(types::I8, i64::from(v != 0.0)),
        DType::Bool => iconst(b, w, if v != 0.0 { -1 } else { 0 }),
    }
}

/// The accumulation of a store mode (`Assign` keeps the new value).
fn combine(b: &mut FunctionBuilder, mode: StoreMode, dt: DType, acc: Value, v: Value) -> Value {
    match (mode, dt) {
        (StoreMode::Assign, _) => v,
        (StoreMode::Add, DType::F32) => b.ins().fadd(acc, v),
        (StoreMode::Add, _) => b.ins().iadd(acc, v),
        (StoreMode::Max, DType::F32) => math::fmax(b, acc, v, true),
        (StoreMode::Max, _) => b.ins().smax(acc, v),
    }
}

/// A loop bound: a value, and the constant it is when known.
#[derive(Clone, Copy)]
struct Bound {
    v: Value,
    c: Option<i64>,
}

impl Bound {
    fn known(b: &mut FunctionBuilder, c: i64) -> Bound {
        Bound { v: b.ins().iconst(types::I64, c), c: Some(c) }
    }

    fn dynamic(v: Value) -> Bound {
        Bound { v, c: None }
    }

    /// `lo` plus `self - lo` rounded down to a multiple of `step` (a power of two).
    fn floor_from(self, b: &mut FunctionBuilder, lo: Bound, step: i64) -> Bound {
        match (lo.c, self.c) {
            (Some(l), Some(h)) => Bound::known(b, l + (h - l).max(0) / step * step),
            _ => {
                let len = b.ins().isub(self.v, lo.v);
                let whole = b.ins().band_imm_s(len, !(step - 1));
                Bound::dynamic(b.ins().iadd(lo.v, whole))
            }
        }
    }
}

/// A rotated counted loop: `guard; body(i): ...; brif i+step < end,
/// body(i+step), exit`. The guard is omitted when the bounds are known.
struct Loop {
    body: cranelift_codegen::ir::Block,
    exit: cranelift_codegen::ir::Block,
    i: Value,
    step: i64,
    end: Bound,
}

impl Loop {
    /// None when the loop is known to be empty.
    fn begin(b: &mut FunctionBuilder, start: Bound, end: Bound, step: i64) -> Option<Loop> {
        let known = start.c.zip(end.c).map(|(s, e)| s < e);
        if known == Some(false) {
            return None;
        }
        let body = b.create_block();
        let exit = b.create_block();
        let i = b.append_block_param(body, types::I64);
        if known == Some(true) {
            b.ins().jump(body, &[BlockArg::Value(start.v)]);
        } else {
            let go = b.ins().icmp(IntCC::SignedLessThan, start.v, end.v);
            b.ins().brif(go, body, &[BlockArg::Value(start.v)], exit, &[]);
        }
        b.switch_to_block(body);
        Some(Loop { body, exit, i, step, end })
    }

    fn finish(self, b: &mut FunctionBuilder) {
        let next = b.ins().iadd_imm_s(self.i, self.step);
        let more = match self.end.c {
            Some(e) => b.ins().icmp_imm_s(IntCC::SignedLessThan, next, e),
            None => b.ins().icmp(IntCC::SignedLessThan, next, self.end.v),
        };
        b.ins().brif(more, self.body, &[BlockArg::Value(next)], self.exit, &[]);
        b.switch_to_block(self.exit);
    }
}
