//! nnc: a compiler for declarative `.nn` experiment files.
//!
//! The pipeline, one module per stage, data flowing one way:
//! `syntax` (pest → AST) → `resolve` (modules, imports, names) → `check`
//! (dtypes, symbolic shapes) → `lower` (bind dims, instantiate models →
//! graph IR) → `autodiff` → `opt` (simplify, fold, CSE, DCE) →
//! `ir::interp` (the reference) → `runner`.

pub mod autodiff;
pub mod check;
pub mod cli;
pub mod diag;
pub mod ir;
pub mod opt;
pub mod resolve;
pub mod runner;
pub mod span;
pub mod syntax;

use diag::Diags;
use span::SourceMap;
use std::path::Path;

/// What `nnc check` produces: every diagnostic, with the sources to render them.
pub struct CheckOutput {
    pub sources: SourceMap,
    pub diags: Diags,
}

/// Parse, resolve and check one file and everything it imports.
pub fn check_file(path: &Path, overrides: &[String]) -> CheckOutput {
    let (program, mut diags) = resolve::load(path);
    match check::parse_overrides(overrides) {
        Ok(o) => diags.extend(check::check(&program, &o)),
        Err(d) => diags.push(d),
    }
    CheckOutput { sources: program.sources, diags: diag::dedup(diags) }
}
