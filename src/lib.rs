//! nnc: a compiler for declarative `.nn` experiment files.
//!
//! The pipeline, one module per stage, data flowing one way:
//! `syntax` (pest → AST) → `resolve` (modules, imports, names) → `check`
//! (dtypes, symbolic shapes) → `lower` (bind dims, instantiate models →
//! graph IR) → `autodiff` → `opt` (simplify, fold, CSE, DCE) →
//! `ir::interp` (the reference) → `schedule` → `codegen` → `runtime` →
//! `runner`, with `watch` driving the runner while the file is edited and
//! `build` compiling the inference graph ahead of time into a standalone
//! executable or object file.

pub mod arith;
pub mod autodiff;
pub mod bind;
pub mod build;
pub mod builtins;
pub mod check;
pub mod cli;
pub mod codegen;
pub mod decode;
pub mod diag;
pub mod export;
pub mod ir;
pub mod lower;
pub mod opt;
pub mod plot;
pub mod resolve;
pub mod runner;
pub mod runtime;
pub mod schedule;
pub mod span;
pub mod syntax;
pub mod watch;

use diag::Diags;
use span::SourceMap;
use std::path::Path;

/// What `nnc check` produces: every diagnostic, with the sources to render them.
pub struct CheckOutput {
    pub sources: SourceMap,
    pub diags: Diags,
    /// The experiments that were lowered (none when checking failed first).
    pub experiments: Vec<String>,
    /// What the checker found each binding and call to be.
    pub types: Vec<check::spec::TypeNote>,
}

impl CheckOutput {
    /// A program that did not get as far as lowering its experiments.
    fn failed(sources: SourceMap, diags: Diags) -> CheckOutput {
        CheckOutput { sources, diags, experiments: Vec::new(), types: Vec::new() }
    }
}

/// Parse, resolve and check one file and everything it imports.
///
/// A file that checks is also lowered, experiment by experiment: what
/// depends on the actual numbers (a width that does not divide into heads,
/// a window larger than the image) is found here, before any data is read.
pub fn check_file(path: &Path, overrides: &[String]) -> CheckOutput {
    let (program, diags) = resolve::load(path);
    check_program(program, diags, overrides)
}

/// Parse the `--set` strings and check the program; its diagnostics go
/// into `diags`, the rest of what it found comes back for lowering.
fn check_with(program: &resolve::Program, diags: &mut Diags, overrides: &[String]) -> check::Checked {
    match check::parse_overrides(overrides) {
        Ok(o) => {
            let mut checked = check::check(program, &o);
            diags.append(&mut checked.diags);
            checked
        }
        Err(d) => {
            diags.push(d);
            check::Checked::default()
        }
    }
}

fn check_program(program: resolve::Program, mut diags: Diags, overrides: &[String]) -> CheckOutput {
    let checked = check_with(&program, &mut diags, overrides);
    let mut experiments = Vec::new();
    if !diags.iter().any(|d| d.is_error()) {
        experiments = checked.experiments.iter().map(|e| e.name.clone()).collect();
        for name in &experiments {
            let setup = lower::Setup { experiment: Some(name.clone()), eval_batch: None };
            if let Err(d) = lower::lower_experiment(&program, &checked, &setup) {
                diags.extend(d);
            }
        }
    }
    CheckOutput { sources: program.sources, diags: diag::dedup(diags), experiments, types: checked.types }
}

/// The sweep axes of `path` not pinned by `overrides`: empty when nothing
/// is swept, or when the file does not check (the run reports why).
pub fn sweep_axes(path: &Path, overrides: &[String]) -> Vec<check::spec::SweepAxis> {
    let (program, mut diags) = resolve::load(path);
    let checked = check_with(&program, &mut diags, overrides);
    if diags.iter().any(|d| d.is_error()) {
        return Vec::new();
    }
    let pinned = |name: &str| checked.overrides.iter().any(|(n, _)| n == name);
    checked.sweeps.into_iter().filter(|a| !pinned(&a.name)).collect()
}

/// Check source text as if it were a file named `name` (tests, fuzzing).
/// Relative imports resolve against the current directory.
pub fn check_source(name: &str, text: &str, overrides: &[String]) -> CheckOutput {
    let (program, diags) = resolve::load_str(name, text);
    check_program(program, diags, overrides)
}

/// A checked and lowered experiment.
pub struct Compiled {
    pub sources: SourceMap,
    pub lowered: lower::Lowered,
}

/// Check `path`, then lower its experiment as `setup` says; `overrides`
/// are the raw `--set NAME=VALUE` strings.
pub fn compile(path: &Path, overrides: &[String], setup: lower::Setup) -> Result<Compiled, CheckOutput> {
    let (program, mut diags) = resolve::load(path);
    let checked = check_with(&program, &mut diags, overrides);
    if diags.iter().any(|d| d.is_error()) {
        return Err(CheckOutput::failed(program.sources, diag::dedup(diags)));
    }
    match lower::lower_experiment(&program, &checked, &setup) {
        Ok(lowered) => Ok(Compiled { sources: program.sources, lowered }),
        Err(d) => Err(CheckOutput::failed(program.sources, d)),
    }
}

/// Check `path`, then lower the inference graph of `experiment` (the first
/// one by default) once per batch size in `batches`.
pub fn compile_predict(
    path: &Path,
    overrides: &[String],
    experiment: Option<String>,
    batches: &[usize],
) -> Result<Vec<lower::Predict>, CheckOutput> {
    let (program, mut diags) = resolve::load(path);
    let checked = check_with(&program, &mut diags, overrides);
    if diags.iter().any(|d| d.is_error()) {
        return Err(CheckOutput::failed(program.sources, diag::dedup(diags)));
    }
    let setup = lower::Setup { experiment, eval_batch: None };
    let mut out = Vec::with_capacity(batches.len());
    for &b in batches {
        match lower::lower_predict(&program, &checked, &setup, b) {
            Ok(p) => out.push(p),
            Err(d) => return Err(CheckOutput::failed(program.sources, d)),
        }
    }
    Ok(out)
}
