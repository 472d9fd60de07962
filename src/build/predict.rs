//! `nnc predict`: the same inference graphs as a build, run with the JIT,
//! printed in the built executable's format, to check a build against.
//! Inputs are read as the executable reads them (IDX, here gzip too; CSV,
//! one sample per line; raw little-endian f32), and batched the same way:
//! full batches of the biggest step, then of each smaller one in turn.

use super::BuildError;
use super::model::{Model, Step};
use crate::ir::DType;
use crate::runner::data::{IdxData, read_idx};
use crate::runtime::{CompiledStep, Options};
use std::fmt::Write;
use std::path::Path;

/// Each sample's class (argmax of the logits) and probabilities.
pub struct Predictions {
    pub classes: Vec<usize>,
    pub probs: Vec<f32>,
    pub num_classes: usize,
}

fn bad(path: &Path, message: String) -> BuildError {
    BuildError::Io { path: path.to_path_buf(), message }
}

/// The samples of `path` as f32 values, checked against the model's input.
pub fn read_input(m: &Model, path: &Path, raw: bool) -> Result<Vec<f32>, BuildError> {
    let per = m.input_size();
    let bytes = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
    let values = if raw {
        if bytes.is_empty() || bytes.len() % (per * 4) != 0 {
            return Err(bad(path, format!("{} bytes is not a whole number of {per}-value f32 samples", bytes.len())));
        }
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else if bytes.starts_with(&[0, 0]) || bytes.starts_with(&[0x1f, 0x8b]) {
        // IDX, raw or gzip (CSV is text: it starts with neither).
        idx_values(m, path)?
    } else {
        csv_values(path, &bytes, per)?
    };
    if values.is_empty() {
        return Err(bad(path, "no samples".into()));
    }
    match values.iter().position(|&v| !valid(m.input.dtype, v)) {
        Some(i) => Err(bad(path, format!("sample {}, value {} is invalid: {}", i / per + 1, i % per + 1, values[i]))),
        None => Ok(values),
    }
}

fn idx_values(m: &Model, path: &Path) -> Result<Vec<f32>, BuildError> {
    // The error names the file itself.
    let a = read_idx(path).map_err(|e| BuildError::Other(e.to_string()))?;
    if a.dims.get(1..) != Some(m.input.shape.as_slice()) {
        return Err(bad(path, format!("samples of shape {:?}; the model needs {:?}", &a.dims[1..], m.input.shape)));
    }
    Ok(match a.data {
        IdxData::U8(v) => v.into_iter().map(f32::from).collect(),
        IdxData::I8(v) => v.into_iter().map(f32::from).collect(),
        IdxData::I16(v) => v.into_iter().map(f32::from).collect(),
        IdxData::I32(v) => v.into_iter().map(|x| x as f32).collect(),
        IdxData::F32(v) => v,
        IdxData::F64(v) => v.into_iter().map(|x| x as f32).collect(),
    })
}

fn csv_values(path: &Path, bytes: &[u8], per: usize) -> Result<Vec<f32>, BuildError> {
    let text = std::str::from_utf8(bytes).map_err(|e| bad(path, format!("not CSV text: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(path, format!("line {}: {e}", i + 1)))?;
        if row.len() != per {
            return Err(bad(path, format!("line {} has {} values; a sample has {per}", i + 1, row.len())));
        }
        out.extend(row);
    }
    Ok(out)
}

/// Whether the input type holds `v` (as the shim's `nnc_check`).
fn valid(dtype: DType, v: f32) -> bool {
    let whole = v.is_finite() && v == v.floor();
    match dtype {
        DType::F32 => v.is_finite(),
        DType::U8 => whole && (0.0..=255.0).contains(&v),
        DType::I32 => whole && (-2147483648.0..2147483648.0).contains(&v),
        DType::Bool => v == 0.0 || v == 1.0,
    }
}

/// A compiled step with the weights loaded.
fn compile(m: &Model, s: &Step) -> Result<CompiledStep, BuildError> {
    let err = |e: crate::runtime::RuntimeError| BuildError::Codegen(e.to_string());
    let mut step = CompiledStep::compile_with(&s.graph, Options { in_place: false, threads: 1 }).map_err(err)?;
    for p in &m.params {
        let values: Vec<f32> =
            m.values(p).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        step.set_input::<f32>(&p.name, &values).map_err(err)?;
    }
    Ok(step)
}

/// Runs every sample of `x` (checked by [`read_input`]).
pub fn predict(m: &Model, x: &[f32]) -> Result<Predictions, BuildError> {
    let (per, c) = (m.input_size(), m.classes);
    let n = x.len() / per;
    let mut out = Predictions { classes: Vec::with_capacity(n), probs: Vec::with_capacity(n * c), num_classes: c };
    let mut done = 0;
    for s in m.steps.iter().rev() {
        let mut step = compile(m, s)?;
        while n - done >= s.batch {
            set(&mut step, &m.input.name, m.input.dtype, &x[done * per..(done + s.batch) * per])?;
            step.run();
            let err = |e: crate::runtime::RuntimeError| BuildError::Codegen(e.to_string());
            out.probs.extend_from_slice(step.output::<f32>("probs").map_err(err)?);
            let logits = step.output::<f32>("logits").map_err(err)?;
            out.classes.extend(logits.chunks_exact(c).map(argmax));
            done += s.batch;
        }
    }
    Ok(out)
}

fn set(step: &mut CompiledStep, name: &str, dtype: DType, x: &[f32]) -> Result<(), BuildError> {
    let r = match dtype {
        DType::F32 => step.set_input::<f32>(name, x),
        DType::U8 => step.set_input::<u8>(name, &x.iter().map(|&v| v as u8).collect::<Vec<_>>()),
        DType::I32 => step.set_input::<i32>(name, &x.iter().map(|&v| v as i32).collect::<Vec<_>>()),
        DType::Bool => step.set_input::<bool>(name, &x.iter().map(|&v| v != 0.0).collect::<Vec<_>>()),
    };
    r.map_err(|e| BuildError::Codegen(e.to_string()))
}

/// The first index of the largest value (as the shim).
fn argmax(l: &[f32]) -> usize {
    (1..l.len()).fold(0, |best, i| if l[i] > l[best] { i } else { best })
}

/// One line per sample: `class p0 p1 ...`, or a JSON object.
pub fn format(p: &Predictions, json: bool) -> String {
    let mut s = String::new();
    for (class, probs) in p.classes.iter().zip(p.probs.chunks_exact(p.num_classes)) {
        let ps: Vec<String> = probs.iter().map(|v| v.to_string()).collect();
        // Writing to a String cannot fail.
        let _ = if json {
            writeln!(s, "{{\"class\": {class}, \"probs\": [{}]}}", ps.join(", "))
        } else {
            writeln!(s, "{class} {}", ps.join(" "))
        };
    }
    s
}
