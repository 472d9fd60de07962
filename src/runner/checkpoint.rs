//! Checkpoints: safetensors files holding every parameter and optimizer
//! state by name, plus where the run stood (step, data cursor, the epoch's
//! running sums) in the header's metadata. Written atomically: a temporary
//! file in the same directory, synced, then renamed over the target, so a
//! crash leaves the previous checkpoint intact.

use super::RunError;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a run stood when the checkpoint was written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub experiment: String,
    pub source_hash: String,
    /// Steps taken so far (the next step is `step + 1`).
    pub step: u64,
    /// The data cursor: next batch `batch` of epoch `epoch`.
    pub epoch: u64,
    pub batch: usize,
    pub seed: u64,
    /// This epoch's metrics so far.
    pub sums: Sums,
    /// Early-stopping bookkeeping: best value and evaluations since it.
    pub best: Option<f64>,
    pub since_best: u64,
    /// `checkpoint = best(..)`: the kept evaluation's value and step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_best: Option<(f64, u64)>,
    /// The name of each class id, for CSV labels read as names: kept with
    /// the weights, so `predict` and `build` print names from the checkpoint alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
}

/// Sample-weighted sums of the loss and metrics, in the step's output
/// order, over an epoch or an evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    pub names: Vec<String>,
    pub totals: Vec<f64>,
    pub count: usize,
}

impl Sums {
    pub fn new(names: &[String]) -> Sums {
        Sums { names: names.to_vec(), totals: vec![0.0; names.len()], count: 0 }
    }

    /// Add one batch's values (in `names` order) for `n` samples.
    pub fn add(&mut self, values: &[f64], n: usize) {
        for (t, v) in self.totals.iter_mut().zip(values) {
            *t += v * n as f64;
        }
        self.count += n;
    }

    pub fn means(&self) -> Vec<(String, f64)> {
        self.names.iter().zip(&self.totals).map(|(k, t)| (k.clone(), t / self.count.max(1) as f64)).collect()
    }

    pub fn clear(&mut self) {
        self.totals.iter_mut().for_each(|t| *t = 0.0);
        self.count = 0;
    }
}

/// A tensor by name: shape and f32 values.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

const META_KEY: &str = "nnc";

fn io_err(path: &Path, what: &str, e: impl std::fmt::Display) -> RunError {
    RunError::Io { path: path.to_path_buf(), message: format!("{what}: {e}") }
}

/// Write the same checkpoint to every path in `paths` (encoded once).
pub fn save(paths: &[PathBuf], tensors: &Tensors, progress: &Progress) -> Result<(), RunError> {
    let Some(path) = paths.first() else { return Ok(()) };
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, (shape, values))| {
            let bytes: &[u8] = bytemuck_f32(values);
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(path, "cannot encode the checkpoint", e))?;
    let meta = serde_json::to_string(progress).map_err(|e| io_err(path, "cannot encode the checkpoint", e))?;
    let bytes = safetensors::tensor::serialize(views, Some(HashMap::from([(META_KEY.to_string(), meta)])))
        .map_err(|e| io_err(path, "cannot encode the checkpoint", e))?;
    paths.iter().try_for_each(|p| write_atomic(p, &bytes))
}

/// f32 values as little-endian bytes (the machine is little-endian x86-64).
fn bytemuck_f32(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; the
    // slice covers exactly the f32s' bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let tmp = temp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path, "cannot write", e)
    })
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Read a checkpoint (or any safetensors file, e.g. weights saved from
/// PyTorch, which carries no progress). f16, bf16 and f64 tensors become
/// f32 (exactly, but f64 rounds); integer ones too (PyTorch's
/// `num_batches_tracked`), so that a mapping can skip them by name.
pub fn load(path: &Path) -> Result<(Tensors, Option<Progress>), RunError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, "cannot read the checkpoint", e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| io_err(path, "not a valid safetensors file (truncated or corrupt?)", e))?;
    let mut tensors = Tensors::new();
    for (name, view) in st.tensors() {
        let Some(values) = to_f32(view.dtype(), view.data()) else {
            return Err(io_err(
                path,
                "unsupported tensor",
                format!("`{name}` is {:?}; nnc reads numbers", view.dtype()),
            ));
        };
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| io_err(path, "bad header", e))?;
    let progress = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .map(|s| serde_json::from_str(s))
        .transpose()
        .map_err(|e| io_err(path, "bad progress record", e))?;
    Ok((tensors, progress))
}

/// Deletes all but the `keep` newest checkpoints in `dir` whose names
/// `rank` recognises (by the number it returns); `keep` 0 deletes none.
pub fn prune(dir: &Path, keep: usize, rank: fn(&str) -> Option<u64>) -> Result<(), RunError> {
    if keep == 0 {
        return Ok(());
    }
    let io = |e: std::io::Error| RunError::Io { path: dir.to_path_buf(), message: e.to_string() };
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if let (Some(n), Some("safetensors")) = (rank(stem), path.extension().and_then(|e| e.to_str())) {
            found.push((n, path));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, path) in found.into_iter().skip(keep) {
        std::fs::remove_file(&path).map_err(|e| RunError::Io { path, message: e.to_string() })?;
    }
    Ok(())
}

/// Every difference between what a checkpoint holds and what the model
/// needs, one line each, so a mismatch is diagnosed in one go.
pub fn mismatches(have: &Tensors, want: &[(String, Vec<usize>)]) -> Vec<String> {
    let mut out = missing(have, want);
    for name in have.keys() {
        if !want.iter().any(|(n, _)| n == name) {
            out.push(format!("`{name}`: in the checkpoint but not in the model"));
        }
    }
    out
}

/// Every tensor of `want` that `have` lacks or holds with another shape
/// (extra tensors in `have` are fine: a build ignores optimizer states).
pub fn missing(have: &Tensors, want: &[(String, Vec<usize>)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, shape) in want {
        match have.get(name) {
            None => out.push(format!("`{name}` {shape:?}: missing from the checkpoint")),
            Some((s, _)) if s != shape => {
                out.push(format!("`{name}`: the model needs {shape:?}, the checkpoint has {s:?}"))
            }
            Some(_) => {}
        }
    }
    out
}

/// Ids are numbered by the data: weights trained on one numbering of the
/// classes, used with another, would give their outputs other meanings
/// without a word. `Some(problem)` when `trained` and `now` differ.
pub fn classes_differ(trained: &Option<Vec<String>>, now: &Option<Vec<String>>) -> Option<String> {
    let show = |n: &Option<Vec<String>>| n.as_ref().map_or("class ids".to_string(), |n| n.join(", "));
    (trained != now).then(|| {
        format!(
            "it was trained on classes {}, the data now names {}: its outputs would mean other classes",
            show(trained),
            show(now)
        )
    })
}

/// Little-endian elements of `dtype` as f32; `None` for other element types.
fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        data.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
    }
    Some(match dtype {
        Dtype::F32 => each(data, f32::from_le_bytes),
        Dtype::F16 => each(data, |b| half::f16::from_le_bytes(b).to_f32()),
        Dtype::BF16 => each(data, |b| half::bf16::from_le_bytes(b).to_f32()),
        Dtype::F64 => each(data, |b| f64::from_le_bytes(b) as f32),
        Dtype::I64 => each(data, |b| i64::from_le_bytes(b) as f32),
        Dtype::I32 => each(data, |b| i32::from_le_bytes(b) as f32),
        Dtype::I16 => each(data, |b| f32::from(i16::from_le_bytes(b))),
        Dtype::I8 => each(data, |b: [u8; 1]| f32::from(b[0] as i8)),
        Dtype::U8 | Dtype::BOOL => each(data, |b: [u8; 1]| f32::from(b[0])),
        _ => return None,
    })
}
