//! `nnc summary`: what Keras' `model.summary()` prints, and what the
//! compiled training step costs.

use crate::lower::{LayerCall, Lowered, ParamKind};
use crate::runtime::{CompiledStep, Options};
use crate::schedule::{KernelBody, Schedule, elem_size};
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
    let mut text = layer_table(l);
    text += &totals(l, &schedule, started.elapsed().as_secs_f64());
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

/// Parameters of the instance at `path` and everything inside it.
fn params_under(l: &Lowered, path: &str) -> usize {
    let inside = |name: &str| path.is_empty() || name == path || name.starts_with(&format!("{path}."));
    l.params.iter().filter(|p| inside(&p.name)).map(|p| p.shape.iter().product::<usize>()).sum()
}

fn layer_table(l: &Lowered) -> String {
    let rows: Vec<[String; 4]> = l
        .layers
        .iter()
        .map(|c: &LayerCall| {
            let name = if c.path.is_empty() { "(model)" } else { &c.path };
            let output = c.output.as_ref().map_or("-".to_string(), |t| t.to_string());
            [format!("{}{name}", "  ".repeat(c.depth)), c.model.clone(), output, grouped(params_under(l, &c.path))]
        })
        .collect();
    let head = ["layer".to_string(), "model".into(), "output".into(), "params".into()];
    let width = |i: usize| rows.iter().chain([&head]).map(|r| r[i].chars().count()).max().unwrap_or(0);
    let w = [width(0), width(1), width(2), width(3)];
    let mut out = format!("experiment {}: batch {}\n\n", l.name, l.data.train.batch);
    for r in std::iter::once(&head).chain(&rows) {
        let _ = writeln!(
            out,
            "{:<a$}  {:<b$}  {:<c$}  {:>d$}",
            r[0],
            r[1],
            r[2],
            r[3],
            a = w[0],
            b = w[1],
            c = w[2],
            d = w[3]
        );
    }
    out
}

fn totals(l: &Lowered, s: &Schedule, compile_secs: f64) -> String {
    let count = |k: ParamKind| -> usize {
        l.params.iter().filter(|p| p.kind == k).map(|p| p.shape.iter().product::<usize>()).sum()
    };
    let (trained, frozen, buffers) = (count(ParamKind::Trained), count(ParamKind::Frozen), count(ParamKind::Buffer));
    let flops: usize = s
        .kernels
        .iter()
        .map(|k| match &k.body {
            KernelBody::Gemm(g) => 2 * g.batch * g.m * g.n * g.k,
            KernelBody::Conv(c) => c.geom.flops(),
            KernelBody::Loop(_) => 0,
        })
        .sum();
    let slots: usize = s.slots.iter().map(|x| x.shape.iter().product::<usize>() * elem_size(x.dtype)).sum();
    let mb = |b: usize| b as f64 / (1 << 20) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nparameters: {} trained, {} frozen, {} in buffers ({:.1} MB of f32)",
        grouped(trained),
        grouped(frozen),
        grouped(buffers),
        mb((trained + frozen + buffers) * 4)
    );
    let _ = writeln!(
        out,
        "training step: {:.3} GFLOP in matrix products and convolutions (forward, backward, update), {} kernels",
        flops as f64 / 1e9,
        s.kernels.len()
    );
    let _ = writeln!(
        out,
        "memory: {:.1} MB of intermediate values at peak (the arena), {:.1} MB in inputs, parameters and states",
        mb(s.arena_bytes),
        mb(slots)
    );
    let _ = writeln!(out, "compiled in {:.0} ms (schedule and code generation, one thread)", compile_secs * 1e3);
    out
}

/// `1234567` as `1,234,567`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
