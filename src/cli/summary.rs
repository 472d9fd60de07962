//! `nnc summary`: what Keras' `model.summary()` prints, and what the
//! compiled training step costs.

use crate::lower::Lowered;
use crate::runtime::{CompiledStep, Options};
use crate::schedule::Schedule;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

pub fn summary(file: &Path, set: &[String], experiment: Option<String>) -> ExitCode {
    let compiled = match super::compiled(file, set, experiment) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let l = &compiled.lowered;
    let started = Instant::now();
    let schedule = match compile_step(l) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: compiling the training step failed: {e}");
            return ExitCode::from(1);
        }
    };
    let mut text = crate::runner::summary(l, Some(&schedule));
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let _ = writeln!(text, "compiled in {ms:.0} ms (schedule and code generation, one thread)");
    super::ir::emit(&text)
}

/// The training step scheduled and JIT-compiled as `nnc run` compiles it
/// (on one thread); its schedule.
fn compile_step(l: &Lowered) -> Result<Schedule, String> {
    let p = crate::schedule::prepare(&l.train, crate::runner::STEP_SCHEDULE).map_err(|e| e.to_string())?;
    let opts = Options { in_place: crate::runner::STEP_SCHEDULE.in_place, threads: 1, c_products: false };
    let step = CompiledStep::from_schedule(p.schedule, opts).map_err(|e| e.to_string())?;
    Ok(step.schedule().clone())
}
