//! The command line: thin over the library.

mod build;
mod eval;
mod export;
mod ir;
mod run;
mod sample;
mod summary;
mod watch;

use crate::diag::{self, Style};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "nnc", version, about = "Compile, check, train and build declarative .nn experiment files")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve and type-check files (shapes included) without running anything.
    ///
    /// Exits 0 when every file is well-formed, 1 when any diagnostic is an error.
    Check {
        /// `.nn` files to check (experiments, libraries, or files of std/).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a hyperparameter: `--set hidden=256` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Also print the type and shape the checker found for every `let`
        /// binding and call of each file (`12:9 h: f32[B, 128]`), dims named
        /// as in the signatures.
        #[arg(long)]
        types: bool,
    },
    /// Train an experiment: load and validate its data, compile its steps,
    /// train for its schedule, evaluate, and print a summary.
    Run(run::RunArgs),
    /// Evaluate a trained checkpoint: the experiment's metrics on a split
    /// (the test split by default), no training; the numbers a run's own
    /// evaluation of those weights reports.
    Eval(eval::EvalArgs),
    /// Train like `run`, and keep training while the file is edited: each
    /// save is checked and swapped in between two steps, keeping every
    /// parameter and optimizer state whose name and shape still match. A
    /// broken edit prints its diagnostics and the run goes on. Keys: `r`
    /// restart from scratch, `s` save a checkpoint, `q` quit (final
    /// checkpoint and summary).
    Watch(watch::WatchArgs),
    /// Compile a trained experiment's model ahead of time into a standalone
    /// executable (reads IDX, CSV or raw f32 samples, plain or gzip, and
    /// prints each sample's class and probabilities) or, with `--emit obj`, an object file and C
    /// header to link into a program. Needs the system C compiler (`cc`).
    Build(build::BuildArgs),
    /// Write a trained experiment's model as an ONNX file (opset 17): the
    /// inference graph with the dataset's preprocessing, the weights as
    /// initializers, the raw input fields as named inputs with a dynamic
    /// batch axis, `logits` (and `probs` for classifiers) as outputs. Runs
    /// in onnxruntime, tract and other ONNX runtimes.
    Export(export::ExportArgs),
    /// Run a trained experiment's model on samples with the JIT and print
    /// what a built executable prints (to check a build against).
    Predict(build::PredictArgs),
    /// Generate text from a trained language model (scores `[B, T, V]`
    /// over the next token at every position): continue `--prompt` for
    /// `--tokens` characters, streamed, with temperature, top-k and top-p
    /// sampling. The same seed writes the same text.
    Sample(sample::SampleArgs),
    /// Print the experiment's model as a table of layers (each model call
    /// with its path, output shape and parameter count), the parameter
    /// totals, and what the compiled training step costs: FLOPs, kernels,
    /// peak memory and compile time.
    Summary {
        file: PathBuf,
        /// Override a hyperparameter: `--set hidden=256` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// The experiment to summarise, when the file has several.
        #[arg(long)]
        experiment: Option<String>,
    },
    /// Draw training curves: loss, each metric and the learning rate
    /// against the step, from one run directory or several (a sweep's
    /// directory stands for the runs in it; runs are labelled by the
    /// constants they differ in). Per-step values appear with `--log-every`.
    Plot {
        /// Run directories (`nnc run --out DIR`) or a sweep's directory.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The image to write: `.svg` or `.png`.
        #[arg(short, long, default_value = "curves.svg")]
        output: PathBuf,
        /// Image size in pixels, `WIDTHxHEIGHT`.
        #[arg(long, default_value = "1200x800", value_parser = parse_size)]
        size: (u32, u32),
    },
    /// Print an experiment's graph IR: the forward/eval graph, the whole
    /// training step (forward, backward, optimizer update), or after passes.
    Ir {
        file: PathBuf,
        /// Which graph to print.
        #[arg(long, value_enum, default_value_t = ir::Stage::Train)]
        stage: ir::Stage,
        /// Print Graphviz DOT instead of text (`| dot -Tsvg > step.svg`).
        #[arg(long)]
        dot: bool,
        /// Override a hyperparameter: `--set hidden=256` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// The experiment to lower, when the file has several.
        #[arg(long)]
        experiment: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files, set, types } => check(&files, &set, types),
        Command::Ir { file, set, stage, dot, experiment } => ir::show(&file, &set, stage, dot, experiment),
        Command::Run(args) => run::run(args),
        Command::Eval(args) => eval::eval(args),
        Command::Watch(args) => watch::watch(args),
        Command::Build(args) => build::build(args),
        Command::Predict(args) => build::predict(args),
        Command::Export(args) => export::export(args),
        Command::Sample(args) => sample::sample(args),
        Command::Summary { file, set, experiment } => summary::summary(&file, &set, experiment),
        Command::Plot { runs, output, size } => plot(&runs, &output, size),
    }
}

fn plot(runs: &[PathBuf], output: &Path, size: (u32, u32)) -> ExitCode {
    match crate::plot::load(runs).and_then(|logs| crate::plot::plot(&logs, output, size)) {
        Ok(()) => {
            println!("wrote {}", output.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `1200x800` as (width, height), each 64 to 16384 pixels.
fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{s}` is not a size: write WIDTHxHEIGHT in pixels, e.g. 1200x800");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
    if !(64..=16384).contains(&w) || !(64..=16384).contains(&h) {
        return Err(format!("`{s}`: each side must be 64 to 16384 pixels"));
    }
    Ok((w, h))
}

/// The experiment `experiment` of `file` lowered, or its diagnostics
/// printed and exit code 1.
fn compiled(file: &Path, set: &[String], experiment: Option<String>) -> Result<crate::Compiled, ExitCode> {
    let setup = crate::lower::Setup { experiment, ..Default::default() };
    crate::compile(file, set, setup).map_err(|out| {
        eprint!("{}", diag::render_all(&out.sources, &out.diags, style()));
        ExitCode::from(1)
    })
}

pub(crate) fn style() -> Style {
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() { Style::Color } else { Style::Plain }
}

fn check(files: &[PathBuf], set: &[String], types: bool) -> ExitCode {
    let mut failed = false;
    for file in files {
        let out = crate::check_file(file, set);
        if types {
            print!("{}", show_types(&out));
        }
        if !out.diags.is_empty() {
            eprint!("{}", diag::render_all(&out.sources, &out.diags, style()));
        }
        let errors = out.diags.iter().any(|d| d.is_error());
        if !errors {
            eprintln!("{}", summary(file, &out));
        }
        failed |= errors;
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// The root file's type notes, one a line: `line:col what: type`, with a
/// call shown by its callee (`l1(..)`, at the callee), in source order.
fn show_types(out: &crate::CheckOutput) -> String {
    use crate::check::spec::Noted;
    let root = crate::span::FileId(0);
    let mut lines: Vec<(usize, String)> = out
        .types
        .iter()
        .filter(|n| n.span.file == root)
        .map(|n| match &n.what {
            Noted::Binding(name) => (n.span.start as usize, format!("{name}: {}", n.ty)),
            Noted::Call { callee } => (callee.start as usize, format!("{}(..): {}", out.sources.text(*callee), n.ty)),
        })
        .collect();
    lines.sort_by_key(|(at, _)| *at);
    let mut text = String::new();
    for (at, line) in lines {
        let (l, c) = out.sources.get(root).line_col(at);
        text.push_str(&format!("{l}:{c} {line}\n"));
    }
    text
}

/// `checked examples/mnist.nn: 6 files, experiment seed_mlp lowered`, as
/// cargo's one line: the user sees what was covered.
fn summary(file: &Path, out: &crate::CheckOutput) -> String {
    let files = out.sources.len();
    let what = match out.experiments.as_slice() {
        [] => "no experiment (types and shapes only)".to_string(),
        [one] => format!("experiment `{one}` lowered"),
        many => format!("experiments {} lowered", many.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")),
    };
    format!("checked {}: {files} file{}, {what}", file.display(), if files == 1 { "" } else { "s" })
}
