//! The in-memory dataset: named fields, each a contiguous column of N samples
//! of one dtype and one per-sample shape.
//!
//! Data stays in the dtype it was stored in (MNIST pixels stay u8, 47 MB
//! rather than 188 MB); widening to what the step wants happens in `gather`,
//! straight into the caller's batch buffer.

use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::{ArrayViewD, IxDyn};

use super::error::{DataError, shape_str};

/// Element type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    U8,
    I32,
    F32,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::U8 => "u8",
            DType::I32 => "i32",
            DType::F32 => "f32",
        })
    }
}

/// The contiguous storage of a column: sample-major, row-major within a sample.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    U8(Vec<u8>),
    I32(Vec<i32>),
    F32(Vec<f32>),
}

impl ColumnData {
    pub fn dtype(&self) -> DType {
        match self {
            ColumnData::U8(_) => DType::U8,
            ColumnData::I32(_) => DType::I32,
            ColumnData::F32(_) => DType::F32,
        }
    }

    /// Number of elements (not samples).
    pub fn len(&self) -> usize {
        match self {
            ColumnData::U8(v) => v.len(),
            ColumnData::I32(v) => v.len(),
            ColumnData::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i32 {}
    impl Sealed for f32 {}
}

/// A type a batch buffer can hold. Gather converts only where no value can be
/// lost by range (u8 → i32/f32, i32 → f32); narrowing is refused.
pub trait Element: Copy + Default + sealed::Sealed + 'static {
    const DTYPE: DType;
    /// The column as a slice of `Self`, when its dtype is exactly `Self`.
    fn slice(data: &ColumnData) -> Option<&[Self]>;
    /// Whether a column of `from` can be gathered into a `Self` buffer.
    fn accepts(from: DType) -> bool;
    /// Element-wise conversions (equal lengths). One the type does not
    /// `accept` leaves `dst` untouched; callers check `accepts` first.
    fn from_u8(src: &[u8], dst: &mut [Self]);
    fn from_i32(src: &[i32], dst: &mut [Self]);
    fn from_f32(src: &[f32], dst: &mut [Self]);
}

impl Element for u8 {
    const DTYPE: DType = DType::U8;
    fn slice(data: &ColumnData) -> Option<&[u8]> {
        match data {
            ColumnData::U8(v) => Some(v),
            _ => None,
        }
    }
    fn accepts(from: DType) -> bool {
        from == DType::U8
    }
    fn from_u8(src: &[u8], dst: &mut [u8]) {
        dst.copy_from_slice(src);
    }
    fn from_i32(_: &[i32], _: &mut [u8]) {}
    fn from_f32(_: &[f32], _: &mut [u8]) {}
}

impl Element for i32 {
    const DTYPE: DType = DType::I32;
    fn slice(data: &ColumnData) -> Option<&[i32]> {
        match data {
            ColumnData::I32(v) => Some(v),
            _ => None,
        }
    }
    fn accepts(from: DType) -> bool {
        matches!(from, DType::U8 | DType::I32)
    }
    fn from_u8(src: &[u8], dst: &mut [i32]) {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = i32::from(s));
    }
    fn from_i32(src: &[i32], dst: &mut [i32]) {
        dst.copy_from_slice(src);
    }
    fn from_f32(_: &[f32], _: &mut [i32]) {}
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn slice(data: &ColumnData) -> Option<&[f32]> {
        match data {
            ColumnData::F32(v) => Some(v),
            _ => None,
        }
    }
    fn accepts(_from: DType) -> bool {
        true
    }
    fn from_u8(src: &[u8], dst: &mut [f32]) {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f32::from(s));
    }
    // Exact for |x| <= 2^24, which covers any class id or token id.
    fn from_i32(src: &[i32], dst: &mut [f32]) {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s as f32);
    }
    fn from_f32(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}

impl ColumnData {
    /// Convert elements `start..start + dst.len()` into `dst` (range checked by the caller).
    fn convert_into<T: Element>(&self, start: usize, dst: &mut [T]) {
        let end = start + dst.len();
        match self {
            ColumnData::U8(v) => T::from_u8(&v[start..end], dst),
            ColumnData::I32(v) => T::from_i32(&v[start..end], dst),
            ColumnData::F32(v) => T::from_f32(&v[start..end], dst),
        }
    }
}

/// One named column: N samples, each of `shape`, from `source`.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    name: String,
    source: PathBuf,
    shape: Vec<usize>,
    n: usize,
    data: ColumnData,
}

impl Field {
    /// A field of `n` samples of per-sample `shape`; `data` must hold exactly
    /// `n * product(shape)` elements.
    pub fn new(
        name: impl Into<String>,
        source: impl Into<PathBuf>,
        n: usize,
        shape: Vec<usize>,
        data: ColumnData,
    ) -> Result<Field, DataError> {
        let name = name.into();
        let source = source.into();
        let want = shape.iter().try_fold(n, |acc, &d| acc.checked_mul(d)).ok_or_else(|| DataError::Invalid {
            source_name: source.display().to_string(),
            reason: format!("field `{name}`: {n} samples of {} overflow", shape_str(&shape)),
        })?;
        if data.len() != want {
            return Err(DataError::Invalid {
                source_name: source.display().to_string(),
                reason: format!(
                    "field `{name}`: {n} samples of {} need {want} elements, found {}",
                    shape_str(&shape),
                    data.len()
                ),
            });
        }
        Ok(Field { name, source, shape, n, data })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    /// The file this field was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }
    /// Per-sample shape (`[]` for a scalar per sample).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    pub fn data(&self) -> &ColumnData {
        &self.data
    }
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Elements per sample.
    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The whole column as an `[N, ..shape]` array view, when its dtype is `T`.
    pub fn view<T: Element>(&self) -> Option<ArrayViewD<'_, T>> {
        let mut dims = Vec::with_capacity(self.shape.len() + 1);
        dims.push(self.n);
        dims.extend_from_slice(&self.shape);
        ArrayViewD::from_shape(IxDyn(&dims), T::slice(&self.data)?).ok()
    }

    /// Copy the samples at `indices`, in order, into `out`, which must hold
    /// exactly `indices.len() * sample_len()` elements. Does not allocate.
    pub fn gather<T: Element>(&self, indices: &[usize], out: &mut [T]) -> Result<(), DataError> {
        if !T::accepts(self.dtype()) {
            return Err(self.dtype_error(&format!("{} or narrower", T::DTYPE)));
        }
        let k = self.sample_len();
        if Some(out.len()) != indices.len().checked_mul(k) {
            return Err(DataError::Batch {
                expected: format!("a buffer of {} x {k} elements for field `{}`", indices.len(), self.name),
                found: format!("{} elements", out.len()),
            });
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.n) {
            return Err(DataError::Batch {
                expected: format!("sample indices below {}", self.n),
                found: format!("index {bad}"),
            });
        }
        if k == 0 {
            return Ok(());
        }
        for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(k)) {
            self.data.convert_into(i * k, dst);
        }
        Ok(())
    }

    /// Every element must be a class id in `0..n_classes`.
    pub fn check_classes(&self, n_classes: usize) -> Result<(), DataError> {
        let bad = match &self.data {
            ColumnData::U8(v) => first_out_of_range(v.iter().map(|&x| i64::from(x)), n_classes),
            ColumnData::I32(v) => first_out_of_range(v.iter().map(|&x| i64::from(x)), n_classes),
            ColumnData::F32(_) => return Err(self.dtype_error("an integer dtype (u8 or i32)")),
        };
        match bad {
            None => Ok(()),
            Some((pos, value)) => {
                let k = self.sample_len().max(1);
                Err(DataError::ClassOutOfRange {
                    file: self.source.clone(),
                    field: self.name.clone(),
                    record: pos / k,
                    element: pos % k,
                    value,
                    n_classes,
                })
            }
        }
    }

    /// The per-sample shape must be exactly `expected`.
    pub fn check_shape(&self, expected: &[usize]) -> Result<(), DataError> {
        if self.shape == expected {
            return Ok(());
        }
        Err(DataError::ShapeMismatch {
            file: self.source.clone(),
            field: self.name.clone(),
            expected: expected.to_vec(),
            found: self.shape.clone(),
        })
    }

    fn dtype_error(&self, expected: &str) -> DataError {
        DataError::DTypeMismatch {
            file: self.source.clone(),
            field: self.name.clone(),
            expected: expected.to_string(),
            found: self.dtype(),
        }
    }
}

fn first_out_of_range(values: impl Iterator<Item = i64>, n: usize) -> Option<(usize, i64)> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    values.enumerate().find(|&(_, v)| v < 0 || v >= n)
}

/// Named fields sharing one sample count.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    n: usize,
    fields: Vec<Field>,
}

impl Dataset {
    /// Fields must have distinct names and equal sample counts.
    pub fn new(fields: Vec<Field>) -> Result<Dataset, DataError> {
        let n = fields.first().map_or(0, Field::len);
        for (i, f) in fields.iter().enumerate() {
            if f.len() != n {
                return Err(DataError::CountMismatch {
                    file: f.source.clone(),
                    other: fields[0].source.clone(),
                    count: f.len(),
                    other_count: n,
                });
            }
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(DataError::Invalid {
                    source_name: f.source.display().to_string(),
                    reason: format!("duplicate field name `{}`", f.name),
                });
            }
        }
        Ok(Dataset { n, fields })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field(&self, name: &str) -> Result<&Field, DataError> {
        self.fields.iter().find(|f| f.name == name).ok_or_else(|| DataError::NoSuchField {
            field: name.to_string(),
            available: self.fields.iter().map(|f| f.name.clone()).collect(),
        })
    }

    /// See [`Field::check_classes`].
    pub fn check_classes(&self, field: &str, n_classes: usize) -> Result<(), DataError> {
        self.field(field)?.check_classes(n_classes)
    }

    /// See [`Field::check_shape`].
    pub fn check_shape(&self, field: &str, expected: &[usize]) -> Result<(), DataError> {
        self.field(field)?.check_shape(expected)
    }

    /// See [`Field::gather`].
    pub fn gather<T: Element>(&self, field: &str, indices: &[usize], out: &mut [T]) -> Result<(), DataError> {
        self.field(field)?.gather(indices, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: Vec<i32>) -> Field {
        let n = v.len();
        Field::new("y", "mem", n, vec![], ColumnData::I32(v)).expect("valid field")
    }

    #[test]
    fn class_check_names_first_bad_record() {
        let f = labels(vec![0, 3, 9, 10, -1]);
        let err = f.check_classes(10).expect_err("10 is out of range");
        assert_eq!(err.record(), Some(3));
        let msg = err.to_string();
        assert!(msg.contains("record 3") && msg.contains("10") && msg.contains("0..10"), "{msg}");
        assert!(labels(vec![-1]).check_classes(10).is_err());
        assert!(labels(vec![0, 9]).check_classes(10).is_ok());
    }

    #[test]
    fn class_check_on_sequences_reports_element() {
        let f = Field::new("y", "mem", 2, vec![3], ColumnData::I32(vec![0, 1, 2, 3, 7, 5])).expect("valid");
        let err = f.check_classes(6).expect_err("7 out of range");
        assert!(matches!(err, DataError::ClassOutOfRange { record: 1, element: 1, value: 7, .. }));
    }

    #[test]
    fn shape_check_names_both_shapes() {
        let f = Field::new("x", "a.idx", 1, vec![28, 28], ColumnData::U8(vec![0; 784])).expect("valid");
        let msg = f.check_shape(&[784]).expect_err("mismatch").to_string();
        assert!(msg.contains("[784]") && msg.contains("[28, 28]") && msg.contains("a.idx"), "{msg}");
    }

    #[test]
    fn field_rejects_wrong_element_count() {
        assert!(Field::new("x", "m", 2, vec![3], ColumnData::F32(vec![0.0; 5])).is_err());
    }

    #[test]
    fn gather_converts_and_checks() {
        let f = Field::new("x", "m", 3, vec![2], ColumnData::U8(vec![1, 2, 3, 4, 5, 6])).expect("valid");
        let mut out = [0f32; 4];
        f.gather(&[2, 0], &mut out).expect("gather");
        assert_eq!(out, [5.0, 6.0, 1.0, 2.0]);
        let mut short = [0f32; 3];
        assert!(f.gather(&[2, 0], &mut short).is_err());
        assert!(f.gather(&[3, 0], &mut out).is_err());
        let g = Field::new("z", "m", 1, vec![], ColumnData::F32(vec![1.5])).expect("valid");
        let mut ints = [0i32; 1];
        assert!(matches!(g.gather(&[0], &mut ints), Err(DataError::DTypeMismatch { .. })));
    }

    #[test]
    fn dataset_requires_equal_counts_and_unique_names() {
        let a = labels(vec![1, 2]);
        let b = labels(vec![1]);
        assert!(Dataset::new(vec![a.clone(), b]).is_err());
        assert!(Dataset::new(vec![a.clone(), a.clone()]).is_err());
        let ds = Dataset::new(vec![a]).expect("valid");
        assert!(matches!(ds.field("x"), Err(DataError::NoSuchField { .. })));
        let view = ds.field("y").expect("y").view::<i32>().expect("i32 view");
        assert_eq!(view.shape(), &[2]);
    }
}
