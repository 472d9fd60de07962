//! `nnc ir`: print the graphs an experiment lowers to.

use crate::ir::Origin;
use crate::span::SourceMap;
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
    let sources = &compiled.sources;
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
            Ok(p) => {
                let note = |k: &crate::schedule::Kernel| kernel_note(sources, k);
                return emit(&crate::schedule::Annotated(&p.schedule, &note).to_string());
            }
            Err(e) => {
                eprintln!("error: compiling the training step failed: {e}");
                return ExitCode::from(1);
            }
        },
    };
    if dot {
        return emit(&crate::ir::dot(&graph));
    }
    emit(&crate::ir::Annotated(&graph, &|o| node_note(sources, o)).to_string())
}

/// `mnist.nn:24 backward`; inside a library layer also its line there.
fn node_note(sources: &SourceMap, o: Origin) -> String {
    let Some(sp) = o.span else { return String::new() };
    let mut s = sources.line_label(sp);
    if let Some(inner) = o.inner.filter(|i| i.file != sp.file) {
        s = format!("{s} ({})", sources.line_label(inner));
    }
    format!("{s} {}", o.phase.name())
}

/// The lines a kernel computes, busiest first: `from mnist.nn:24, mnist.nn:31`.
fn kernel_note(sources: &SourceMap, k: &crate::schedule::Kernel) -> String {
    let mut lines: Vec<(String, f64)> = Vec::new();
    for sh in &k.origins {
        let Some(sp) = sh.origin.span else { continue };
        let l = format!("{} {}", sources.line_label(sp), sh.origin.phase.name());
        match lines.iter_mut().find(|(x, _)| *x == l) {
            Some((_, w)) => *w += sh.work,
            None => lines.push((l, sh.work)),
        }
    }
    lines.sort_by(|a, b| b.1.total_cmp(&a.1));
    let names: Vec<String> = lines.into_iter().map(|(l, _)| l).collect();
    if names.is_empty() { String::new() } else { format!("from {}", names.join(", ")) }
}

/// Print to stdout; a closed pipe (`nnc ir ... | head`) is not an error.
pub(super) fn emit(text: &str) -> ExitCode {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
