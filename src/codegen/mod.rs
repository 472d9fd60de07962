//! Code generation: a [`Schedule`] becomes native code with Cranelift.
//!
//! Every kernel is a function `fn(arena, consts, slots)`; the step is one
//! exported function with the same signature that calls the kernels in
//! order (no Rust-side dispatch). `arena` and `consts` are base pointers;
//! `slots` points at the caller's buffer addresses, one per
//! [`crate::schedule::Slot`]. Matrix products call `nnc_rt_sgemm`, and
//! `pow`/`sin`/`cos` call scalar runtime functions (exactly the reference's
//! f64 functions, rounded); everything else is inline code.
//!
//! The lowering is generic over [`cranelift_module::Module`]: the JIT
//! (`runtime`) uses it now, object files can later.

mod loops;
pub mod math;

use std::collections::HashMap;
use std::fmt;

use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, Signature, UserFuncName, Value, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};

use crate::schedule::{BufId, GemmKernel, KernelBody, Place, Schedule};

/// Symbols of the runtime functions generated code imports.
pub const RT_SGEMM: &str = "nnc_rt_sgemm";
pub const RT_POWF: &str = "nnc_rt_powf";
pub const RT_SINF: &str = "nnc_rt_sinf";
pub const RT_COSF: &str = "nnc_rt_cosf";

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
    let mut f = settings::builder();
    f.set("opt_level", "speed").map_err(cl)?;
    f.set("is_pic", if pic { "true" } else { "false" }).map_err(cl)?;
    f.set("use_colocated_libcalls", "false").map_err(cl)?;
    // The verifier catches invalid IR that codegen would accept silently;
    // it costs compile time, so only debug builds and tests pay for it.
    f.set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" }).map_err(cl)?;
    let isa = cranelift_native::builder().map_err(cl)?;
    isa.finish(settings::Flags::new(f)).map_err(cl)
}

/// The signature shared by the step and its kernels.
fn step_sig<M: Module>(m: &M) -> Signature {
    let ptr = m.target_config().pointer_type();
    let mut sig = m.make_signature();
    sig.params.extend([AbiParam::new(ptr); 3]);
    sig
}

struct Imports {
    sgemm: FuncId,
    powf: FuncId,
    sinf: FuncId,
    cosf: FuncId,
}

fn declare_imports<M: Module>(m: &mut M) -> Result<Imports, CodegenError> {
    let mut sig = m.make_signature();
    sig.params.extend([AbiParam::new(types::I64); 13]);
    let sgemm = m.declare_function(RT_SGEMM, Linkage::Import, &sig).map_err(cl)?;
    let mut f1 = m.make_signature();
    f1.params.push(AbiParam::new(types::F32));
    f1.returns.push(AbiParam::new(types::F32));
    let mut f2 = f1.clone();
    f2.params.push(AbiParam::new(types::F32));
    Ok(Imports {
        sgemm,
        powf: m.declare_function(RT_POWF, Linkage::Import, &f2).map_err(cl)?,
        sinf: m.declare_function(RT_SINF, Linkage::Import, &f1).map_err(cl)?,
        cosf: m.declare_function(RT_COSF, Linkage::Import, &f1).map_err(cl)?,
    })
}

/// Defines the step function `name` (and its kernels, `name_k0`, ...) in
/// `module`. Call `finalize_definitions` (JIT) or `finish` (object) after.
pub fn define_step<M: Module>(module: &mut M, s: &Schedule, name: &str) -> Result<FuncId, CodegenError> {
    let sig = step_sig(module);
    let target = module.target_config();
    let imports = declare_imports(module)?;
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut ids = Vec::with_capacity(s.kernels.len());
    for (i, k) in s.kernels.iter().enumerate() {
        let id = module.declare_function(&format!("{name}_k{i}"), Linkage::Local, &sig).map_err(cl)?;
        module.clear_context(&mut ctx);
        ctx.func.signature = sig.clone();
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let args = b.block_params(entry).to_vec();
            let bases = base_pointers(&mut b, s, &k.body, &args);
            match &k.body {
                KernelBody::Loop(l) => {
                    let calls = loops::Calls {
                        powf: module.declare_func_in_func(imports.powf, b.func),
                        sinf: module.declare_func_in_func(imports.sinf, b.func),
                        cosf: module.declare_func_in_func(imports.cosf, b.func),
                    };
                    loops::Gen::new(l, &s.buffers, &bases, &calls).emit(&mut b)?;
                }
                KernelBody::Gemm(g) => {
                    let f = module.declare_func_in_func(imports.sgemm, b.func);
                    gemm_call(&mut b, g, &bases, f)?;
                }
            }
            b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(target);
        }
        module
            .define_function(id, &mut ctx)
            .map_err(|e| CodegenError::Cranelift(format!("kernel {i} ({}): {e:?}", k.label)))?;
        ids.push(id);
    }
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
        for id in ids {
            let f = module.declare_func_in_func(id, b.func);
            b.ins().call(f, &args);
        }
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(target);
    }
    module.define_function(step, &mut ctx).map_err(|e| CodegenError::Cranelift(format!("step: {e:?}")))?;
    Ok(step)
}

/// The address of every buffer the kernel touches, computed once at entry.
fn base_pointers(b: &mut FunctionBuilder, s: &Schedule, body: &KernelBody, args: &[Value]) -> HashMap<BufId, Value> {
    let used: Vec<BufId> = match body {
        KernelBody::Loop(l) => l.reads().chain(l.stores.iter().map(|st| st.buf)).collect(),
        KernelBody::Gemm(g) => vec![g.lhs.buf, g.rhs.buf, g.out],
    };
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

/// `nnc_rt_sgemm(a, b, c, batch, m, n, k, a_bs, a_rs, a_cs, b_bs, b_rs, b_cs)`.
fn gemm_call(
    b: &mut FunctionBuilder,
    g: &GemmKernel,
    bases: &HashMap<BufId, Value>,
    f: cranelift_codegen::ir::FuncRef,
) -> Result<(), CodegenError> {
    let base =
        |buf: BufId| bases.get(&buf).copied().ok_or_else(|| CodegenError::Internal(format!("no base for {buf}")));
    let a = b.ins().iadd_imm_s(base(g.lhs.buf)?, g.lhs.offset * 4);
    let bb = b.ins().iadd_imm_s(base(g.rhs.buf)?, g.rhs.offset * 4);
    let c = base(g.out)?;
    let nums = [
        g.batch as i64,
        g.m as i64,
        g.n as i64,
        g.k as i64,
        g.lhs.bs,
        g.lhs.rs,
        g.lhs.cs,
        g.rhs.bs,
        g.rhs.rs,
        g.rhs.cs,
    ];
    let mut args = vec![a, bb, c];
    args.extend(nums.iter().map(|&v| b.ins().iconst(types::I64, v)));
    b.ins().call(f, &args);
    Ok(())
}
