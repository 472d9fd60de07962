//! The runner: data, the step loop, metrics.
//!
//! The training step and the evaluation step are whole graphs; a
//! [`Backend`] runs one of them on a batch. Parameters and optimizer states
//! live in one map keyed by name; each step's outputs replace them by name.

mod cache;
pub mod checkpoint;
pub mod data;
mod engine;
mod eval;
mod import;
mod load;
mod profile;
mod reload;
mod rundir;
mod state;
mod summary;
pub mod sweep;
pub mod tensorboard;
mod trace;
mod train;

pub use engine::STEP_SCHEDULE;
pub use eval::{EvalOptions, EvalReport, eval};
pub use state::{RunOptions, RunSummary};
pub use summary::summary;
pub use train::{fmt_metrics, interrupted, run, run_with};

use crate::diag::Diags;
use crate::ir::IrError;
use crate::span::SourceMap;
use std::fmt;

/// Someone steering a run from outside it: `nnc watch`, with file edits
/// and keys. The run asks between two steps, so nothing it says can land
/// in the middle of one.
pub trait Control {
    /// The next command, if one is waiting; must not block.
    fn poll(&mut self) -> Option<Command>;
    /// Once training has finished: the next command, waiting up to `timeout`.
    fn wait(&mut self, timeout: std::time::Duration) -> Option<Command>;
}

pub enum Command {
    /// An edited program that checked and lowered: swap it in, carrying
    /// every tensor whose name and shape still match. `seen`: when the
    /// edit was first noticed.
    Reload { program: Box<crate::Compiled>, seen: std::time::Instant },
    /// Text for stderr between two steps.
    Say(String),
    /// An edit that does not compile: its rendered diagnostics, printed
    /// and logged while training goes on with the last good program.
    Broken(String),
    /// Re-initialise everything and start from step 0.
    Restart,
    /// Write a checkpoint now.
    Save,
    /// Stop cleanly: final checkpoint and summary.
    Quit,
}

/// Which executor runs the compiled steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Native code generated with Cranelift: the whole step fused into kernels.
    #[default]
    Jit,
    /// The reference interpreter: slow, obviously correct.
    Interp,
}

#[derive(Debug)]
pub enum RunError {
    /// The file did not check or lower; the sources render the diagnostics.
    Compile(SourceMap, Diags),
    Data(data::DataError),
    Ir(IrError),
    /// The loss became NaN or infinite.
    Diverged {
        step: u64,
        loss: f64,
        /// The newest checkpoint in the run directory, left as it was.
        kept: Option<std::path::PathBuf>,
    },
    /// A file of the run could not be written or read.
    Io {
        path: std::path::PathBuf,
        message: String,
    },
    /// A checkpoint that does not fit the model: every problem, one per line.
    Checkpoint {
        path: std::path::PathBuf,
        problems: Vec<String>,
    },
    /// Ctrl-C: a checkpoint was written here before stopping.
    Interrupted(std::path::PathBuf),
    Other(String),
}

impl From<data::DataError> for RunError {
    fn from(e: data::DataError) -> RunError {
        RunError::Data(e)
    }
}

impl From<IrError> for RunError {
    fn from(e: IrError) -> RunError {
        RunError::Ir(e)
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Compile(_, d) => write!(f, "{}", crate::diag::count_errors(d)),
            RunError::Data(e) => write!(f, "{e}"),
            RunError::Ir(e) => write!(f, "internal compiler error: {e}"),
            RunError::Diverged { step, loss, kept } => {
                write!(f, "the loss became {loss} at step {step}; ")?;
                match kept {
                    Some(p) => write!(f, "the last good checkpoint, {}, is kept", p.display())?,
                    None => write!(f, "no checkpoint had been saved yet")?,
                }
                write!(f, ". Try a smaller learning rate or check the data scaling")
            }
            RunError::Io { path, message } => write!(f, "{}: {message}", path.display()),
            RunError::Checkpoint { path, problems } => {
                write!(f, "checkpoint {} does not fit this model:", path.display())?;
                problems.iter().try_for_each(|p| write!(f, "\n  - {p}"))
            }
            RunError::Interrupted(path) => {
                write!(f, "interrupted; saved {} (continue with `--resume {}`)", path.display(), path.display())
            }
            RunError::Other(s) => f.write_str(s),
        }
    }
}
