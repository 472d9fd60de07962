//! `nnc eval`: a trained checkpoint's metrics on a split, without training.

use crate::runner::{self, Backend, EvalOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The experiment file.
    file: PathBuf,
    /// The weights to evaluate: a checkpoint written by `nnc run`
    /// (`runs/<exp>-<time>/checkpoints/final.safetensors`, `best`, ...).
    #[arg(long, value_name = "CKPT")]
    checkpoint: PathBuf,
    /// The split to evaluate on (default: the one the experiment's `eval`
    /// names, or its training data's when it has no `eval`).
    #[arg(long, value_parser = ["train", "test"])]
    split: Option<String>,
    /// Evaluate on the first N samples of the split only.
    #[arg(long, value_name = "N")]
    samples: Option<usize>,
    /// The experiment whose metrics to compute, when the file has several.
    #[arg(long)]
    experiment: Option<String>,
    /// Override a hyperparameter: `--set hidden=256` (repeatable); must
    /// match the run the checkpoint comes from.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Which executor runs the evaluation step.
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
    /// Threads for the native backend (default: every core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// One JSON object (`{"experiment", "split", "samples", "metrics": {..}}`)
    /// with every digit, instead of a line.
    #[arg(long)]
    json: bool,
}

pub fn eval(a: EvalArgs) -> ExitCode {
    let run = runner::RunOptions {
        file: a.file,
        sets: a.set,
        experiment: a.experiment,
        backend: a.backend,
        threads: a.threads,
        eval_samples: a.samples,
        ..runner::RunOptions::default()
    };
    let o = EvalOptions { run, checkpoint: a.checkpoint, split: a.split };
    let r = match runner::eval(&o) {
        Ok(r) => r,
        Err(e) => return super::run::fail(e),
    };
    if a.json {
        let metrics: serde_json::Map<String, serde_json::Value> =
            r.metrics.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
        let out = serde_json::json!({
            "experiment": r.experiment, "split": r.split, "samples": r.samples, "metrics": metrics,
        });
        super::run::say(&out.to_string());
    } else {
        super::run::say(&format!(
            "{} on {} ({} samples, {:.2} s): {}",
            r.experiment,
            r.split,
            r.samples,
            r.seconds,
            runner::fmt_metrics(&r.metrics)
        ));
    }
    ExitCode::SUCCESS
}
