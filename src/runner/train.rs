//! The step loop: initialise, train for the schedule, evaluate.

use super::data::{BatchPlan, Order, SplitMix64, mix64};
use super::load::{self, SplitData};
use super::{Backend, RunError};
use crate::ir::interp::{self, Precision, Value};
use crate::ir::{DType, Graph};
use crate::lower::{DataField, Init, Lowered};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub file: PathBuf,
    pub sets: Vec<String>,
    pub experiment: Option<String>,
    pub backend: Backend,
    /// Train on the first N training samples only.
    pub train_samples: Option<usize>,
    /// Evaluate on the first N evaluation samples only.
    pub eval_samples: Option<usize>,
    /// Override the experiment's epoch count.
    pub epochs: Option<usize>,
    pub quiet: bool,
}

#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub experiment: String,
    pub steps: u64,
    /// Mean loss and metrics over the last training epoch.
    pub train: Vec<(String, f64)>,
    /// Loss and metrics on the evaluation split after the last epoch.
    pub eval: Vec<(String, f64)>,
    pub samples_per_sec: f64,
    pub compile_ms: f64,
    pub wall_s: f64,
}

/// Parameters and optimizer states by name: what a checkpoint holds.
type State = HashMap<String, Value>;

pub fn run(opts: &RunOptions) -> Result<RunSummary, RunError> {
    let start = Instant::now();
    let setup = crate::lower::Setup { experiment: opts.experiment.clone(), ..Default::default() };
    let compiled = crate::compile(&opts.file, &opts.sets, setup)
        .map_err(|out| RunError::Compile(out.sources, out.diags))?;
    let lowered = compiled.lowered;
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    let train_data = load::load(&lowered.data.train, opts.train_samples)?;
    let eval_data = match &lowered.data.eval {
        Some(p) => Some(load::load(p, opts.eval_samples)?),
        None => None,
    };
    let mut state = init_state(&lowered);
    let epochs = opts.epochs.unwrap_or(lowered.epochs);
    let mut summary = RunSummary { experiment: lowered.name.clone(), compile_ms, ..Default::default() };
    let plan = BatchPlan::new(
        train_data.len(),
        lowered.data.train.batch,
        train_data.last,
        if lowered.data.train.shuffle { Order::Shuffled { seed: lowered.seed } } else { Order::Sequential },
    )?;
    let total = (plan.batches_per_epoch() * epochs) as f64;
    let train_start = Instant::now();
    let mut samples = 0usize;
    for epoch in 0..epochs {
        let mut meter = Meter::default();
        let mut batches = plan.epoch(epoch as u64);
        while let Some(batch) = batches.next_batch() {
            summary.steps += 1;
            let inputs = batch_inputs(&train_data, batch)?;
            let scalars = step_scalars(summary.steps, total, lowered.lr, lowered.seed);
            let out = step(&lowered.train, &mut state, inputs, scalars)?;
            meter.add(&out, batch.len());
            samples += batch.len();
            let loss = meter.last_loss;
            if !loss.is_finite() {
                return Err(RunError::Diverged { step: summary.steps, loss });
            }
        }
        summary.train = meter.means();
        summary.eval = match &eval_data {
            Some(d) => evaluate(opts, &lowered, &state, d)?,
            None => Vec::new(),
        };
        if !opts.quiet {
            println!("{}", epoch_line(epoch + 1, epochs, &summary, samples as f64 / train_start.elapsed().as_secs_f64()));
        }
    }
    summary.samples_per_sec = samples as f64 / train_start.elapsed().as_secs_f64().max(1e-9);
    summary.wall_s = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn epoch_line(epoch: usize, epochs: usize, s: &RunSummary, rate: f64) -> String {
    let fmt = |m: &[(String, f64)]| m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join("  ");
    let mut line = format!("epoch {epoch}/{epochs}  train: {}", fmt(&s.train));
    if !s.eval.is_empty() {
        line.push_str(&format!("  |  eval: {}", fmt(&s.eval)));
    }
    line.push_str(&format!("  ({rate:.0} samples/s)"));
    line
}

/// `step` (1-based), `total_steps`, `lr`, and a per-step RNG key.
fn step_scalars(step: u64, total: f64, lr: f64, seed: u64) -> [(&'static str, Value); 4] {
    let scalar = |v: f32| Value::F32(ArrayD::from_elem(IxDyn(&[]), v));
    let key = (mix64(seed ^ mix64(step)) >> 33) as i32;
    [
        ("step", scalar(step as f32)),
        ("total_steps", scalar(total as f32)),
        ("lr", scalar(lr as f32)),
        ("rng", Value::I32(ArrayD::from_elem(IxDyn(&[]), key))),
    ]
}

/// Run one training step and swap the new parameters and states in.
fn step(g: &Graph, state: &mut State, inputs: Vec<(String, Value)>, scalars: [(&str, Value); 4]) -> Result<Vec<(String, f64)>, RunError> {
    let names: Vec<String> = inputs.iter().map(|(n, _)| n.clone()).chain(scalars.iter().map(|(n, _)| n.to_string())).collect();
    state.extend(inputs);
    state.extend(scalars.into_iter().map(|(n, v)| (n.to_string(), v)));
    let result = interp::run(g, state, Precision::F32);
    for n in &names {
        state.remove(n);
    }
    let outs = result?;
    let mut scalars_out = Vec::new();
    for ((name, _), v) in g.outputs().iter().zip(outs) {
        if name == "loss" || name.starts_with("metric/") {
            scalars_out.push((name.trim_start_matches("metric/").to_string(), scalar_of(&v)));
        } else {
            state.insert(name.clone(), v);
        }
    }
    Ok(scalars_out)
}

fn scalar_of(v: &Value) -> f64 {
    match v {
        Value::F32(a) => a.iter().next().map_or(f64::NAN, |x| f64::from(*x)),
        Value::F64(a) => a.iter().next().copied().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// One batch of every declared field, in the field's declared dtype.
fn batch_inputs(data: &SplitData, batch: &[usize]) -> Result<Vec<(String, Value)>, RunError> {
    data.columns.iter().map(|(field, column)| Ok((field.name.clone(), gather_field(data, field, column, batch)?))).collect()
}

fn gather_field(data: &SplitData, field: &DataField, column: &str, batch: &[usize]) -> Result<Value, RunError> {
    let per: usize = field.shape.iter().product();
    let shape = IxDyn(&[vec![batch.len()], field.shape.clone()].concat());
    let bad = |e: ndarray::ShapeError| RunError::Other(format!("batch of `{}`: {e}", field.name));
    Ok(match field.dtype {
        DType::F32 => {
            let mut v: Vec<f32> = Vec::new();
            data.gather(column, batch, &mut v, per)?;
            Value::F32(ArrayD::from_shape_vec(shape, v).map_err(bad)?)
        }
        DType::I32 => {
            let mut v: Vec<i32> = Vec::new();
            data.gather(column, batch, &mut v, per)?;
            Value::I32(ArrayD::from_shape_vec(shape, v).map_err(bad)?)
        }
        DType::U8 => {
            let mut v: Vec<u8> = Vec::new();
            data.gather(column, batch, &mut v, per)?;
            Value::U8(ArrayD::from_shape_vec(shape, v).map_err(bad)?)
        }
        DType::Bool => return Err(RunError::Other(format!("field `{}`: bool data fields are not supported", field.name))),
    })
}

/// Evaluate on a whole split: full batches with the eval graph, the rest
/// with a graph lowered for the remainder's size.
fn evaluate(opts: &RunOptions, lowered: &Lowered, state: &State, data: &SplitData) -> Result<Vec<(String, f64)>, RunError> {
    let batch = lowered.data.eval.as_ref().map_or(lowered.data.train.batch, |e| e.batch);
    let mut meter = Meter::default();
    let order: Vec<usize> = (0..data.len()).collect();
    let mut rest_graph: Option<Graph> = None;
    for chunk in order.chunks(batch) {
        let g = if chunk.len() == batch {
            &lowered.eval
        } else {
            rest_graph.get_or_insert(eval_graph_for(opts, chunk.len())?)
        };
        let mut inputs: State = state.iter().filter(|(k, _)| g.find_input(k).is_some()).map(|(k, v)| (k.clone(), v.clone())).collect();
        inputs.extend(batch_inputs(data, chunk)?);
        let outs = interp::run(g, &inputs, Precision::F32)?;
        let named: Vec<(String, f64)> =
            g.outputs().iter().zip(outs).map(|((n, _), v)| (n.trim_start_matches("metric/").to_string(), scalar_of(&v))).collect();
        meter.add(&named, chunk.len());
    }
    Ok(meter.means())
}

fn eval_graph_for(opts: &RunOptions, batch: usize) -> Result<Graph, RunError> {
    let setup = crate::lower::Setup { experiment: opts.experiment.clone(), eval_batch: Some(batch), ..Default::default() };
    let c = crate::compile(&opts.file, &opts.sets, setup).map_err(|o| RunError::Compile(o.sources, o.diags))?;
    Ok(c.lowered.eval)
}

/// Sample-weighted means of the loss and metrics over an epoch.
#[derive(Default)]
struct Meter {
    sums: Vec<(String, f64)>,
    count: usize,
    last_loss: f64,
}

impl Meter {
    fn add(&mut self, values: &[(String, f64)], n: usize) {
        for (k, v) in values {
            if k == "loss" {
                self.last_loss = *v;
            }
            match self.sums.iter_mut().find(|(name, _)| name == k) {
                Some((_, s)) => *s += v * n as f64,
                None => self.sums.push((k.clone(), v * n as f64)),
            }
        }
        self.count += n;
    }

    fn means(&self) -> Vec<(String, f64)> {
        self.sums.iter().map(|(k, s)| (k.clone(), s / self.count.max(1) as f64)).collect()
    }
}

/// Draw every parameter and state from its initialiser. Each tensor has its
/// own stream, derived from the seed and its name, so adding a layer does
/// not change how the others start.
fn init_state(l: &Lowered) -> State {
    let mut state = State::new();
    let tensors = l.params.iter().map(|p| (&p.name, &p.shape, &p.init)).chain(l.states.iter().map(|s| (&s.name, &s.shape, &s.init)));
    for (name, shape, init) in tensors {
        let mut rng = SplitMix64::new(l.seed ^ mix64(fnv1a(name)));
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| draw(init, &mut rng)).collect();
        if let Ok(a) = ArrayD::from_shape_vec(IxDyn(shape), values) {
            state.insert(name.clone(), Value::F32(a));
        }
    }
    state
}

fn draw(init: &Init, rng: &mut SplitMix64) -> f32 {
    let unit = |r: &mut SplitMix64| (r.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    match *init {
        Init::Constant(v) => v as f32,
        Init::Uniform { lo, hi } => (lo + (hi - lo) * unit(rng)) as f32,
        Init::Normal { mean, std } => {
            // Box–Muller; 1 - u is in (0, 1] so the log is finite.
            let (u, v) = (1.0 - unit(rng), unit(rng));
            (mean + std * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        }
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
