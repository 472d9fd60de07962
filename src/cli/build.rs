//! `nnc build` and `nnc predict`.

use crate::build::{self, BuildError, BuildOptions, Emit, model::Model};
use crate::diag;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The experiment file.
    file: PathBuf,
    /// The trained weights: a checkpoint written by `nnc run`
    /// (`runs/<exp>-<time>/checkpoints/final.safetensors`).
    #[arg(long, value_name = "CKPT")]
    checkpoint: PathBuf,
    /// The executable to write; with `--emit obj`, NAME.o and NAME.h.
    #[arg(short, long, value_name = "NAME")]
    output: PathBuf,
    /// Compile for this CPU (a name both Cranelift and `cc -march` know:
    /// x86-64, x86-64-v2, x86-64-v3, x86-64-v4, haswell, skylake-avx512, ...)
    /// instead of this machine's, to run the result on other machines.
    #[arg(long, value_name = "CPU")]
    target_cpu: Option<String>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Emit::Exe)]
    emit: Emit,
    /// The experiment whose model to build, when the file has several.
    #[arg(long)]
    experiment: Option<String>,
    /// Override a hyperparameter: `--set hidden=256` (repeatable); must
    /// match the run the checkpoint comes from.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

#[derive(clap::Args)]
pub struct PredictArgs {
    /// The experiment file.
    file: PathBuf,
    /// The trained weights (a checkpoint written by `nnc run`).
    #[arg(long, value_name = "CKPT")]
    checkpoint: PathBuf,
    /// Samples: IDX (gzip or not), CSV (one sample per line), or with
    /// `--raw` little-endian f32 values; `-` reads stdin. A model that reads
    /// several fields of its dataset takes one file per field, in the
    /// dataset's order, each with the same number of samples.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// The input is raw little-endian f32 values.
    #[arg(long)]
    raw: bool,
    /// One JSON object per line instead of `class p0 p1 ...`.
    #[arg(long)]
    json: bool,
    /// What to print per sample: `class` (the class, then the
    /// probabilities), `probs` or `raw` (the model's output values). The
    /// default follows the loss: cross_entropy: class, bce / bce_with_logits:
    /// probs, anything else: raw.
    #[arg(long, value_enum)]
    output: Option<build::OutputMode>,
    /// The experiment whose model to run, when the file has several.
    #[arg(long)]
    experiment: Option<String>,
    /// Override a hyperparameter: `--set hidden=256` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

pub fn build(a: BuildArgs) -> ExitCode {
    let o = BuildOptions {
        file: a.file,
        sets: a.set,
        experiment: a.experiment,
        checkpoint: a.checkpoint,
        output: a.output,
        target_cpu: a.target_cpu,
        emit: a.emit,
    };
    match build::build(&o) {
        Ok(b) => {
            let names: Vec<String> = b.files.iter().map(|f| f.display().to_string()).collect();
            eprintln!("wrote {} ({} bytes of weights embedded)", names.join(", "), b.weight_bytes);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub fn predict(a: PredictArgs) -> ExitCode {
    let run = || -> Result<String, BuildError> {
        let m = Model::load(&a.file, &a.set, a.experiment.clone(), &a.checkpoint, &build::BATCHES)?;
        let mode = m.output_mode(a.output)?;
        let (xs, n) = build::predict::read_inputs(&m, &a.inputs, a.raw)?;
        build::predict::format(&m, &build::predict::predict(&m, &xs, n)?, mode, n, a.json)
    };
    match run() {
        Ok(text) => {
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub(super) fn fail(e: BuildError) -> ExitCode {
    if let BuildError::Compile(out) = &e {
        eprint!("{}", diag::render_all(&out.sources, &out.diags, super::style()));
    }
    eprintln!("error: {e}");
    ExitCode::from(1)
}
