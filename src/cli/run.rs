//! `nnc run`: train an experiment.

use crate::diag;
use crate::runner::{self, Backend, RunError, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The experiment file.
    file: PathBuf,
    /// Override a hyperparameter: `--set hidden=256` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// The experiment to run, when the file has several.
    #[arg(long)]
    experiment: Option<String>,
    /// Which executor runs the compiled steps.
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
    /// Train on the first N training samples only (quick runs, tests).
    #[arg(long, value_name = "N")]
    train_samples: Option<usize>,
    /// Evaluate on the first N evaluation samples only.
    #[arg(long, value_name = "N")]
    eval_samples: Option<usize>,
    /// Override the number of epochs.
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Print only the final summary.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: RunArgs) -> ExitCode {
    let opts = RunOptions {
        file: a.file,
        sets: a.set,
        experiment: a.experiment,
        backend: a.backend,
        train_samples: a.train_samples,
        eval_samples: a.eval_samples,
        epochs: a.epochs,
        quiet: a.quiet,
    };
    match runner::run(&opts) {
        Ok(s) => {
            let fmt = |m: &[(String, f64)]| m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", ");
            println!(
                "{}: {} steps in {:.1} s ({:.0} samples/s, compiled in {:.1} ms)",
                s.experiment, s.steps, s.wall_s, s.samples_per_sec, s.compile_ms
            );
            println!("  train: {}", fmt(&s.train));
            if !s.eval.is_empty() {
                println!("  eval:  {}", fmt(&s.eval));
            }
            ExitCode::SUCCESS
        }
        Err(RunError::Compile(sources, diags)) => {
            eprint!("{}", diag::render_all(&sources, &diags, super::style()));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
