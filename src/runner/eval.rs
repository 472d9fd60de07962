//! `nnc eval`: a checkpoint's metrics on one split, with the evaluation
//! step and batching a run's own evaluation uses, so the numbers agree.

use super::RunError;
use super::checkpoint::{self, Sums};
use super::engine::Engine;
use super::load::{self, SplitData};
use super::state::{EvalSteps, RunOptions, eval_batch};
use crate::lower::Lowered;
use std::path::PathBuf;
use std::time::Instant;

/// What to evaluate: the file, experiment, overrides, backend, threads and
/// `eval_samples` of `run`, with these weights, on this split.
pub struct EvalOptions {
    pub run: RunOptions,
    pub checkpoint: PathBuf,
    /// `train` or `test`; default the split the experiment evaluates on.
    pub split: Option<String>,
}

#[derive(Debug)]
pub struct EvalReport {
    pub experiment: String,
    pub split: String,
    pub samples: usize,
    pub metrics: Vec<(String, f64)>,
    pub seconds: f64,
}

pub fn eval(o: &EvalOptions) -> Result<EvalReport, RunError> {
    let run = &o.run;
    let compiled =
        crate::compile(&run.file, &run.sets, run.setup()).map_err(|out| RunError::Compile(out.sources, out.diags))?;
    let l = compiled.lowered;
    // The evaluation split's batch (the eval step is lowered for it), or
    // the training batch where the experiment evaluates nothing.
    let mut plan = l.data.eval.clone().unwrap_or_else(|| l.data.train.clone());
    if let Some(split) = &o.split {
        plan.split = split.clone();
    }
    if let Some(d) = load::missing_source(&plan) {
        return Err(RunError::Compile(compiled.sources, vec![d]));
    }
    let data = load::load(&plan, run.eval_samples)?;
    if data.len() == 0 {
        return Err(RunError::Other(format!("the {} split has no samples", plan.split)));
    }
    let mut steps = EvalSteps::new(run, &l, None, Some(&data))?;
    let (step, mut rest) = steps.engines(run)?;
    let start = Instant::now();
    load_model(o, &l, &data, step, rest.as_deref_mut())?;
    let metrics = eval_split(&l, step, rest, &data)?;
    Ok(EvalReport {
        experiment: l.name.clone(),
        split: plan.split,
        samples: data.len(),
        metrics,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Every parameter and buffer the evaluation reads, from the checkpoint;
/// all must be there with their shapes, and trained on the same classes.
fn load_model(
    o: &EvalOptions,
    l: &Lowered,
    data: &SplitData,
    step: &mut Engine,
    mut rest: Option<&mut Engine>,
) -> Result<(), RunError> {
    let (tensors, progress) = checkpoint::load(&o.checkpoint)?;
    let want: Vec<(String, Vec<usize>)> =
        l.params.iter().filter(|p| step.has_input(&p.name)).map(|p| (p.name.clone(), p.shape.clone())).collect();
    let mut problems = checkpoint::missing(&tensors, &want);
    // A file without training progress (weights made elsewhere) says nothing of classes.
    if let Some(p) = progress.and_then(|p| checkpoint::classes_differ(&p.class_names, &data.class_names)) {
        problems.push(p);
    }
    if !problems.is_empty() {
        return Err(RunError::Checkpoint { path: o.checkpoint.clone(), problems });
    }
    for (name, _) in &want {
        let values = &tensors[name].1;
        for e in std::iter::once(&mut *step).chain(rest.as_deref_mut()) {
            e.fill::<f32>(name, |b| {
                b.copy_from_slice(values);
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// The split's mean metrics: full batches with `step`, the rest with `rest`
/// (the step lowered for the last, partial batch's size).
pub(super) fn eval_split(
    l: &Lowered,
    step: &mut Engine,
    mut rest: Option<&mut Engine>,
    data: &SplitData,
) -> Result<Vec<(String, f64)>, RunError> {
    let batch = eval_batch(l);
    let outputs = Engine::metric_outputs(&l.eval);
    let mut sums = Sums::new(&outputs.iter().map(|n| super::train::short(n)).collect::<Vec<_>>());
    let mut values = vec![0.0; outputs.len()];
    let order: Vec<usize> = (0..data.len()).collect();
    let mut scratch = Vec::new();
    for chunk in order.chunks(batch) {
        let engine = match rest.as_deref_mut() {
            _ if chunk.len() == batch => &mut *step,
            Some(r) => r,
            None => return Err(RunError::Other("internal: no step for the evaluation's last batch".into())),
        };
        super::train::feed(engine, data, chunk, &mut scratch)?;
        engine.run()?;
        engine.read_scalars(&outputs, &mut values)?;
        sums.add(&values, chunk.len());
    }
    Ok(sums.means())
}
