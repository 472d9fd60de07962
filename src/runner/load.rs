//! The data a plan asks for: load the source, pick the split, map the
//! fields declared in the file onto the source's columns, validate.

use super::RunError;
use super::data::{self, DataError, Dataset, Element, LastBatch, Samples, TextWindows};
use crate::diag::{Diag, closest};
use crate::lower::{DataField, SourceSpec, SplitPlan};
use std::path::Path;

/// What a source was loaded into.
pub enum Store {
    Table(Dataset),
    Text(TextWindows),
}

impl Store {
    fn gather<T: Element>(&self, field: &str, indices: &[usize], out: &mut [T]) -> Result<(), DataError> {
        match self {
            Store::Table(d) => Samples::gather(d, field, indices, out),
            Store::Text(t) => Samples::gather(t, field, indices, out),
        }
    }
}

/// One split, ready to batch: the samples that belong to it and, for each
/// declared field, the source column that feeds it.
pub struct SplitData {
    pub store: Store,
    /// Indices into the store of this split's samples.
    pub samples: Vec<usize>,
    /// `(declared field, source column)`.
    pub columns: Vec<(DataField, String)>,
    pub last: LastBatch,
    /// For text sources: the character vocabulary the ids index, saved
    /// with the run so its predictions can be decoded.
    pub vocab: Option<data::Vocab>,
    /// For CSV class names (`label_names: true`): the name of each id,
    /// saved with the run and used by `predict` and `build`.
    pub class_names: Option<Vec<String>>,
}

impl SplitData {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Copy the samples at positions `batch` (into `self.samples`) of one
    /// column into `out`, which holds exactly that many samples.
    pub fn gather<T: Element>(
        &self,
        column: &str,
        batch: &[usize],
        idx: &mut Vec<usize>,
        out: &mut [T],
    ) -> Result<(), DataError> {
        idx.clear();
        idx.extend(batch.iter().map(|&i| self.samples[i]));
        self.store.gather(column, idx, out)
    }
}

/// Load the split a plan names; `limit` (and the plan's `take`) keep only
/// its first samples.
pub fn load(plan: &SplitPlan, limit: Option<usize>) -> Result<SplitData, RunError> {
    let mut vocab = None;
    let mut class_names = None;
    let (store, columns, n, test_range) = match &plan.source {
        SourceSpec::Idx { dir } => {
            let d = data::load_split(Path::new(dir), &plan.split)?;
            let n = d.len();
            (Store::Table(d), vec!["images", "labels"], n, None)
        }
        SourceSpec::Csv { path, label, test_fraction, label_names } => {
            if *label_names && label.is_none() {
                return Err(RunError::Other(format!(
                    "{path}: `label_names: true` needs the `label` column it applies to, e.g. `label: \"species\"`"
                )));
            }
            let columns = if label.is_some() { vec!["features", "labels"] } else { vec!["features"] };
            if plan.fields.len() != columns.len() {
                return Err(field_count(&columns, plan.fields.len()));
            }
            let kind = csv_label_kind(plan, *label_names)?;
            let csv = data::read_csv(Path::new(path), label.as_deref(), kind)?;
            let n = csv.dataset.len();
            class_names = csv.classes;
            (Store::Table(csv.dataset), columns, n, Some(*test_fraction))
        }
        SourceSpec::Text { path, context, test_fraction, stride } => {
            let t = data::read_text(Path::new(path), *context, *stride)?;
            let n = t.windows.len();
            vocab = Some(t.vocab);
            (Store::Text(t.windows), vec!["x", "y"], n, Some(*test_fraction))
        }
    };
    if plan.fields.len() != columns.len() {
        return Err(field_count(&columns, plan.fields.len()));
    }
    let mut samples = split_range(n, &plan.split, test_range);
    for l in [limit, plan.take].into_iter().flatten() {
        samples.truncate(l);
    }
    let columns: Vec<(DataField, String)> =
        plan.fields.iter().cloned().zip(columns.into_iter().map(String::from)).collect();
    let split = SplitData {
        store,
        samples,
        columns,
        last: if plan.keep_last { LastBatch::Keep } else { LastBatch::Drop },
        vocab,
        class_names,
    };
    validate(&split)?;
    Ok(split)
}

fn field_count(columns: &[&str], declared: usize) -> RunError {
    RunError::Other(format!(
        "the source gives {} fields ({}) but the dataset declares {declared}: declare one field per source column, in order",
        columns.len(),
        columns.join(", "),
    ))
}

/// The label column means what its declared field says: f32 is a
/// regression target, an integer field class ids (or names, when asked).
fn csv_label_kind(plan: &SplitPlan, names: bool) -> Result<data::LabelKind, RunError> {
    // The field count was checked: a label column has its field.
    let Some(label) = plan.fields.get(1) else { return Ok(data::LabelKind::Integer) };
    Ok(match (label.dtype, names) {
        (crate::ir::DType::F32, false) => data::LabelKind::Float,
        (crate::ir::DType::F32, true) => {
            return Err(RunError::Other(format!(
                "field `{}` is f32 but the source has `label_names: true`: class names need an integer field, \
                 e.g. `species: i32 classes 3`",
                label.name
            )));
        }
        (_, true) => data::LabelKind::Names,
        (_, false) => data::LabelKind::Integer,
    })
}

/// Sources without split files hold out their last `fraction` as the test split.
fn split_range(n: usize, split: &str, fraction: Option<f64>) -> Vec<usize> {
    let Some(f) = fraction else { return (0..n).collect() };
    let test = ((n as f64) * f.clamp(0.0, 1.0)).round() as usize;
    if split == "test" { (n - test..n).collect() } else { (0..n - test).collect() }
}

fn validate(split: &SplitData) -> Result<(), RunError> {
    for (field, column) in &split.columns {
        match &split.store {
            Store::Table(d) => {
                d.check_shape(column, &field.shape)?;
                if let Some(c) = field.classes {
                    d.check_classes(column, c)?;
                }
            }
            Store::Text(t) => {
                let shape = Samples::sample_shape(t, column)?;
                if shape != field.shape {
                    return Err(RunError::Other(format!(
                        "field `{}` is declared {:?} but the text windows give {:?}: set `context` to match",
                        field.name, field.shape, shape
                    )));
                }
                if let Some(c) = field.classes {
                    t.check_classes(c)?;
                }
            }
        }
    }
    Ok(())
}

/// A source path that does not exist, as an error at the path where the
/// file writes it, with the nearest name in the directory it points into.
pub fn missing_source(plan: &SplitPlan) -> Option<Diag> {
    let path = match &plan.source {
        SourceSpec::Idx { dir } => dir,
        SourceSpec::Csv { path, .. } | SourceSpec::Text { path, .. } => path,
    };
    let p = Path::new(path);
    if p.exists() {
        return None;
    }
    let d = Diag::error(format!("data not found: {}", p.display())).at(plan.source_at, "no such file or directory");
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Some(d.help(format!(
            "`{}` does not exist either; data paths are relative to the .nn file that names them",
            parent.display()
        )));
    };
    let names: Vec<String> =
        entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let want = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Some(match closest(&want, names.iter().map(String::as_str)) {
        Some(c) => d.help(format!("did you mean `{}`?", parent.join(c).display())),
        None => d.help("data paths are relative to the .nn file that names them"),
    })
}
