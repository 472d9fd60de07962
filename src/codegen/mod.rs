//! Code generation: a [`Schedule`] becomes native code with Cranelift.
//!
//! Every kernel is a function `fn(arena, consts, slots, start, end)` that
//! runs units `[start, end)` of its outermost loop (or of a product's rows,
//! columns or batch); the step is one exported function
//! `fn(arena, consts, slots, pool)` that calls the kernels in order (no
//! Rust-side dispatch), big ones through `nnc_rt_parallel`, which splits the
//! units across the pool's threads. `arena` and `consts` are base pointers;
//! `slots` points at the caller's buffer addresses, one per
//! [`crate::schedule::Slot`]. Matrix products call `nnc_rt_sgemm`, and
//! `pow`/`sin`/`cos` call scalar runtime functions (exactly the reference's
//! f64 functions, rounded); everything else is inline code.
//!
//! The lowering is generic over [`cranelift_module::Module`]: the JIT
//! (`runtime`) and object files (`build`) share it.

#![warn(clippy::wildcard_enum_match_arm)]

mod loops;
pub mod math;
mod ops;

use std::collections::HashMap;
use std::fmt;

use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, Signature, UserFuncName, Value, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};

use crate::schedule::{BufId, ConvKernel, GemmKernel, KernelBody, Place, Schedule};

/// The runtime functions generated code calls: one row each, with its
/// symbol and signature. The JIT binds every row to a Rust function
/// (`runtime::rt::address`); a build links the C runtime, which defines
/// every symbol (a test compiles and links one of each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtCall {
    /// `(16 x i64)`: a strided, batched product over a row or column range.
    Sgemm,
    /// `(7 x i64)`: run a kernel across the thread pool.
    Parallel,
    /// `(desc, x, w, y, start, end)`: one convolution role over a unit range.
    Conv,
    Powf,
    Sinf,
    Cosf,
}

impl RtCall {
    pub const ALL: [RtCall; 6] =
        [RtCall::Sgemm, RtCall::Parallel, RtCall::Conv, RtCall::Powf, RtCall::Sinf, RtCall::Cosf];

    pub fn symbol(self) -> &'static str {
        match self {
            RtCall::Sgemm => "nnc_rt_sgemm",
            RtCall::Parallel => "nnc_rt_parallel",
            RtCall::Conv => "nnc_rt_conv",
            RtCall::Powf => "nnc_rt_powf",
            RtCall::Sinf => "nnc_rt_sinf",
            RtCall::Cosf => "nnc_rt_cosf",
        }
    }

    fn signature<M: Module>(self, m: &M) -> cranelift_codegen::ir::Signature {
        let mut sig = m.make_signature();
        let (params, ty, ret) = match self {
            RtCall::Sgemm => (16, types::I64, false),
            RtCall::Parallel => (7, types::I64, false),
            RtCall::Conv => (6, types::I64, false),
            RtCall::Powf => (2, types::F32, true),
            RtCall::Sinf | RtCall::Cosf => (1, types::F32, true),
        };
        sig.params.extend(std::iter::repeat_n(AbiParam::new(ty), params));
        if ret {
            sig.returns.push(AbiParam::new(ty));
        }
        sig
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum CodegenError {
    /// The host or Cranelift cannot do what was asked.
    Cranelift(String),
    /// An op/dtype combination the generator has no code for.
    Unsupported(String),
    /// A schedule that breaks the generator's assumptions (a bug).
    Internal(String),
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodegenError::Cranelift(m) => write!(f, "code generation failed: {m}"),
            CodegenError::Unsupported(m) => write!(f, "not supported by the native backend: {m}"),
            CodegenError::Internal(m) => write!(f, "internal code generation error: {m}"),
        }
    }
}

impl std::error::Error for CodegenError {}

fn cl(e: impl fmt::Display) -> CodegenError {
    CodegenError::Cranelift(e.to_string())
}

/// The host ISA with every feature it has (AVX, FMA, ...). `pic` must be
/// false for the JIT and true for object files linked into PIE executables.
pub fn host_isa(pic: bool) -> Result<OwnedTargetIsa, CodegenError> {
    let isa = cranelift_native::builder().map_err(cl)?;
    isa.finish(flags(pic)?).map_err(cl)
}

/// The ISA of CPU `cpu` (a Cranelift preset: `x86-64`, `x86-64-v3`,
/// `haswell`, ...) on the host's architecture, position independent (for
/// object files). Errors name the CPU when Cranelift does not know it.
pub fn cpu_isa(cpu: &str) -> Result<OwnedTargetIsa, CodegenError> {
    let triple = cranelift_native::builder().map_err(cl)?.triple().clone();
    let mut isa = cranelift_codegen::isa::lookup(triple).map_err(cl)?;
    isa.enable(cpu).map_err(|_| CodegenError::Cranelift(format!(
            "unknown target CPU `{cpu}` (known: x86-64, x86-64-v2, x86-64-v3, x86-64-v4, haswell, skylake, skylake-avx512, icelake-server, znver3, ...)"
        )))?;
    // These presets leave out `has_avx`, without which every FMA becomes a
    // call to `fmaf`; both levels include AVX by definition.
    if matches!(cpu, "x86-64-v3" | "x86-64-v4") {
        isa.enable("has_avx").map_err(cl)?;
    }
    isa.finish(flags(true)?).map_err(cl)
}

fn flags(pic: bool) -> Result<settings::Flags, CodegenError> {
    let mut f = settings::builder();
    f.set("opt_level", "speed").map_err(cl)?;
    f.set("is_pic", if pic { "true" } else { "false" }).map_err(cl)?;
    f.set("use_colocated_libcalls", "false").map_err(cl)?;
    // The verifier catches invalid IR that codegen would accept silently;
    // it costs compile time, so only debug builds and tests pay for it.
    f.set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" }).map_err(cl)?;
    Ok(settings::Flags::new(f))
}

/// The step's signature: `(arena, consts, slots, pool)`.
fn step_sig<M: Module>(m: &M) -> Signature {
    let ptr = m.target_config().pointer_type();
    let mut sig = m.make_signature();
    sig.params.extend([AbiParam::new(ptr); 4]);
    sig
}

/// A kernel's signature: `(arena, consts, slots, start, end)`, running the
/// units `[start, end)` of its split axis (see [`split_units`]).
fn kernel_sig<M: Module>(m: &M) -> Signature {
    let ptr = m.target_config().pointer_type();
    let mut sig = m.make_signature();
    sig.params.extend([AbiParam::new(ptr); 3]);
    sig.params.extend([AbiParam::new(types::I64); 2]);
    sig
}

/// Every runtime function, declared in the module, by [`RtCall`] row.
struct Imports([FuncId; RtCall::ALL.len()]);

impl Imports {
    fn get(&self, call: RtCall) -> FuncId {
        self.0[call as usize]
    }
}

fn declare_imports<M: Module>(m: &mut M) -> Result<Imports, CodegenError> {
    let mut ids = Vec::with_capacity(RtCall::ALL.len());
    for call in RtCall::ALL {
        ids.push(m.declare_function(call.symbol(), Linkage::Import, &call.signature(m)).map_err(cl)?);
    }
    let ids = ids.try_into().map_err(|_| CodegenError::Internal("runtime call table".into()))?;
    Ok(Imports(ids))
}

/// Which axis of a product threads split.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GemmAxis {
    Batch,
    Rows,
    Cols,
}

/// The axis a product is split along: rows when it has an epilogue (that
/// split is known to give the same bits as one thread for the seed's
/// shapes), else the longer side. An epilogue that sums over rows (a bias
/// gradient) rules out a row split: two threads would add into the same
/// sums. Columns are split instead, and each column is still summed in row
/// order, as on one thread.
fn gemm_axis(g: &GemmKernel) -> GemmAxis {
    if g.batch > 1 {
        return GemmAxis::Batch;
    }
    let rows_first = g.epilogue.is_some() || g.m >= g.n;
    let prefer = if rows_first { [GemmAxis::Rows, GemmAxis::Cols] } else { [GemmAxis::Cols, GemmAxis::Rows] };
    prefer.into_iter().find(|&a| epilogue_splits(g, a)).unwrap_or(prefer[0])
}

/// Whether threads may run the epilogue on disjoint ranges of `axis`: no
/// store reduces over it (or scatters).
fn epilogue_splits(g: &GemmKernel, axis: GemmAxis) -> bool {
    let Some(e) = &g.epilogue else { return true };
    let d = if axis == GemmAxis::Rows { 0 } else { 1 };
    e.stores.iter().all(|s| s.scatter.is_none() && (s.view.strides[d] != 0 || e.space[d] == 1))
}

/// The units of a kernel's split axis: the outermost loop dim (1 for a
/// scalar loop), or the product's batch, rows or columns.
pub fn split_units(k: &KernelBody) -> usize {
    match k {
        KernelBody::Loop(l) => l.space.first().copied().unwrap_or(1),
        KernelBody::Gemm(g) => match gemm_axis(g) {
            GemmAxis::Batch => g.batch,
            GemmAxis::Rows => g.m,
            GemmAxis::Cols => g.n,
        },
        KernelBody::Conv(c) => c.geom.units(),
    }
}

/// The `grain` argument of `nnc_rt_parallel` for a kernel: loop chunks
/// start on multiples of 16 units (whole vectors); a negative grain asks
/// for one chunk per thread (a product packs its operands per call).
pub fn split_grain(k: &KernelBody) -> i64 {
    match k {
        KernelBody::Loop(_) => 16,
        KernelBody::Gemm(_) | KernelBody::Conv(_) => -1,
    }
}

/// Work below which a kernel runs on one thread: waking the others costs
/// about a microsecond, a 16k-element loop or a 2 MFLOP product a few.
const MIN_SPLIT_ELEMS: usize = 16 * 1024;
const MIN_SPLIT_FLOPS: usize = 2 << 20;

/// Whether the kernel is worth splitting across threads and may be:
/// disjoint ranges of its split axis must write disjoint elements.
pub fn parallel(k: &KernelBody) -> bool {
    match k {
        KernelBody::Loop(l) => {
            let big = l.space.iter().product::<usize>() >= MIN_SPLIT_ELEMS && l.space[0] > 1;
            big && l.stores.iter().all(|s| s.scatter.is_none() && s.view.strides[0] != 0)
        }
        KernelBody::Gemm(g) => {
            2 * g.batch * g.m * g.n * g.k >= MIN_SPLIT_FLOPS && split_units(k) > 1 && epilogue_splits(g, gemm_axis(g))
        }
        // Every role writes disjoint elements per unit (see `ConvGeom::units`).
        KernelBody::Conv(c) => c.geom.flops() >= MIN_SPLIT_FLOPS && split_units(k) > 1,
    }
}

/// Defines the step function `name` (and its kernels, `name_k0`, ...) in
/// `module`; kernels worth it are split across `threads` threads through
/// `nnc_rt_parallel`. Call `finalize_definitions` (JIT) or `finish`
/// (object) after.
pub fn define_step<M: Module>(
    module: &mut M,
    s: &Schedule,
    name: &str,
    threads: usize,
) -> Result<StepFuncs, CodegenError> {
    let imports = declare_imports(module)?;
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut ids = Vec::with_capacity(s.kernels.len());
    for (i, k) in s.kernels.iter().enumerate() {
        let split = threads > 1 && parallel(&k.body);
        let id = define_kernel(module, &mut ctx, &mut fctx, (s, name, i), split, &imports)?;
        ids.push((id, split, split_units(&k.body), split_grain(&k.body)));
    }
    let sig = step_sig(module);
    let target = module.target_config();
    let step = module.declare_function(name, Linkage::Export, &sig).map_err(cl)?;
    module.clear_context(&mut ctx);
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, step.as_u32());
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let args = b.block_params(entry).to_vec();
        let par = module.declare_func_in_func(imports.get(RtCall::Parallel), b.func);
        for &(id, split, units, grain) in &ids {
            let f = module.declare_func_in_func(id, b.func);
            let n = b.ins().iconst(types::I64, units as i64);
            if split {
                let addr = b.ins().func_addr(target.pointer_type(), f);
                let grain = b.ins().iconst(types::I64, grain);
                b.ins().call(par, &[args[3], addr, args[0], args[1], args[2], n, grain]);
            } else {
                let zero = b.ins().iconst(types::I64, 0);
                b.ins().call(f, &[args[0], args[1], args[2], zero, n]);
            }
        }
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(target);
    }
    module.define_function(step, &mut ctx).map_err(|e| CodegenError::Cranelift(format!("step: {e:?}")))?;
    Ok(StepFuncs { step, kernels: ids.iter().map(|k| (k.0, k.1)).collect() })
}

/// What [`define_step`] defined.
pub struct StepFuncs {
    pub step: FuncId,
    /// Each kernel, and whether the step splits it across threads.
    pub kernels: Vec<(FuncId, bool)>,
}

/// Defines kernel `i` of `s` as `{step}_k{i}`; `split`: it runs the range
/// it is given, else always all of it.
fn define_kernel<M: Module>(
    module: &mut M,
    ctx: &mut cranelift_codegen::Context,
    fctx: &mut FunctionBuilderContext,
    (s, name, i): (&Schedule, &str, usize),
    split: bool,
    imports: &Imports,
) -> Result<FuncId, CodegenError> {
    let k = &s.kernels[i];
    let sig = kernel_sig(module);
    let target = module.target_config();
    let id = module.declare_function(&format!("{name}_k{i}"), Linkage::Local, &sig).map_err(cl)?;
    module.clear_context(ctx);
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let args = b.block_params(entry).to_vec();
        let bases = base_pointers(&mut b, s, &k.body, &args);
        let calls = loops::Calls(RtCall::ALL.map(|c| module.declare_func_in_func(imports.get(c), b.func)));
        let range = split.then(|| (args[3], args[4]));
        match &k.body {
            KernelBody::Loop(l) => {
                let part = range.map_or(loops::Range::Whole, |(s, e)| loops::Range::Outer(s, e));
                loops::Gen::new(l, &s.buffers, &bases, &calls).emit(&mut b, part)?
            }
            KernelBody::Gemm(g) => {
                let f = module.declare_func_in_func(imports.get(RtCall::Sgemm), b.func);
                let (start, end) = match range {
                    Some(r) => r,
                    None => (b.ins().iconst(types::I64, 0), b.ins().iconst(types::I64, split_units(&k.body) as i64)),
                };
                gemm_call(&mut b, g, &bases, f, start, end)?;
                if let Some(e) = &g.epilogue {
                    let part = match (range, gemm_axis(g)) {
                        (None, _) => loops::Range::Whole,
                        (Some((s, e)), GemmAxis::Cols) => loops::Range::Inner(s, e),
                        (Some((s, e)), _) => loops::Range::Outer(s, e),
                    };
                    loops::Gen::new(e, &s.buffers, &bases, &calls).emit(&mut b, part)?;
                }
            }
            KernelBody::Conv(c) => {
                let f = module.declare_func_in_func(imports.get(RtCall::Conv), b.func);
                let (start, end) = match range {
                    Some(r) => r,
                    None => (b.ins().iconst(types::I64, 0), b.ins().iconst(types::I64, c.geom.units() as i64)),
                };
                conv_call(&mut b, c, &bases, args[1], f, (start, end))?;
            }
        }
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(target);
    }
    module.define_function(id, ctx).map_err(|e| CodegenError::Cranelift(format!("kernel {i} ({}): {e:?}", k.label)))?;
    Ok(id)
}

/// The address of every buffer the kernel touches, computed once at entry.
fn base_pointers(b: &mut FunctionBuilder, s: &Schedule, body: &KernelBody, args: &[Value]) -> HashMap<BufId, Value> {
    let k = crate::schedule::Kernel::plain(String::new(), body.clone());
    let used: Vec<BufId> = k.reads().into_iter().chain(k.writes()).collect();
    let mut bases = HashMap::new();
    for buf in used {
        if bases.contains_key(&buf) {
            continue;
        }
        let v = match s.buffers[buf.index()].place {
            Place::Arena(o) => b.ins().iadd_imm_s(args[0], o as i64),
            Place::Const(o) => b.ins().iadd_imm_s(args[1], o as i64),
            Place::Slot(i) => {
                let flags = MemFlagsData::new().with_notrap().with_aligned();
                b.ins().load(types::I64, flags, args[2], (i * 8) as i32)
            }
        };
        bases.insert(buf, v);
    }
    bases
}

/// `nnc_rt_sgemm(a, b, c, batch, m, n, k, a_bs, a_rs, a_cs, b_bs, b_rs,
/// b_cs, c_bs, c_rs, c_cs)` on units `[start, end)` of the split axis.
fn gemm_call(
    b: &mut FunctionBuilder,
    g: &GemmKernel,
    bases: &HashMap<BufId, Value>,
    f: cranelift_codegen::ir::FuncRef,
    start: Value,
    end: Value,
) -> Result<(), CodegenError> {
    let base =
        |buf: BufId| bases.get(&buf).copied().ok_or_else(|| CodegenError::Internal(format!("no base for {buf}")));
    let (lhs, rhs, out) = (&g.lhs, &g.rhs, &g.out);
    // The split axis moves these operands by this many elements per unit.
    let (da, db, dc) = match gemm_axis(g) {
        GemmAxis::Batch => (lhs.bs, rhs.bs, out.bs),
        GemmAxis::Rows => (lhs.rs, 0, out.rs),
        GemmAxis::Cols => (0, rhs.cs, out.cs),
    };
    let at = |b: &mut FunctionBuilder, op: &crate::schedule::MatOperand, per: i64| -> Result<Value, CodegenError> {
        let p = b.ins().iadd_imm_s(base(op.buf)?, op.offset * 4);
        let skip = b.ins().imul_imm_s(start, per * 4);
        Ok(b.ins().iadd(p, skip))
    };
    let (pa, pb, pc) = (at(b, lhs, da)?, at(b, rhs, db)?, at(b, out, dc)?);
    let count = b.ins().isub(end, start);
    let c = |b: &mut FunctionBuilder, v: usize| b.ins().iconst(types::I64, v as i64);
    let (batch, m, n) = match gemm_axis(g) {
        GemmAxis::Batch => (count, c(b, g.m), c(b, g.n)),
        GemmAxis::Rows => (c(b, g.batch), count, c(b, g.n)),
        GemmAxis::Cols => (c(b, g.batch), c(b, g.m), count),
    };
    let mut args = vec![pa, pb, pc, batch, m, n, c(b, g.k)];
    for v in [lhs.bs, lhs.rs, lhs.cs, rhs.bs, rhs.rs, rhs.cs, out.bs, out.rs, out.cs] {
        args.push(b.ins().iconst(types::I64, v));
    }
    b.ins().call(f, &args);
    Ok(())
}

/// `nnc_rt_conv(desc, x, w, y, start, end)`, the descriptor in the
/// constant segment.
fn conv_call(
    b: &mut FunctionBuilder,
    c: &ConvKernel,
    bases: &HashMap<BufId, Value>,
    consts: Value,
    f: cranelift_codegen::ir::FuncRef,
    (start, end): (Value, Value),
) -> Result<(), CodegenError> {
    let mut args = vec![b.ins().iadd_imm_s(consts, c.desc as i64)];
    for (buf, offset) in [c.x, c.w, c.y] {
        let base = bases.get(&buf).copied().ok_or_else(|| CodegenError::Internal(format!("no base for {buf}")))?;
        args.push(b.ins().iadd_imm_s(base, offset * 4));
    }
    args.extend([start, end]);
    b.ins().call(f, &args);
    Ok(())
}

#[cfg(test)]
mod rt_call_tests {
    use super::RtCall;

    /// Imports and calls are indexed by `call as usize`: `ALL` must list
    /// every call in declaration order.
    #[test]
    fn the_table_is_in_declaration_order() {
        for (i, c) in RtCall::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
    }
}
