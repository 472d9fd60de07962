//! The object file: each step's code (the same lowering the JIT runs), the
//! weights and each step's constant segment as read-only data.
//!
//! Symbols: `nnc_step_b<batch>` (the step, `(arena, consts, slots, pool)`),
//! `nnc_consts_b<batch>` and `nnc_weights`. The data symbols are hidden:
//! visible to the shim they are linked with, not beyond the link.

use super::BuildError;
use super::model::Model;
use crate::codegen;
use crate::schedule::Schedule;
use cranelift_module::{DataDescription, Linkage, Module, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule};

pub const WEIGHTS: &str = "nnc_weights";

pub fn step_symbol(batch: usize) -> String {
    format!("nnc_step_b{batch}")
}

pub fn consts_symbol(batch: usize) -> String {
    format!("nnc_consts_b{batch}")
}

fn cg(e: impl std::fmt::Display) -> BuildError {
    BuildError::Codegen(format!("code generation failed: {e}"))
}

/// One compiled step in the object file: its symbol, its constants' symbol.
pub struct Entry<'a> {
    pub step: String,
    pub consts: String,
    pub schedule: &'a Schedule,
}

/// The entries of a classifier's steps, one per batch size.
pub fn batch_entries(m: &Model) -> Vec<Entry<'_>> {
    m.steps
        .iter()
        .map(|s| Entry { step: step_symbol(s.batch), consts: consts_symbol(s.batch), schedule: &s.schedule })
        .collect()
}

/// The object file's bytes, for `cpu` (a Cranelift preset) or this machine.
pub fn emit(weights: &[u8], entries: &[Entry], cpu: Option<&str>) -> Result<Vec<u8>, BuildError> {
    let isa = match cpu {
        Some(c) => codegen::cpu_isa(c),
        None => codegen::host_isa(true),
    }
    .map_err(|e| BuildError::Codegen(e.to_string()))?;
    let mut module = ObjectModule::new(ObjectBuilder::new(isa, "nnc_model", default_libcall_names()).map_err(cg)?);
    data(&mut module, WEIGHTS, weights)?;
    for e in entries {
        // One thread: the shim's `nnc_rt_parallel` would run the kernels serially anyway.
        codegen::define_step(&mut module, e.schedule, &e.step, 1).map_err(|e| BuildError::Codegen(e.to_string()))?;
        data(&mut module, &e.consts, &e.schedule.consts)?;
    }
    module.finish().emit().map_err(cg)
}

/// Read-only `bytes` as symbol `name`, 64-byte aligned (at least one line,
/// so an empty segment still has an address).
fn data(module: &mut ObjectModule, name: &str, bytes: &[u8]) -> Result<(), BuildError> {
    let id = module.declare_data(name, Linkage::Hidden, false, false).map_err(cg)?;
    let mut d = DataDescription::new();
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().next_multiple_of(64).max(64), 0);
    d.define(padded.into_boxed_slice());
    d.set_align(64);
    module.define_data(id, &d).map_err(cg)
}
