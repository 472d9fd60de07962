//! The step loop: initialise, train for the schedule, evaluate.

use super::data::{BatchPlan, Order, SplitMix64, mix64};
use super::engine::{Elem, Engine, check_dtype};
use super::load::{self, SplitData};
use super::{Backend, RunError};
use crate::ir::DType;
use crate::lower::{Init, Lowered};
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

pub fn run(opts: &RunOptions) -> Result<RunSummary, RunError> {
    let start = Instant::now();
    let setup = crate::lower::Setup { experiment: opts.experiment.clone(), ..Default::default() };
    let compiled =
        crate::compile(&opts.file, &opts.sets, setup).map_err(|out| RunError::Compile(out.sources, out.diags))?;
    let lowered = compiled.lowered;
    let mut train = Engine::new(&lowered.train, opts.backend)?;
    let mut eval = Engine::new(&lowered.eval, opts.backend)?;
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    let train_data = load::load(&lowered.data.train, opts.train_samples)?;
    let eval_data = match &lowered.data.eval {
        Some(p) => Some(load::load(p, opts.eval_samples)?),
        None => None,
    };
    init_state(&lowered, &mut train)?;
    let epochs = opts.epochs.unwrap_or(lowered.epochs);
    let mut summary = RunSummary { experiment: lowered.name.clone(), compile_ms, ..Default::default() };
    let order = if lowered.data.train.shuffle { Order::Shuffled { seed: lowered.seed } } else { Order::Sequential };
    let plan = BatchPlan::new(train_data.len(), lowered.data.train.batch, train_data.last, order)?;
    let total = (plan.batches_per_epoch() * epochs) as f32;
    let names = Engine::metric_names(&lowered.train);
    let train_start = Instant::now();
    let mut samples = 0usize;
    let mut scratch = Vec::new();
    for epoch in 0..epochs {
        let mut meter = Meter::default();
        let mut batches = plan.epoch(epoch as u64);
        while let Some(batch) = batches.next_batch() {
            summary.steps += 1;
            feed(&mut train, &train_data, batch, &mut scratch)?;
            set_step_scalars(&mut train, summary.steps, total, &lowered)?;
            train.run()?;
            let values =
                names.iter().map(|n| Ok((short(n), train.scalar(n)?))).collect::<Result<Vec<_>, RunError>>()?;
            meter.add(&values, batch.len());
            samples += batch.len();
            if !meter.last_loss.is_finite() {
                return Err(RunError::Diverged { step: summary.steps, loss: meter.last_loss });
            }
        }
        summary.train = meter.means();
        summary.eval = match &eval_data {
            Some(d) => evaluate(opts, &lowered, &mut train, &mut eval, d)?,
            None => Vec::new(),
        };
        if !opts.quiet {
            let rate = samples as f64 / train_start.elapsed().as_secs_f64();
            println!("{}", epoch_line(epoch + 1, epochs, &summary, rate));
        }
    }
    summary.samples_per_sec = samples as f64 / train_start.elapsed().as_secs_f64().max(1e-9);
    summary.wall_s = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn short(name: &str) -> String {
    name.trim_start_matches("metric/").to_string()
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
fn set_step_scalars(e: &mut Engine, step: u64, total: f32, l: &Lowered) -> Result<(), RunError> {
    e.set_scalar_f32("step", step as f32)?;
    e.set_scalar_f32("total_steps", total)?;
    e.set_scalar_f32("lr", l.lr as f32)?;
    e.set_scalar_i32("rng", (mix64(l.seed ^ mix64(step)) >> 33) as i32)
}

/// Gather one batch of every declared field straight into the step's inputs.
fn feed(e: &mut Engine, data: &SplitData, batch: &[usize], scratch: &mut Vec<usize>) -> Result<(), RunError> {
    for (field, column) in &data.columns {
        check_dtype(field.dtype)?;
        match field.dtype {
            DType::F32 => fill_field::<f32>(e, data, &field.name, column, batch, scratch)?,
            DType::I32 => fill_field::<i32>(e, data, &field.name, column, batch, scratch)?,
            _ => fill_field::<u8>(e, data, &field.name, column, batch, scratch)?,
        }
    }
    Ok(())
}

fn fill_field<T: Elem>(
    e: &mut Engine,
    data: &SplitData,
    name: &str,
    column: &str,
    batch: &[usize],
    scratch: &mut Vec<usize>,
) -> Result<(), RunError> {
    if !e.has_input(name) {
        return Ok(());
    }
    e.fill::<T>(name, |buf| Ok(data.gather(column, batch, scratch, buf)?))
}

/// Evaluate on a whole split: full batches with the eval step, the rest
/// with a step lowered for the remainder's size.
fn evaluate(
    opts: &RunOptions,
    l: &Lowered,
    train: &mut Engine,
    eval: &mut Engine,
    data: &SplitData,
) -> Result<Vec<(String, f64)>, RunError> {
    let batch = l.data.eval.as_ref().map_or(l.data.train.batch, |e| e.batch);
    copy_params(l, train, eval)?;
    let mut meter = Meter::default();
    let order: Vec<usize> = (0..data.len()).collect();
    let mut rest: Option<(Engine, Vec<String>)> = None;
    let names = Engine::metric_names(&l.eval);
    let mut scratch = Vec::new();
    for chunk in order.chunks(batch) {
        let (engine, names) = if chunk.len() == batch {
            (&mut *eval, &names)
        } else {
            if rest.is_none() {
                let g = eval_graph_for(opts, chunk.len())?;
                let mut e = Engine::new(&g, opts.backend)?;
                copy_params(l, train, &mut e)?;
                rest = Some((e, Engine::metric_names(&g)));
            }
            let Some((e, n)) = rest.as_mut() else { unreachable!("set just above") };
            (e, &*n)
        };
        feed(engine, data, chunk, &mut scratch)?;
        engine.run()?;
        let values = names.iter().map(|n| Ok((short(n), engine.scalar(n)?))).collect::<Result<Vec<_>, RunError>>()?;
        meter.add(&values, chunk.len());
    }
    Ok(meter.means())
}

fn copy_params(l: &Lowered, from: &mut Engine, to: &mut Engine) -> Result<(), RunError> {
    for p in &l.params {
        if to.has_input(&p.name) {
            let v = from.read_f32(&p.name)?;
            to.fill::<f32>(&p.name, |b| {
                b.copy_from_slice(&v);
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn eval_graph_for(opts: &RunOptions, batch: usize) -> Result<crate::ir::Graph, RunError> {
    let setup =
        crate::lower::Setup { experiment: opts.experiment.clone(), eval_batch: Some(batch), ..Default::default() };
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
fn init_state(l: &Lowered, e: &mut Engine) -> Result<(), RunError> {
    let params = l.params.iter().map(|p| (&p.name, &p.init));
    for (name, init) in params.chain(l.states.iter().map(|s| (&s.name, &s.init))) {
        if !e.has_input(name) {
            continue;
        }
        let mut rng = SplitMix64::new(l.seed ^ mix64(fnv1a(name)));
        e.fill::<f32>(name, |b| {
            b.iter_mut().for_each(|x| *x = draw(init, &mut rng));
            Ok(())
        })?;
    }
    Ok(())
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
