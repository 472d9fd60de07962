//! The one error type of the data layer.
//!
//! Every variant names the file it came from (or the in-memory source, for
//! datasets built by hand) and, where it applies, the record and what was
//! expected against what was found, so a user can go straight to the bad byte.

use std::fmt;
use std::path::{Path, PathBuf};

use super::dataset::DType;

/// Anything that can go wrong reading, validating or batching data.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened, read or inflated.
    Io { file: PathBuf, what: &'static str, source: std::io::Error },
    /// The first bytes are not what the format requires.
    BadMagic { file: PathBuf, expected: String, found: String },
    /// A header field is impossible (zero dimensions, overflowing sizes, ...).
    BadHeader { file: PathBuf, expected: String, found: String },
    /// The payload is shorter (truncated) or longer than the header promises.
    Length { file: PathBuf, expected_bytes: u64, found_bytes: u64 },
    /// A split's files are not in the directory.
    MissingSplit { dir: PathBuf, split: String, looked_for: Vec<PathBuf> },
    /// Two files of one split disagree on how many records they hold.
    CountMismatch { file: PathBuf, other: PathBuf, count: usize, other_count: usize },
    /// A CSV cell, row or header is malformed. `line` is 1-based.
    Csv { file: PathBuf, line: usize, column: Option<String>, expected: String, found: String },
    /// Text that is not valid UTF-8, or a character outside a vocabulary.
    Text { file: PathBuf, byte_offset: usize, expected: String, found: String },
    /// A saved vocabulary is malformed.
    Vocab { file: PathBuf, reason: String },
    /// A class id outside `0..n_classes`. `record` is the sample index.
    ClassOutOfRange { file: PathBuf, field: String, record: usize, element: usize, value: i64, n_classes: usize },
    /// A NaN or an infinity in a float field: it would poison training.
    NonFinite { file: PathBuf, field: String, record: usize, element: usize, value: f64 },
    /// A field's per-sample shape differs from the one the model expects.
    ShapeMismatch { file: PathBuf, field: String, expected: Vec<usize>, found: Vec<usize> },
    /// A field holds a dtype the operation cannot use.
    DTypeMismatch { file: PathBuf, field: String, expected: String, found: DType },
    /// A field name that the dataset does not have.
    NoSuchField { field: String, available: Vec<String> },
    /// A dataset or field was assembled inconsistently (caller error).
    Invalid { source_name: String, reason: String },
    /// A batch index or buffer that does not fit the dataset (caller error).
    Batch { expected: String, found: String },
}

impl DataError {
    /// The file (or in-memory source name) the error is about, if any.
    pub fn file(&self) -> Option<&Path> {
        use DataError::*;
        match self {
            Io { file, .. }
            | BadMagic { file, .. }
            | BadHeader { file, .. }
            | Length { file, .. }
            | CountMismatch { file, .. }
            | Csv { file, .. }
            | Text { file, .. }
            | Vocab { file, .. }
            | ClassOutOfRange { file, .. }
            | NonFinite { file, .. }
            | ShapeMismatch { file, .. }
            | DTypeMismatch { file, .. } => Some(file),
            MissingSplit { dir, .. } => Some(dir),
            NoSuchField { .. } | Invalid { .. } | Batch { .. } => None,
        }
    }

    /// The record (sample index, or 1-based line for CSV) the error is about.
    pub fn record(&self) -> Option<usize> {
        match self {
            DataError::ClassOutOfRange { record, .. } | DataError::NonFinite { record, .. } => Some(*record),
            DataError::Csv { line, .. } => Some(*line),
            _ => None,
        }
    }

    pub(crate) fn io(file: &Path, what: &'static str, source: std::io::Error) -> Self {
        DataError::Io { file: file.to_path_buf(), what, source }
    }

    fn code_str(&self) -> &'static str {
        use DataError::*;
        match self {
            Io { .. } => "nnc::data::io",
            BadMagic { .. } => "nnc::data::bad_magic",
            BadHeader { .. } => "nnc::data::bad_header",
            Length { .. } => "nnc::data::length",
            MissingSplit { .. } => "nnc::data::missing_split",
            CountMismatch { .. } => "nnc::data::count_mismatch",
            Csv { .. } => "nnc::data::csv",
            Text { .. } => "nnc::data::text",
            Vocab { .. } => "nnc::data::vocab",
            ClassOutOfRange { .. } => "nnc::data::class_out_of_range",
            NonFinite { .. } => "nnc::data::non_finite",
            ShapeMismatch { .. } => "nnc::data::shape_mismatch",
            DTypeMismatch { .. } => "nnc::data::dtype_mismatch",
            NoSuchField { .. } => "nnc::data::no_such_field",
            Invalid { .. } => "nnc::data::invalid",
            Batch { .. } => "nnc::data::batch",
        }
    }
}

/// `[28, 28]` style, and `[]` for scalars, matching how the language prints shapes.
pub(crate) fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DataError::*;
        match self {
            Io { file, what, source } => {
                write!(f, "{}: cannot {what}: {source}", file.display())
            }
            BadMagic { file, expected, found } => {
                write!(f, "{}: bad magic number: expected {expected}, found {found}", file.display())
            }
            BadHeader { file, expected, found } => {
                write!(f, "{}: bad header: expected {expected}, found {found}", file.display())
            }
            Length { file, expected_bytes, found_bytes } => {
                let how = if found_bytes < expected_bytes { "truncated" } else { "trailing bytes" };
                write!(f, "{}: {how}: expected {expected_bytes} bytes, found {found_bytes}", file.display())
            }
            MissingSplit { dir, split, looked_for } => {
                let names: Vec<String> = looked_for.iter().map(|p| p.display().to_string()).collect();
                write!(f, "{}: no files for split `{split}`; looked for: {}", dir.display(), names.join(", "))
            }
            CountMismatch { file, other, count, other_count } => {
                write!(f, "{}: {count} records, but {} has {other_count}", file.display(), other.display())
            }
            Csv { file, line, column, expected, found } => {
                write!(f, "{}:{line}", file.display())?;
                if let Some(c) = column {
                    write!(f, ", column {c}")?;
                }
                write!(f, ": expected {expected}, found {found}")
            }
            Text { file, byte_offset, expected, found } => {
                write!(f, "{}: at byte {byte_offset}: expected {expected}, found {found}", file.display())
            }
            Vocab { file, reason } => {
                write!(f, "{}: invalid vocabulary: {reason}", file.display())
            }
            ClassOutOfRange { file, field, record, element, value, n_classes } => {
                write!(f, "{}: field `{field}`, record {record}", file.display())?;
                if *element > 0 {
                    write!(f, " (element {element})")?;
                }
                write!(f, ": class id {value} out of range: expected 0..{n_classes}")
            }
            NonFinite { file, field, record, element, value } => {
                write!(
                    f,
                    "{}: field `{field}`, record {record}, element {element}: {value} is not a finite number",
                    file.display()
                )
            }
            ShapeMismatch { file, field, expected, found } => write!(
                f,
                "{}: field `{field}`: expected per-sample shape {}, found {}",
                file.display(),
                shape_str(expected),
                shape_str(found)
            ),
            DTypeMismatch { file, field, expected, found } => {
                write!(f, "{}: field `{field}`: expected dtype {expected}, found {found}", file.display())
            }
            NoSuchField { field, available } => {
                write!(f, "no field `{field}`; the dataset has: {}", available.join(", "))
            }
            Invalid { source_name, reason } => write!(f, "{source_name}: {reason}"),
            Batch { expected, found } => {
                write!(f, "bad batch request: expected {expected}, found {found}")
            }
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl miette::Diagnostic for DataError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code_str()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let help: &'static str = match self {
            DataError::Length { .. } => "the file may be truncated; download it again",
            DataError::MissingSplit { .. } => {
                "MNIST-family files are `train-*` for the train split and `t10k-*` for test, \
                 raw or gzip-compressed"
            }
            DataError::ClassOutOfRange { .. } => "the number of classes must match the model's output size",
            DataError::NonFinite { .. } => "NaN and infinities make the loss NaN: fix or drop the record",
            _ => return None,
        };
        Some(Box::new(help))
    }
}
