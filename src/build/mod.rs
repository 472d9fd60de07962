//! `nnc build`: the inference graph of a trained experiment, compiled ahead
//! of time into a standalone executable or a linkable object + C header.
//!
//! The stages, one file each:
//! - [`model`]: lower the inference graph (one per batch size), optimize it,
//!   and bind the checkpoint's weights to its parameters (by name and shape);
//! - [`object`]: Cranelift emits each batch size's step into one object
//!   file (`cranelift-object`), with the weights and constants as read-only
//!   data;
//! - [`plan`]: a generated C header telling the runtime shim what each step's
//!   slots are (input, parameter at an offset, output) and how big its arena is;
//! - [`link`]: the C shim carried inside nnc (`nnc_model.h`, `rt.c`, `main.c`)
//!   is compiled with the system `cc` and linked with the object.
//!
//! One entry point is compiled per size in [`BATCHES`]: batch 1 (latency) up
//! to 64 (throughput: bigger batches measured no faster, the input and the
//! weights crowding L2). The shim runs full batches of the biggest, then of
//! each smaller size in turn, so a remainder (e.g. 40 of 1000) runs as a few
//! small matrix products rather than one matrix-vector product per sample.
//! Each step runs on one thread (its kernels call the shim's
//! `nnc_rt_parallel` serially); big calls are split across threads by
//! samples, each thread with its own buffers (see `rt.c`).
//!
//! [`predict`] runs the same graphs with the JIT (`nnc predict`), to check a
//! build against; [`sample`] runs a language model's at batch 1 to write
//! text (`nnc sample`), and [`generator`] builds a language model into a
//! standalone text generator instead (`gen.c`), which writes the same text.

mod generator;
mod link;
pub mod model;
mod object;
mod plan;
pub mod predict;
pub mod sample;

use std::fmt;
use std::path::{Path, PathBuf};

/// The batch sizes of the compiled entry points, ascending.
pub const BATCHES: [usize; 3] = [1, 8, 64];

/// What `nnc build` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// An executable that reads inputs and prints predictions; for a
    /// language model, a text generator.
    Exe,
    /// An executable that reads inputs and prints predictions, whatever
    /// the model (a language model's scores or classes at every position).
    Predictor,
    /// `NAME.o` and `NAME.h`: the model behind a C ABI, to link into a
    /// program (a language model's scores at every position, as
    /// `predictor`).
    Obj,
}

pub struct BuildOptions {
    pub file: PathBuf,
    pub sets: Vec<String>,
    pub experiment: Option<String>,
    pub checkpoint: PathBuf,
    pub output: PathBuf,
    /// A CPU name both Cranelift and `cc -march` know (`x86-64-v3`,
    /// `haswell`, `x86-64`); `None`: this machine's CPU.
    pub target_cpu: Option<String>,
    pub emit: Emit,
}

/// What `nnc predict` and a built executable print for each sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputMode {
    /// The model's output values as they are.
    Raw,
    /// Probabilities: the softmax of class scores, the sigmoid of binary
    /// logits, a `bce` model's own output.
    Probs,
    /// The class (of each score vector, or each binary value), then the
    /// probabilities where there are.
    Class,
}

impl OutputMode {
    fn name(self) -> &'static str {
        match self {
            OutputMode::Raw => "raw",
            OutputMode::Probs => "probs",
            OutputMode::Class => "class",
        }
    }
}

impl model::Model {
    /// `asked`, or what the loss makes the default (cross-entropy: class,
    /// binary cross-entropy: probabilities, anything else: raw values),
    /// refused where the output has no such reading.
    pub fn output_mode(&self, asked: Option<OutputMode>) -> Result<OutputMode, BuildError> {
        use crate::lower::Meaning as M;
        let mode = asked.unwrap_or(match self.meaning {
            M::ClassScores => OutputMode::Class,
            M::BinaryLogits | M::Probabilities => OutputMode::Probs,
            M::Values => OutputMode::Raw,
        });
        let has = match mode {
            OutputMode::Raw => true,
            OutputMode::Probs => self.probs_size() > 0,
            OutputMode::Class => self.positions() > 0,
        };
        if has {
            return Ok(mode);
        }
        let why = match self.meaning {
            M::Values => {
                "the experiment's loss does not say it is class scores or probabilities (cross_entropy, bce_with_logits or bce on `model(...)` would)"
            }
            _ => "class scores over several positions have classes, not one probability vector",
        };
        Err(BuildError::Unsupported(format!(
            "`--output {}` for an output of shape {:?}: {why}; `--output raw` prints its values",
            mode.name(),
            self.output
        )))
    }
}

pub enum BuildError {
    /// The file did not check or lower; render its diagnostics.
    Compile(crate::CheckOutput),
    /// A checkpoint that does not fit the model (one problem per line).
    Checkpoint {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// A model `nnc build` cannot compile (several inputs, no class axis).
    Unsupported(String),
    /// Scheduling or code generation failed.
    Codegen(String),
    /// `cc` is missing or failed.
    Tool {
        what: String,
        message: String,
    },
    Io {
        path: PathBuf,
        message: String,
    },
    /// An error whose message is complete (it names its file).
    Other(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Compile(out) => write!(f, "{}", crate::diag::count_errors(&out.diags)),
            BuildError::Checkpoint { path, problems } => {
                write!(f, "checkpoint {} does not fit this model:", path.display())?;
                problems.iter().try_for_each(|p| write!(f, "\n  - {p}"))
            }
            BuildError::Unsupported(m) => write!(f, "cannot build this model: {m}"),
            BuildError::Codegen(m) => write!(f, "{m}"),
            BuildError::Tool { what, message } => write!(f, "{what}: {message}"),
            BuildError::Io { path, message } => write!(f, "{}: {message}", path.display()),
            BuildError::Other(m) => f.write_str(m),
        }
    }
}

pub(crate) fn io_err(path: &Path, e: impl fmt::Display) -> BuildError {
    BuildError::Io { path: path.to_path_buf(), message: e.to_string() }
}

/// What a build wrote.
pub struct Built {
    pub files: Vec<PathBuf>,
    /// Bytes of embedded weights.
    pub weight_bytes: usize,
}

/// Compile, emit and link as `o` says.
pub fn build(o: &BuildOptions) -> Result<Built, BuildError> {
    let mut probe =
        crate::compile_predict(&o.file, &o.sets, o.experiment.clone(), &[1]).map_err(BuildError::Compile)?;
    if let Some(p) = probe.pop().filter(|p| o.emit == Emit::Exe && sample::is_language_model(p)) {
        return generator::build(o, p);
    }
    let m = model::Model::load(&o.file, &o.sets, o.experiment.clone(), &o.checkpoint, &BATCHES)?;
    let obj = object::emit(&m.weights, &object::batch_entries(&m), o.target_cpu.as_deref())?;
    let header = plan::header(&m)?;
    let files = link::link(&obj, &header, o)?;
    Ok(Built { files, weight_bytes: m.weights.len() })
}
