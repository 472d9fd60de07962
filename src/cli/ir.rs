//! `nnc ir`: print the graphs an experiment lowers to.

use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Stage {
    /// The evaluation step: forward, loss and metrics.
    Forward,
    /// The training step: forward, backward and optimizer update in one graph.
    Train,
    /// The training step after simplification, folding, CSE and DCE.
    Optimized,
    /// The optimized training step scheduled into fused kernels, with the
    /// buffer plan the native backend compiles.
    Kernels,
}

pub fn show(file: &Path, set: &[String], stage: Stage, dot: bool, experiment: Option<String>) -> ExitCode {
    let compiled = match super::compiled(file, set, experiment) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let graph = match stage {
        Stage::Forward => compiled.lowered.eval,
        Stage::Train => compiled.lowered.train,
        // The optimizer `schedule::prepare` runs, alone: the graph shows
        // even where scheduling would fail.
        Stage::Optimized => match crate::opt::optimize(&compiled.lowered.train) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("error: optimizing the training step failed: {e}");
                return ExitCode::from(1);
            }
        },
        // What `nnc run` compiles: the same entry point, the same options.
        Stage::Kernels => match crate::schedule::prepare(&compiled.lowered.train, crate::runner::STEP_SCHEDULE) {
            Ok(p) => return emit(&p.schedule.to_string()),
            Err(e) => {
                eprintln!("error: compiling the training step failed: {e}");
                return ExitCode::from(1);
            }
        },
    };
    if dot { emit(&crate::ir::dot(&graph)) } else { emit(&graph.to_string()) }
}

/// Print to stdout; a closed pipe (`nnc ir ... | head`) is not an error.
pub(super) fn emit(text: &str) -> ExitCode {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
