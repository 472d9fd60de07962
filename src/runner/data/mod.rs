//! The data layer: readers, the in-memory dataset, validation, and batching.
//!
//! - [`idx`]: IDX files (MNIST family), raw or gzip, every element type;
//!   [`load_split`] finds and loads `train` / `test`.
//! - [`csv`]: CSV with a header row and a label column.
//! - [`text`]: character vocabularies and fixed context windows.
//! - [`dataset`]: named, typed, contiguous fields; `check_classes`,
//!   `check_shape`; `gather` into caller-owned batch buffers.
//! - [`batch`] and [`rng`]: seeded, reproducible, resumable epochs.
//!
//! Bad data is never accepted silently and never panics: every failure is a
//! [`DataError`] naming the file and, where it applies, the record.

pub mod batch;
pub mod csv;
pub mod dataset;
pub mod error;
mod file;
pub mod idx;
pub mod rng;
pub mod text;

pub use batch::{BatchPlan, Cursor, EpochBatches, LastBatch, Order};
pub use csv::{CsvData, LabelKind, parse_csv, read_csv};
pub use dataset::{ColumnData, DType, Dataset, Element, Field};
pub use error::DataError;
pub use idx::{IdxArray, IdxData, IdxType, SplitFiles, load_split, read_idx, resolve_split};
pub use rng::{SplitMix64, mix64};
pub use text::{TextData, TextWindows, Vocab, read_text, read_text_with_vocab};

/// What the step loop needs from any source of samples, so it can batch an
/// IDX/CSV [`Dataset`] and [`TextWindows`] the same way.
pub trait Samples {
    /// Number of samples.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Per-sample shape of `field`.
    fn sample_shape(&self, field: &str) -> Result<Vec<usize>, DataError>;
    /// Copy samples `indices` of `field` into `out` (see [`Field::gather`]).
    fn gather<T: Element>(&self, field: &str, indices: &[usize], out: &mut [T]) -> Result<(), DataError>;
}

impl Samples for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }
    fn sample_shape(&self, field: &str) -> Result<Vec<usize>, DataError> {
        Ok(self.field(field)?.shape().to_vec())
    }
    fn gather<T: Element>(&self, field: &str, indices: &[usize], out: &mut [T]) -> Result<(), DataError> {
        Dataset::gather(self, field, indices, out)
    }
}

impl Samples for TextWindows {
    fn len(&self) -> usize {
        TextWindows::len(self)
    }
    fn sample_shape(&self, field: &str) -> Result<Vec<usize>, DataError> {
        match field {
            "x" | "y" => Ok(vec![self.context()]),
            _ => Err(DataError::NoSuchField { field: field.to_string(), available: vec!["x".into(), "y".into()] }),
        }
    }
    fn gather<T: Element>(&self, field: &str, indices: &[usize], out: &mut [T]) -> Result<(), DataError> {
        TextWindows::gather(self, field, indices, out)
    }
}
