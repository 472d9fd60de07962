//! One compiled step and its buffers, whichever backend runs it.
//!
//! Parameters and optimizer states live in the engine's input buffers and
//! are updated in place by each step (an output named like an input is that
//! input's next value). The loop fills the batch's fields straight into
//! the input buffers, runs, and reads the scalars back: no allocation per
//! step on the native backend.

use super::{Backend, RunError};
use crate::ir::interp::{self, Precision, Value};
use crate::ir::{DType, Graph, Op};
use crate::runtime::{CompiledStep, Options};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;
use std::time::Instant;

/// The interpreter's step: the graph and every named value.
pub struct InterpStep {
    graph: Graph,
    values: HashMap<String, Value>,
    outputs: HashMap<String, Value>,
}

pub enum Engine {
    Interp(Box<InterpStep>),
    Native(Box<CompiledStep>),
}

/// The element types a buffer can hold, as both sides spell them.
pub trait Elem: crate::runtime::HostElem + super::data::Element {
    fn wrap(a: ArrayD<Self>) -> Value;
    fn unwrap(v: &Value) -> Option<&ArrayD<Self>>;
}

impl Elem for f32 {
    fn wrap(a: ArrayD<f32>) -> Value {
        Value::F32(a)
    }
    fn unwrap(v: &Value) -> Option<&ArrayD<f32>> {
        if let Value::F32(a) = v { Some(a) } else { None }
    }
}

impl Elem for i32 {
    fn wrap(a: ArrayD<i32>) -> Value {
        Value::I32(a)
    }
    fn unwrap(v: &Value) -> Option<&ArrayD<i32>> {
        if let Value::I32(a) = v { Some(a) } else { None }
    }
}

impl Elem for u8 {
    fn wrap(a: ArrayD<u8>) -> Value {
        Value::U8(a)
    }
    fn unwrap(v: &Value) -> Option<&ArrayD<u8>> {
        if let Value::U8(a) = v { Some(a) } else { None }
    }
}

fn runtime(e: crate::runtime::RuntimeError) -> RunError {
    RunError::Other(format!("native step: {e}"))
}

/// How the runner schedules every step: parameters and optimizer states
/// are updated in place. `nnc ir --stage kernels` schedules with the same.
pub const STEP_SCHEDULE: crate::schedule::Options = crate::schedule::Options { in_place: true };

/// A step checked and scheduled but not yet compiled to machine code: what
/// can reject a graph has run, what takes the time has not.
#[derive(Clone)]
pub enum Prepared {
    Interp(Box<Graph>),
    Native(Box<crate::schedule::Schedule>),
}

impl Prepared {
    pub fn new(graph: &Graph, backend: Backend) -> Result<Prepared, RunError> {
        Ok(match backend {
            Backend::Interp => Prepared::Interp(Box::new(graph.clone())),
            Backend::Jit => {
                let p = crate::schedule::prepare(graph, STEP_SCHEDULE)
                    .map_err(|e| runtime(crate::runtime::RuntimeError::from(e)))?;
                Prepared::Native(Box::new(p.schedule))
            }
        })
    }
}

impl Engine {
    /// `threads`: how many threads big native kernels split across (0: every core).
    pub fn new(graph: &Graph, backend: Backend, threads: usize) -> Result<Engine, RunError> {
        Engine::compile(Prepared::new(graph, backend)?, threads)
    }

    pub fn compile(p: Prepared, threads: usize) -> Result<Engine, RunError> {
        Ok(match p {
            Prepared::Interp(graph) => {
                Engine::Interp(Box::new(InterpStep { graph: *graph, values: HashMap::new(), outputs: HashMap::new() }))
            }
            Prepared::Native(schedule) => {
                let opts = Options { in_place: STEP_SCHEDULE.in_place, threads, c_products: false };
                Engine::Native(Box::new(CompiledStep::from_schedule(*schedule, opts).map_err(runtime)?))
            }
        })
    }

    /// The shape of input `name` as the graph declares it.
    fn input_shape(graph: &Graph, name: &str) -> Option<Vec<usize>> {
        graph.inputs().iter().find_map(|&id| {
            if let Op::Input(i) = &graph.node(id).op { (i.name == name).then(|| i.ty.shape.clone()) } else { None }
        })
    }

    /// Fill input `name` through `f`, which gets a buffer of exactly its size.
    pub fn fill<T: Elem>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut [T]) -> Result<(), RunError>,
    ) -> Result<(), RunError> {
        match self {
            Engine::Native(step) => f(step.input_mut::<T>(name).map_err(runtime)?),
            Engine::Interp(i) => {
                let InterpStep { graph, values, .. } = &mut **i;
                let Some(shape) = Engine::input_shape(graph, name) else { return Ok(()) };
                let mut buf = vec![T::default(); shape.iter().product()];
                f(&mut buf)?;
                let a = ArrayD::from_shape_vec(IxDyn(&shape), buf).map_err(|e| RunError::Other(e.to_string()))?;
                values.insert(name.to_string(), T::wrap(a));
                Ok(())
            }
        }
    }

    /// Whether the step reads input `name` (unused inputs may be absent).
    /// The compiled step's kernels and buffers (none for the interpreter).
    pub fn schedule(&self) -> Option<&crate::schedule::Schedule> {
        match self {
            Engine::Interp(_) => None,
            Engine::Native(s) => Some(s.schedule()),
        }
    }

    pub fn has_input(&self, name: &str) -> bool {
        match self {
            Engine::Native(step) => step.schedule().slots.iter().any(|s| s.name == name),
            Engine::Interp(i) => i.graph.find_input(name).is_some(),
        }
    }

    /// Set scalar input `name`, if the step reads it.
    pub fn set_scalar<T: Elem>(&mut self, name: &str, v: T) -> Result<(), RunError> {
        if !self.has_input(name) {
            return Ok(());
        }
        self.fill::<T>(name, |b| {
            b.fill(v);
            Ok(())
        })
    }

    /// Runs the step, reporting each compiled kernel's start and end (the
    /// interpreter has no kernels: it reports none).
    pub fn run_timed(&mut self, times: &mut Vec<(usize, Instant, Instant)>) -> Result<(), RunError> {
        match self {
            Engine::Native(step) => {
                step.run_timed(|i, a, b| times.push((i, a, b)));
                Ok(())
            }
            Engine::Interp(_) => self.run(),
        }
    }

    pub fn run(&mut self) -> Result<(), RunError> {
        match self {
            Engine::Native(step) => {
                step.run();
                Ok(())
            }
            Engine::Interp(i) => {
                let InterpStep { graph, values, outputs } = &mut **i;
                let outs = interp::run(graph, values, Precision::F32)?;
                for ((name, _), v) in graph.outputs().iter().zip(outs) {
                    // Outputs named like inputs are the inputs' next values.
                    if values.contains_key(name) {
                        values.insert(name.clone(), v);
                    } else {
                        outputs.insert(name.clone(), v);
                    }
                }
                Ok(())
            }
        }
    }

    /// A scalar output (loss, a metric) after `run`.
    pub fn scalar(&mut self, name: &str) -> Result<f64, RunError> {
        match self {
            Engine::Native(step) => {
                let v = step.output::<f32>(name).map_err(runtime)?;
                Ok(v.first().map_or(f64::NAN, |x| f64::from(*x)))
            }
            Engine::Interp(i) => match i.outputs.get(name) {
                Some(Value::F32(a)) => Ok(a.iter().next().map_or(f64::NAN, |x| f64::from(*x))),
                _ => Err(RunError::Other(format!("no scalar output `{name}`"))),
            },
        }
    }

    /// The current contents of an f32 input (a parameter or a state).
    pub fn read_f32(&mut self, name: &str) -> Result<Vec<f32>, RunError> {
        match self {
            Engine::Native(step) => Ok(step.input_mut::<f32>(name).map_err(runtime)?.to_vec()),
            Engine::Interp(i) => match i.values.get(name).and_then(f32::unwrap) {
                Some(a) => Ok(a.iter().copied().collect()),
                None => Err(RunError::Other(format!("no tensor `{name}`"))),
            },
        }
    }

    /// The step's scalar outputs (`loss`, `metric/<name>`), in graph order.
    pub fn metric_outputs(graph: &Graph) -> Vec<String> {
        graph.outputs().iter().map(|(n, _)| n.clone()).filter(|n| n == "loss" || n.starts_with("metric/")).collect()
    }

    /// Read those outputs after `run` into `values`, without allocating.
    pub fn read_scalars(&mut self, outputs: &[String], values: &mut [f64]) -> Result<(), RunError> {
        for (v, name) in values.iter_mut().zip(outputs) {
            *v = self.scalar(name)?;
        }
        Ok(())
    }
}

/// The dtype a field is fed as.
pub fn check_dtype(d: DType) -> Result<(), RunError> {
    match d {
        DType::F32 | DType::I32 | DType::U8 => Ok(()),
        DType::Bool => Err(RunError::Other("bool data fields are not supported".into())),
    }
}
