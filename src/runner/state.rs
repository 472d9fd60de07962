//! The state one run holds while it trains, and what building it needs:
//! its engines, data, run directory and progress. `train.rs` drives it step
//! by step; `reload.rs` swaps an edited program into it. Both depend on this
//! file, neither on the other's internals.

use super::checkpoint::Progress;
use super::data::{BatchPlan, Order, SplitMix64, mix64};
use super::engine::{Engine, Prepared};
use super::load::SplitData;
use super::rundir::RunDir;
use super::{Backend, RunError};
use crate::check::spec::{OnReload, ReloadPolicy};
use crate::ir::Graph;
use crate::lower::{Init, Lowered};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Debug, Default)]
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
    /// The run directory; default `runs/<experiment>-<timestamp>`.
    pub out: Option<PathBuf>,
    /// Continue from this checkpoint.
    pub resume: Option<PathBuf>,
    /// Threads for the native backend; 0 uses every core.
    pub threads: usize,
    pub quiet: bool,
    /// What a hot reload does with the step counter and the data position,
    /// overriding the file's `on_reload` (`nnc watch` only).
    pub reload_step: Option<OnReload>,
    pub reload_data: Option<OnReload>,
    /// Periodic checkpoints (`epoch-N`, `step-N`) kept on disk, newest
    /// first; 0 keeps them all. `last`, `final` and saved ones stay.
    pub keep_checkpoints: usize,
    /// Replace a run already in `out` (without it, such a directory is refused
    /// unless the run resumes from it).
    pub overwrite: bool,
    /// `train_step` events every N steps (0: none), over the file's `log`.
    pub log_every: Option<u64>,
    /// Time the step's kernels once training ends: report and `profile.json`.
    pub profile: bool,
    /// Write a Chrome trace of the run here.
    pub trace: Option<PathBuf>,
}

impl RunOptions {
    /// How to lower the file: the chosen experiment, the file's own batch sizes.
    pub fn setup(&self) -> crate::lower::Setup {
        crate::lower::Setup { experiment: self.experiment.clone(), ..Default::default() }
    }
}

#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub experiment: String,
    pub steps: u64,
    /// Mean loss and metrics over the last training epoch.
    pub train: Vec<(String, f64)>,
    /// Loss and metrics on the evaluation split at the last evaluation.
    pub eval: Vec<(String, f64)>,
    pub samples_per_sec: f64,
    /// From the end of the first step, which pays for first touches of
    /// memory: what a peer's timing after warm-up steps compares with.
    pub steady_samples_per_sec: f64,
    pub compile_ms: f64,
    /// From the start of the run (compile and data loading included) to the
    /// end of the first training step.
    pub first_step_ms: f64,
    /// Seconds in training steps (what samples/s divides by), and in all.
    pub train_s: f64,
    pub wall_s: f64,
    pub run_dir: PathBuf,
    /// Why training ended before its schedule, if it did.
    pub stopped_early: Option<String>,
    /// `checkpoints/best.safetensors`: metric, value and step.
    pub best: Option<(String, f64, u64)>,
    /// `restore_best`: the step whose weights the run ended with.
    pub restored_from: Option<u64>,
}

/// Everything one run holds while it trains.
pub(super) struct Run<'a> {
    pub(super) opts: &'a RunOptions,
    pub(super) l: Lowered,
    pub(super) train: Engine,
    pub(super) eval: EvalSteps,
    pub(super) train_data: SplitData,
    pub(super) eval_data: Option<SplitData>,
    pub(super) dir: RunDir,
    pub(super) progress: Progress,
    pub(super) summary: RunSummary,
    pub(super) epochs: u64,
    pub(super) source_hash: String,
    /// Where the compiled steps go back when the run ends well.
    pub(super) cache_key: u64,
    /// Samples trained and seconds spent training (waiting excluded).
    pub(super) samples: usize,
    pub(super) train_secs: f64,
    /// Training seconds and samples at the end of the first step.
    pub(super) cold: Option<(f64, usize)>,
    /// Seconds spent in the training loop on other work: evaluations,
    /// checkpoints, reloads. Steady samples/s leaves them out.
    pub(super) aside_secs: f64,
    /// A reload whose report waits for the first step of the new program.
    pub(super) pending: Option<Pending>,
    /// The program's files, for naming source lines in profiles and traces.
    pub(super) sources: crate::span::SourceMap,
    pub(super) trace: Option<super::trace::Trace>,
}

/// A reload's report, completed by the first step of the new program.
pub(super) struct Pending {
    pub(super) seen: Instant,
    /// From the edit being noticed to the new step being in place.
    pub(super) swap_ms: f64,
    /// The step counter right after the swap.
    pub(super) step_at: u64,
    pub(super) summary: String,
    pub(super) event: serde_json::Value,
}

/// What the loop does after a step or a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    Go,
    /// The program or the position changed: rebuild the batch plan.
    Replan,
    Quit,
}

impl Run<'_> {
    /// The reload policy: the file's `on_reload`, overridden by flags.
    pub(super) fn policy(&self) -> ReloadPolicy {
        let p = self.l.on_reload;
        ReloadPolicy { step: self.opts.reload_step.unwrap_or(p.step), data: self.opts.reload_data.unwrap_or(p.data) }
    }
}

/// A line on stdout; a closed pipe (`nnc run ... | head`) is not an error.
pub(super) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// FNV-1a of every source file the program read, in load order.
pub(super) fn hash_sources(sources: &crate::span::SourceMap) -> String {
    let files = (0..sources.len()).map(|i| sources.get(crate::span::FileId(i as u32)));
    let h = files.fold(FNV_OFFSET, |h, f| fnv1a(h, f.text.as_bytes()));
    format!("{h:016x}")
}

/// The order of the training batches, epoch by epoch.
pub(super) fn batch_plan(l: &Lowered, data: &SplitData) -> Result<BatchPlan, RunError> {
    let order = if l.data.train.shuffle { Order::Shuffled { seed: l.seed } } else { Order::Sequential };
    Ok(BatchPlan::new(data.len(), l.data.train.batch, data.last, order)?)
}

/// The evaluation steps, compiled to machine code after the run's first
/// training step (or at a reload, before the swap), so that the first step
/// does not wait for them. Lowered and scheduled up front: an evaluation
/// never depends on the file as it is now.
pub(super) struct EvalSteps {
    full: Lazy,
    /// For the split's last, partial batch, when it has one.
    rest: Option<Lazy>,
}

enum Lazy {
    Prepared(Prepared),
    Ready(Engine),
}

impl Lazy {
    fn new(graph: &Graph, backend: Backend) -> Result<Lazy, RunError> {
        Ok(Lazy::Prepared(Prepared::new(graph, backend)?))
    }

    fn get(&mut self, threads: usize) -> Result<&mut Engine, RunError> {
        if let Lazy::Prepared(p) = self {
            // A copy of the schedule, once per run: a failed compile leaves
            // the step as it was, to fail the same way if asked again.
            *self = Lazy::Ready(Engine::compile(p.clone(), threads)?);
        }
        let Lazy::Ready(e) = self else { unreachable!("compiled just above") };
        Ok(e)
    }
}

impl EvalSteps {
    /// `cached`: the full step, when a run of the same graphs compiled it.
    pub(super) fn new(
        opts: &RunOptions,
        l: &Lowered,
        cached: Option<Engine>,
        data: Option<&SplitData>,
    ) -> Result<EvalSteps, RunError> {
        let full = match cached {
            Some(e) => Lazy::Ready(e),
            None => Lazy::new(&l.eval, opts.backend)?,
        };
        let rest = match data.map(|d| d.len() % eval_batch(l)) {
            Some(rest) if rest > 0 => Some(Lazy::new(&eval_graph_for(opts, rest)?, opts.backend)?),
            _ => None,
        };
        Ok(EvalSteps { full, rest })
    }

    /// The full step and the one for the last batch, compiled if not yet.
    pub(super) fn engines(&mut self, opts: &RunOptions) -> Result<(&mut Engine, Option<&mut Engine>), RunError> {
        let full = self.full.get(opts.threads)?;
        let rest = match &mut self.rest {
            Some(r) => Some(r.get(opts.threads)?),
            None => None,
        };
        Ok((full, rest))
    }

    /// The full step, if it was compiled: for the cache.
    pub(super) fn compiled(self) -> Option<Engine> {
        match self.full {
            Lazy::Ready(e) => Some(e),
            Lazy::Prepared(_) => None,
        }
    }
}

pub(super) fn eval_batch(l: &Lowered) -> usize {
    l.data.eval.as_ref().map_or(l.data.train.batch, |e| e.batch)
}

fn eval_graph_for(opts: &RunOptions, batch: usize) -> Result<crate::ir::Graph, RunError> {
    let setup = crate::lower::Setup { eval_batch: Some(batch), ..opts.setup() };
    let c = crate::compile(&opts.file, &opts.sets, setup).map_err(|o| RunError::Compile(o.sources, o.diags))?;
    Ok(c.lowered.eval)
}

/// Draw every parameter and state but those in `keep` from its
/// initialiser. Each tensor has its own stream, derived from the seed and
/// its name, so adding a layer does not change how the others start.
pub(super) fn init_state(l: &Lowered, e: &mut Engine, keep: &[String]) -> Result<(), RunError> {
    let params = l.params.iter().map(|p| (&p.name, &p.init));
    for (name, init) in params.chain(l.states.iter().map(|s| (&s.name, &s.init))) {
        if !e.has_input(name) || keep.contains(name) {
            continue;
        }
        let mut rng = SplitMix64::new(l.seed ^ mix64(fnv1a(FNV_OFFSET, name.as_bytes())));
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

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
