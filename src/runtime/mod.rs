//! The compiled training (or eval) step: JIT code plus every buffer it
//! needs, allocated once.
//!
//! ```ignore
//! let mut step = CompiledStep::compile_with(&graph, Options { in_place: true, ..Options::default() })?;
//! step.input_mut::<f32>("l1.w")?.copy_from_slice(&init);  // once
//! loop {
//!     step.set_input::<u8>("image", batch)?;               // per step
//!     step.run();
//!     let loss = step.output::<f32>("loss")?[0];
//! }   // "l1.w" now holds the updated weights: outputs named like inputs
//!     // write back in place when compiled with `in_place`
//! ```
//!
//! The step owns one host buffer per slot (input, output, or both), the
//! arena for intermediates and the constant segment; `run` allocates
//! nothing. Denormals are flushed while it runs (on every thread). Big
//! kernels split their outer loop (a product its rows, columns or batch)
//! across [`Options::threads`] threads of a [`pool::Pool`] owned by the step;
//! each thread always gets the same share, so results are the same from
//! run to run, and the same as on one thread wherever the split does not
//! change the order of a sum (it never does for loops; products may block
//! their sums differently when their shape changes).

mod fpenv;
pub mod peak;
pub mod pool;
pub mod rt;

use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;
use ndarray::{ArrayD, IxDyn};

use crate::codegen::{self, CodegenError};
use crate::ir::interp::Value;
use crate::ir::{DType, Graph};
use crate::schedule::{self, Schedule, ScheduleError, SlotRole};
pub use fpenv::FlushDenormals;

#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeError {
    Schedule(ScheduleError),
    Codegen(CodegenError),
    /// No input (or output) of that name.
    UnknownName {
        name: String,
        output: bool,
    },
    /// A buffer of the wrong dtype or length.
    Mismatch {
        name: String,
        message: String,
    },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Schedule(e) => e.fmt(f),
            RuntimeError::Codegen(e) => e.fmt(f),
            RuntimeError::UnknownName { name, output } => {
                write!(f, "the step has no {} named `{name}`", if *output { "output" } else { "input" })
            }
            RuntimeError::Mismatch { name, message } => write!(f, "`{name}`: {message}"),
        }
    }
}

impl std::error::Error for RuntimeError {}

impl From<ScheduleError> for RuntimeError {
    fn from(e: ScheduleError) -> Self {
        RuntimeError::Schedule(e)
    }
}

impl From<CodegenError> for RuntimeError {
    fn from(e: CodegenError) -> Self {
        RuntimeError::Codegen(e)
    }
}

/// Element types of host buffers.
pub trait HostElem: Copy + 'static {
    const DTYPE: DType;
}

impl HostElem for f32 {
    const DTYPE: DType = DType::F32;
}
impl HostElem for i32 {
    const DTYPE: DType = DType::I32;
}
impl HostElem for u8 {
    const DTYPE: DType = DType::U8;
}
impl HostElem for bool {
    const DTYPE: DType = DType::Bool;
}

/// Zeroed, 64-byte aligned bytes. Large buffers (the arena) are an
/// anonymous mapping populated when it is made: the kernel hands over
/// zeroed pages in one call, where a memset (or the first step's writes)
/// would take one page fault per 4 KB page, ~25,000 for char_gpt's 100 MB
/// arena; that was a third of its compile. Small ones come from the
/// allocator.
struct Bytes {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    /// Bytes mapped with `mmap`, or 0 for an allocation of `layout`.
    mapped: usize,
}

/// From this size up, buffers are mapped.
const MAP_FROM: usize = 2 << 20;

#[cfg(target_os = "linux")]
const POPULATE: libc::c_int = libc::MAP_POPULATE;
// Elsewhere pages fault in as the first step touches them.
#[cfg(not(target_os = "linux"))]
const POPULATE: libc::c_int = 0;

impl Bytes {
    fn zeroed(len: usize) -> Bytes {
        if len >= MAP_FROM
            && let Some(b) = Bytes::mapped(len)
        {
            return b;
        }
        let layout = Bytes::layout(len);
        // SAFETY: the layout has a non-zero size (at least one line).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else { std::alloc::handle_alloc_error(layout) };
        Bytes { ptr, len, mapped: 0 }
    }

    fn layout(len: usize) -> std::alloc::Layout {
        // 64 divides the size and is a power of two; the size is below isize::MAX
        // for any buffer a schedule could lay out (it checks its sums).
        std::alloc::Layout::from_size_align(len.next_multiple_of(64).max(64), 64).expect("buffer layout")
    }

    /// A private anonymous mapping of `len` zero bytes (page-aligned), or
    /// None where the system refuses one (then the allocator is used).
    fn mapped(len: usize) -> Option<Bytes> {
        let size = len.next_multiple_of(4096);
        // SAFETY: a new private anonymous mapping; no existing memory is touched.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | POPULATE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        Some(Bytes { ptr: std::ptr::NonNull::new(raw.cast())?, len, mapped: size })
    }

    fn ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` holds at least `len` initialised (zeroed or written) bytes, owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len) }
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        if self.mapped > 0 {
            // SAFETY: the mapping made in `mapped`, of that size, unmapped once.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped) };
        } else {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Bytes::layout(self.len)) };
        }
    }
}

/// What [`CompiledStep::profile`] measured: medians over its repetitions.
#[derive(Clone, Debug)]
pub struct StepProfile {
    /// Seconds of each kernel, in schedule order, run as the step runs it.
    pub kernels: Vec<f64>,
    /// Seconds of the whole step.
    pub step: f64,
    /// Threads each kernel ran on (1 unless the step splits it).
    pub threads: Vec<usize>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_unstable_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

/// How a step is compiled.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// An output named like an input (with the same type) shares that
    /// input's buffer: the step updates it in place.
    pub in_place: bool,
    /// Threads that big kernels are split across; 0: every available core.
    pub threads: usize,
    /// Matrix products by the built executable's C kernels (src/build/sgemm.c)
    /// instead of the gemm crate: `nnc predict` then prints a build's digits.
    pub c_products: bool,
}

impl Options {
    /// The thread count `threads` stands for.
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Calling convention of the generated step: (arena, consts, slot
/// addresses, pool).
type StepFn = unsafe extern "C" fn(*mut u8, *mut u8, *const *mut u8, *const pool::Shared);

pub struct CompiledStep {
    schedule: Schedule,
    entry: StepFn,
    arena: Bytes,
    consts: Bytes,
    host: Vec<Bytes>,
    ptrs: Vec<*mut u8>,
    pool: pool::Pool,
    /// Each kernel, and whether the step splits it (for [`Self::profile`]).
    kernels: Vec<(pool::KernelFn, bool)>,
    /// Owns the code `entry` and `kernels` point into; freed on drop.
    module: Option<JITModule>,
}

impl Drop for CompiledStep {
    fn drop(&mut self) {
        // A JIT module leaks its code unless freed explicitly; `nnc watch`
        // compiles a new step on every edit, so each old one must go.
        if let Some(m) = self.module.take() {
            // SAFETY: `entry` and `kernels` are the only pointers into this
            // code; they die with `self`, and no step runs during `drop`.
            unsafe { m.free_memory() }
        }
    }
}

/// Whether [`Options::c_products`] can run on this CPU.
pub fn c_products_usable() -> bool {
    rt::nnc_c_sgemm_usable() != 0
}

impl CompiledStep {
    /// Compiles `g` with every output in its own buffer.
    pub fn compile(g: &Graph) -> Result<CompiledStep, RuntimeError> {
        CompiledStep::compile_with(g, Options::default())
    }

    pub fn compile_with(g: &Graph, opts: Options) -> Result<CompiledStep, RuntimeError> {
        let schedule = schedule::prepare(g, schedule::Options { in_place: opts.in_place })?.schedule;
        CompiledStep::from_schedule(schedule, opts)
    }

    /// JIT-compiles a schedule `schedule::prepare` made (with the same
    /// `in_place` as `opts`): `nnc predict` runs the very schedule a build
    /// compiles, without preparing it again.
    pub fn from_schedule(schedule: Schedule, opts: Options) -> Result<CompiledStep, RuntimeError> {
        let threads = opts.thread_count();
        let mut jb = JITBuilder::with_isa(codegen::host_isa(false)?, default_libcall_names());
        let c_products = opts.c_products && c_products_usable();
        for call in codegen::RtCall::ALL {
            jb.symbol(call.symbol(), rt::address(call, c_products));
        }
        let mut module = JITModule::new(jb);
        let funcs = codegen::define_step(&mut module, &schedule, "nnc_step", threads)?;
        module.finalize_definitions().map_err(|e| CodegenError::Cranelift(e.to_string()))?;
        let code = module.get_finalized_function(funcs.step);
        let kernels = funcs
            .kernels
            .iter()
            .map(|&(id, split)| {
                // SAFETY: kernels are defined with `KernelFn`'s signature.
                let f = unsafe { std::mem::transmute::<*const u8, pool::KernelFn>(module.get_finalized_function(id)) };
                (f, split)
            })
            .collect();
        // SAFETY: `define_step` defined this function with `StepFn`'s signature.
        let entry: StepFn = unsafe { std::mem::transmute::<*const u8, StepFn>(code) };
        let mut consts = Bytes::zeroed(schedule.consts.len());
        consts.bytes_mut().copy_from_slice(&schedule.consts);
        let mut host: Vec<Bytes> = schedule
            .slots
            .iter()
            .map(|s| Bytes::zeroed(s.shape.iter().product::<usize>() * schedule::elem_size(s.dtype)))
            .collect();
        let ptrs = host.iter_mut().map(Bytes::ptr).collect();
        Ok(CompiledStep {
            arena: Bytes::zeroed(schedule.arena_bytes),
            schedule,
            entry,
            consts,
            host,
            ptrs,
            pool: pool::Pool::new(threads),
            kernels,
            module: Some(module),
        })
    }

    /// Threads big kernels are split across.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The kernels and buffer plan (for `nnc ir --stage kernels`).
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Runs the step once on the current contents of the input buffers.
    pub fn run(&mut self) {
        let _ftz = FlushDenormals::new();
        // SAFETY: every pointer covers the buffer the schedule sized it for,
        // and `&mut self` rules out concurrent use.
        unsafe { (self.entry)(self.arena.ptr(), self.consts.ptr(), self.ptrs.as_ptr(), self.pool.handle()) }
    }

    /// Runs the step kernel by kernel, as `run` does (the same calls, in
    /// the same order: the same results), calling `each(kernel, start,
    /// end)` after each one.
    pub fn run_timed(&mut self, mut each: impl FnMut(usize, Instant, Instant)) {
        let _ftz = FlushDenormals::new();
        for i in 0..self.kernels.len() {
            let start = Instant::now();
            self.call_kernel(i);
            each(i, start, Instant::now());
        }
    }

    /// Kernel `i` of the step, whole (split across the pool as the step
    /// splits it).
    fn call_kernel(&mut self, i: usize) {
        let (arena, consts, slots) = (self.arena.ptr(), self.consts.ptr(), self.ptrs.as_ptr());
        let (f, split) = self.kernels[i];
        let body = &self.schedule.kernels[i].body;
        let units = codegen::split_units(body) as i64;
        // SAFETY: as in `run`; callers run every kernel in step order.
        unsafe {
            if split {
                pool::nnc_rt_parallel(self.pool.handle(), f, arena, consts, slots, units, codegen::split_grain(body));
            } else {
                f(arena, consts, slots, 0, units);
            }
        }
    }

    /// Times `reps` steps kernel by kernel, interleaved with `reps` whole
    /// steps, on the inputs the buffers hold now; every buffer is put back
    /// afterwards, so profiling a run does not change what it computes.
    pub fn profile(&mut self, reps: usize) -> StepProfile {
        let saved: Vec<Vec<u8>> = self.host.iter_mut().map(|b| b.bytes_mut().to_vec()).collect();
        let reps = reps.max(1);
        let mut kernels = vec![Vec::with_capacity(reps); self.kernels.len()];
        let mut steps = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            self.run();
            steps.push(t.elapsed().as_secs_f64());
            self.run_timed(|i, a, b| kernels[i].push((b - a).as_secs_f64()));
        }
        for (b, s) in self.host.iter_mut().zip(&saved) {
            b.bytes_mut().copy_from_slice(s);
        }
        let threads = self.kernels.iter().map(|&(_, split)| if split { self.pool.threads() } else { 1 }).collect();
        StepProfile { kernels: kernels.into_iter().map(median).collect(), step: median(steps), threads }
    }

    fn slot(&self, name: &str, output: bool) -> Result<usize, RuntimeError> {
        let roles: &[SlotRole] = if output {
            &[SlotRole::Output, SlotRole::InOut, SlotRole::Input]
        } else {
            &[SlotRole::Input, SlotRole::InOut]
        };
        roles
            .iter()
            .find_map(|r| self.schedule.slots.iter().position(|s| s.name == name && s.role == *r))
            .ok_or_else(|| RuntimeError::UnknownName { name: name.to_string(), output })
    }

    fn typed<T: HostElem>(&mut self, i: usize) -> Result<&mut [T], RuntimeError> {
        let s = &self.schedule.slots[i];
        if s.dtype != T::DTYPE {
            let message = format!("is {}, not {}", s.dtype, T::DTYPE);
            return Err(RuntimeError::Mismatch { name: s.name.clone(), message });
        }
        let n = s.shape.iter().product();
        // SAFETY: the buffer holds `n` elements of `T` (same dtype), is
        // 64-byte aligned, and only ever holds valid `T`s (bools are 0/1).
        Ok(unsafe { std::slice::from_raw_parts_mut(self.host[i].ptr().cast::<T>(), n) })
    }

    /// The buffer of input `name`, to fill before `run`.
    pub fn input_mut<T: HostElem>(&mut self, name: &str) -> Result<&mut [T], RuntimeError> {
        let i = self.slot(name, false)?;
        self.typed(i)
    }

    /// Copies `data` into input `name`.
    pub fn set_input<T: HostElem>(&mut self, name: &str, data: &[T]) -> Result<(), RuntimeError> {
        let dst = self.input_mut::<T>(name)?;
        if dst.len() != data.len() {
            let message = format!("expected {} elements, got {}", dst.len(), data.len());
            return Err(RuntimeError::Mismatch { name: name.to_string(), message });
        }
        dst.copy_from_slice(data);
        Ok(())
    }

    /// The buffer of output `name`, valid after `run`.
    pub fn output<T: HostElem>(&mut self, name: &str) -> Result<&[T], RuntimeError> {
        let i = self.slot(name, true)?;
        Ok(self.typed(i)?)
    }

    /// The interpreter's calling convention: sets every input from
    /// `inputs`, runs, and returns the outputs in graph order.
    pub fn run_values(&mut self, g: &Graph, inputs: &HashMap<String, Value>) -> Result<Vec<Value>, RuntimeError> {
        let names: Vec<String> =
            self.schedule.slots.iter().filter(|s| s.role != SlotRole::Output).map(|s| s.name.clone()).collect();
        for name in names {
            let v = inputs
                .get(&name)
                .ok_or_else(|| RuntimeError::Mismatch { name: name.clone(), message: "no value supplied".into() })?;
            self.set_value(&name, v)?;
        }
        self.run();
        g.outputs().iter().map(|(name, _)| self.value(name)).collect()
    }

    fn set_value(&mut self, name: &str, v: &Value) -> Result<(), RuntimeError> {
        let i = self.slot(name, false)?;
        if v.shape() != self.schedule.slots[i].shape.as_slice() {
            let message = format!("expected shape {:?}, got {:?}", self.schedule.slots[i].shape, v.shape());
            return Err(RuntimeError::Mismatch { name: name.to_string(), message });
        }
        match v {
            Value::F32(a) => copy(self.typed::<f32>(i)?, a),
            Value::F64(a) => self.typed::<f32>(i)?.iter_mut().zip(a.iter()).for_each(|(d, s)| *d = *s as f32),
            Value::I32(a) => copy(self.typed::<i32>(i)?, a),
            Value::U8(a) => copy(self.typed::<u8>(i)?, a),
            Value::Bool(a) => copy(self.typed::<bool>(i)?, a),
        }
        Ok(())
    }

    /// Output `name` as an interpreter value.
    pub fn value(&mut self, name: &str) -> Result<Value, RuntimeError> {
        let i = self.slot(name, true)?;
        let shape = IxDyn(&self.schedule.slots[i].shape.clone());
        let bad = |e: ndarray::ShapeError| RuntimeError::Mismatch { name: name.to_string(), message: e.to_string() };
        Ok(match self.schedule.slots[i].dtype {
            DType::F32 => Value::F32(ArrayD::from_shape_vec(shape, self.typed::<f32>(i)?.to_vec()).map_err(bad)?),
            DType::I32 => Value::I32(ArrayD::from_shape_vec(shape, self.typed::<i32>(i)?.to_vec()).map_err(bad)?),
            DType::U8 => Value::U8(ArrayD::from_shape_vec(shape, self.typed::<u8>(i)?.to_vec()).map_err(bad)?),
            DType::Bool => Value::Bool(ArrayD::from_shape_vec(shape, self.typed::<bool>(i)?.to_vec()).map_err(bad)?),
        })
    }
}

fn copy<T: Copy>(dst: &mut [T], src: &ArrayD<T>) {
    dst.iter_mut().zip(src.iter()).for_each(|(d, s)| *d = *s);
}
