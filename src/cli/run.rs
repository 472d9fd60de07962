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
    /// Where to write the run (config, metrics.jsonl, summary, checkpoints);
    /// default `runs/<experiment>-<timestamp>`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue a run from a checkpoint written by `nnc run`.
    #[arg(long, value_name = "CKPT")]
    resume: Option<PathBuf>,
    /// Threads the native backend splits big kernels across (default: every
    /// core). Results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Print only the final summary.
    #[arg(long, short)]
    quiet: bool,
    /// Keep the N newest periodic checkpoints (`epoch-N`, `step-N`) and
    /// delete older ones; 0 keeps every one. `last`, `final`, `interrupted`
    /// and checkpoints saved with `s` in watch are always kept.
    #[arg(long, value_name = "N", default_value_t = 3)]
    keep_checkpoints: usize,
    /// Replace the run already in `--out DIR` (its log and checkpoints are
    /// deleted). Without it such a directory is refused, unless `--resume`
    /// continues that run.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Log a `train_step` event (loss, metrics, learning rate, samples/s) to
    /// metrics.jsonl every N steps, overriding the file's `log = every N
    /// steps`; 0 turns it off.
    #[arg(long, value_name = "N")]
    log_every: Option<u64>,
    /// Once training ends, time every kernel of the training step and print
    /// where the time goes: by source line of the file, by phase (forward,
    /// backward, optimizer), by IR op and by kernel, against the machine's
    /// measured peak; also written to profile.json in the run directory.
    /// Training itself is unchanged.
    #[arg(long)]
    profile: bool,
    /// Write a Chrome trace of the run to FILE (open it in
    /// https://ui.perfetto.dev or chrome://tracing): compiling, data
    /// loading, every step (the first 20 kernel by kernel), evaluations and
    /// checkpoint writes.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

impl RunArgs {
    pub(super) fn options(self) -> RunOptions {
        RunOptions {
            file: self.file,
            sets: self.set,
            experiment: self.experiment,
            backend: self.backend,
            train_samples: self.train_samples,
            eval_samples: self.eval_samples,
            epochs: self.epochs,
            out: self.out,
            resume: self.resume,
            threads: self.threads,
            quiet: self.quiet,
            reload_step: None,
            reload_data: None,
            keep_checkpoints: self.keep_checkpoints,
            overwrite: self.overwrite,
            log_every: self.log_every,
            profile: self.profile,
            trace: self.trace,
        }
    }
}

pub fn run(a: RunArgs) -> ExitCode {
    let opts = a.options();
    let grid = runner::sweep::points(&crate::sweep_axes(&opts.file, &opts.sets));
    if grid.is_empty() {
        return match runner::run(&opts) {
            Ok(s) => {
                print_summary(&s);
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    sweep(&opts, &grid)
}

/// Train every point of the grid, then compare them in one table.
fn sweep(opts: &RunOptions, grid: &[runner::sweep::Point]) -> ExitCode {
    let base = opts.out.clone();
    let mut rows = Vec::new();
    for (i, point) in grid.iter().enumerate() {
        let label = runner::sweep::label(point);
        say(&format!("[{}/{}] {label}", i + 1, grid.len()));
        let mut o = opts.clone();
        o.sets.extend(point.iter().map(|(k, v)| format!("{k}={v}")));
        let file = label.replace(['/', ' '], "_");
        o.out = base.as_ref().map(|b| b.join(&file));
        // One trace per point, beside the path asked for: trace-hidden=64.json.
        o.trace = opts.trace.as_ref().map(|t| {
            let stem = t.file_stem().map_or("trace".into(), |s| s.to_string_lossy().into_owned());
            t.with_file_name(format!("{stem}-{file}.json"))
        });
        match runner::run(&o) {
            Ok(s) => {
                print_summary(&s);
                rows.push((point.clone(), s));
            }
            Err(e) => return fail(e),
        }
    }
    say(&format!("\n{}", table(&rows)));
    let Some((_, first)) = rows.first() else { return ExitCode::SUCCESS };
    let stem = runner::sweep::comparison_stem(base.as_deref(), &first.run_dir);
    match runner::sweep::save_comparison(&stem, &rows) {
        Ok([csv, json]) => say(&format!("comparison saved to {} and {}", csv.display(), json.display())),
        Err(e) => return fail(e),
    }
    ExitCode::SUCCESS
}

fn table(rows: &[(runner::sweep::Point, runner::RunSummary)]) -> String {
    let metrics: Vec<String> =
        rows.first().map(|(_, s)| s.eval.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    let mut out = format!(
        "| point | train loss | {} | samples/s |\n",
        metrics.iter().map(|m| format!("eval {m}")).collect::<Vec<_>>().join(" | ")
    );
    out.push_str(&format!("|{}\n", " --- |".repeat(metrics.len() + 3)));
    for (point, s) in rows {
        let label = runner::sweep::label(point);
        let loss = s.train.iter().find(|(k, _)| k == "loss").map_or(f64::NAN, |(_, v)| *v);
        let evals: Vec<String> = metrics
            .iter()
            .map(|m| s.eval.iter().find(|(k, _)| k == m).map_or("-".into(), |(_, v)| format!("{v:.4}")))
            .collect();
        out.push_str(&format!("| {label} | {loss:.4} | {} | {:.0} |\n", evals.join(" | "), s.samples_per_sec));
    }
    out
}

pub(super) fn print_summary(s: &runner::RunSummary) {
    let fmt = runner::fmt_metrics;
    say(&format!(
        "{}: {} steps in {:.2} s of training, {:.1} s in all ({:.0} samples/s, {:.1} steady after the first step; \
         compiled in {:.1} ms, first step after {:.0} ms)",
        s.experiment,
        s.steps,
        s.train_s,
        s.wall_s,
        s.samples_per_sec,
        s.steady_samples_per_sec,
        s.compile_ms,
        s.first_step_ms
    ));
    say(&format!("  train: {}", fmt(&s.train)));
    if !s.eval.is_empty() {
        say(&format!("  eval:  {}", fmt(&s.eval)));
    }
    if let Some((m, v, step)) = &s.best {
        say(&format!("  best: {m} {v:.4} at step {step} (checkpoints/best.safetensors)"));
    }
    if let Some(why) = &s.stopped_early {
        say(&format!("  stopped early: {why}"));
    }
    if let Some(step) = s.restored_from {
        say(&format!("  restored the weights of step {step} (restore_best); eval above is theirs"));
    }
    say(&format!("  run directory: {}", s.run_dir.display()));
}

pub(super) fn fail(e: RunError) -> ExitCode {
    match e {
        RunError::Compile(sources, diags) => {
            eprint!("{}", diag::render_all(&sources, &diags, super::style()));
            ExitCode::from(1)
        }
        e @ RunError::Interrupted(_) => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        e => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// A line on stdout; a closed pipe (`nnc run ... | head`) is not an error.
pub(super) fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
