//! The IDX format (MNIST and its family), raw or gzip.
//!
//! Layout: two zero bytes, a type code, the rank r; then r big-endian u32
//! dimensions; then the elements, big-endian, row-major. The payload must be
//! exactly product(dims) * element size bytes: short is truncation, long is
//! a file that is not what its header says, and both are errors.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::dataset::{ColumnData, Dataset, Field};
use super::error::{DataError, shape_str};
use super::file::{capped_hint, gunzip, is_gzip, read_up_to};

/// Element type named by an IDX header's third byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxType {
    U8,
    I8,
    I16,
    I32,
    F32,
    F64,
}

impl IdxType {
    pub fn from_code(code: u8) -> Option<IdxType> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }
}

/// Elements of an IDX file, in the file's own type.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// A decoded IDX file: its dimensions (first = record count) and elements.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: IdxData,
}

impl IdxArray {
    /// A dataset field: dims[0] samples of shape dims[1..]. Signed integers
    /// widen to i32 losslessly; f64 narrows to f32, the precision training runs at.
    pub fn into_field(self, name: &str, source: &Path) -> Result<Field, DataError> {
        let n = self.dims.first().copied().unwrap_or(0);
        let shape = self.dims.get(1..).unwrap_or(&[]).to_vec();
        let per = shape.iter().product::<usize>().max(1);
        let non_finite = |i: usize, value: f64| DataError::NonFinite {
            file: source.to_path_buf(),
            field: name.to_string(),
            record: i / per,
            element: i % per,
            value,
        };
        // f64 is checked as it will be stored: 1e300 becomes inf in f32.
        let bad = match &self.data {
            IdxData::F32(v) => v.iter().position(|x| !x.is_finite()).map(|i| (i, f64::from(v[i]))),
            IdxData::F64(v) => v.iter().position(|x| !(*x as f32).is_finite()).map(|i| (i, v[i])),
            IdxData::U8(_) | IdxData::I8(_) | IdxData::I16(_) | IdxData::I32(_) => None,
        };
        if let Some((i, value)) = bad {
            return Err(non_finite(i, value));
        }
        let data = match self.data {
            IdxData::U8(v) => ColumnData::U8(v),
            IdxData::I8(v) => ColumnData::I32(v.into_iter().map(i32::from).collect()),
            IdxData::I16(v) => ColumnData::I32(v.into_iter().map(i32::from).collect()),
            IdxData::I32(v) => ColumnData::I32(v),
            IdxData::F32(v) => ColumnData::F32(v),
            IdxData::F64(v) => ColumnData::F32(v.into_iter().map(|x| x as f32).collect()),
        };
        Field::new(name, source, n, shape, data)
    }
}

/// Read an IDX file, gzip or raw (detected by content).
pub fn read_idx(file: &Path) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(file).map_err(|e| DataError::io(file, "read file", e))?;
    if is_gzip(&raw) { read_gzip_idx(&raw, file) } else { parse_idx(raw, file) }
}

/// Decode IDX bytes already in memory; `file` is used only in errors.
pub fn parse_idx(mut bytes: Vec<u8>, file: &Path) -> Result<IdxArray, DataError> {
    let Some(&magic) = bytes.first_chunk::<4>() else {
        return Err(length(file, 4, bytes.len()));
    };
    let (ty, rank) = parse_magic(magic, file)?;
    let header_len = 4 + 4 * usize::from(rank);
    let Some(dim_bytes) = bytes.get(4..header_len) else {
        return Err(length(file, header_len as u64, bytes.len()));
    };
    let h = parse_dims(ty, dim_bytes, file)?;
    check_length(&h, bytes.len() - header_len, file)?;
    // Shifting the payload down reuses the buffer: no second 47 MB allocation.
    bytes.drain(..header_len);
    Ok(IdxArray { data: decode(bytes, ty), dims: h.dims })
}

/// Inflate the header first, then the payload straight into a buffer of the
/// size the header promises: one allocation, no copy, and a truncated stream
/// is reported as expected vs found bytes like a truncated raw file.
fn read_gzip_idx(compressed: &[u8], file: &Path) -> Result<IdxArray, DataError> {
    let mut r = gunzip(compressed);
    let mut magic = [0u8; 4];
    read_part(&mut r, &mut magic, 0, file)?;
    let (ty, rank) = parse_magic(magic, file)?;
    let mut dim_bytes = vec![0u8; 4 * usize::from(rank)];
    read_part(&mut r, &mut dim_bytes, 4, file)?;
    let h = parse_dims(ty, &dim_bytes, file)?;
    let mut payload = Vec::with_capacity(capped_hint(compressed, h.payload_len));
    // Never buffer more than the header promises, so a gzip bomb cannot
    // exhaust memory; anything beyond is only counted, for the error.
    let mut bounded = (&mut r).take(h.payload_len);
    let inflated = bounded.read_to_end(&mut payload);
    if let Err(e) = inflated {
        if (payload.len() as u64) < h.payload_len {
            return Err(length(file, h.expected_len(), h.header_len + payload.len()));
        }
        return Err(DataError::io(file, "inflate gzip data", e));
    }
    check_length(&h, payload.len(), file)?;
    let extra = std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| DataError::io(file, "inflate gzip data", e))?;
    if extra > 0 {
        let found = h.expected_len().saturating_add(extra);
        return Err(DataError::Length {
            file: file.to_path_buf(),
            expected_bytes: h.expected_len(),
            found_bytes: found,
        });
    }
    Ok(IdxArray { data: decode(payload, ty), dims: h.dims })
}

/// Fill `buf` from the stream, which is at byte `offset` of the inflated file.
fn read_part(r: &mut impl Read, buf: &mut [u8], offset: usize, file: &Path) -> Result<(), DataError> {
    match read_up_to(r, buf) {
        (n, _) if n == buf.len() => Ok(()),
        (n, Some(e)) if n == 0 && offset == 0 => Err(DataError::io(file, "inflate gzip data", e)),
        (n, _) => Err(length(file, (offset + buf.len()) as u64, offset + n)),
    }
}

struct Header {
    dims: Vec<usize>,
    header_len: usize,
    payload_len: u64,
}

impl Header {
    fn expected_len(&self) -> u64 {
        self.header_len as u64 + self.payload_len
    }
}

fn length(file: &Path, expected: u64, found: usize) -> DataError {
    DataError::Length { file: file.to_path_buf(), expected_bytes: expected, found_bytes: found as u64 }
}

fn check_length(h: &Header, payload: usize, file: &Path) -> Result<(), DataError> {
    if payload as u64 == h.payload_len {
        return Ok(());
    }
    Err(length(file, h.expected_len(), h.header_len + payload))
}

/// The 4-byte magic: two zero bytes, a known type code, a non-zero rank.
fn parse_magic([z0, z1, code, rank]: [u8; 4], file: &Path) -> Result<(IdxType, u8), DataError> {
    let ty = IdxType::from_code(code).filter(|_| z0 == 0 && z1 == 0);
    let Some(ty) = ty else {
        return Err(DataError::BadMagic {
            file: file.to_path_buf(),
            expected: "00 00 <type 08|09|0b|0c|0d|0e> <rank>".into(),
            found: format!("{z0:02x} {z1:02x} {code:02x} {rank:02x}"),
        });
    };
    if rank == 0 {
        return Err(bad_header(file, "at least 1 dimension", "rank 0".into()));
    }
    Ok((ty, rank))
}

fn parse_dims(ty: IdxType, dim_bytes: &[u8], file: &Path) -> Result<Header, DataError> {
    let dims: Vec<usize> =
        dim_bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let payload_len = dims
        .iter()
        .try_fold(ty.size() as u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&len| usize::try_from(len).is_ok())
        .ok_or_else(|| bad_header(file, "dimensions whose product fits in memory", shape_str(&dims)))?;
    Ok(Header { header_len: 4 + dim_bytes.len(), dims, payload_len })
}

fn bad_header(file: &Path, expected: &str, found: String) -> DataError {
    DataError::BadHeader { file: file.to_path_buf(), expected: expected.to_string(), found }
}

/// Elements from a payload whose length was checked against the header.
fn decode(payload: Vec<u8>, ty: IdxType) -> IdxData {
    match ty {
        IdxType::U8 => IdxData::U8(payload),
        IdxType::I8 => IdxData::I8(payload.iter().map(|&b| b as i8).collect()),
        IdxType::I16 => IdxData::I16(be(&payload, i16::from_be_bytes)),
        IdxType::I32 => IdxData::I32(be(&payload, i32::from_be_bytes)),
        IdxType::F32 => IdxData::F32(be(&payload, f32::from_be_bytes)),
        IdxType::F64 => IdxData::F64(be(&payload, f64::from_be_bytes)),
    }
}

/// Big-endian elements of width N (the length was checked to be a multiple).
fn be<T, const N: usize>(payload: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    payload.chunks_exact(N).filter_map(|c| c.try_into().ok()).map(from).collect()
}

/// The two files of an MNIST-family split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitFiles {
    pub images: PathBuf,
    pub labels: PathBuf,
}

/// Find `<prefix>-images-idx3-ubyte[.gz]` and `<prefix>-labels-idx1-ubyte[.gz]`
/// in `dir`, where the prefix is `train` for "train" and `t10k` for "test".
/// The raw file wins over the `.gz` when both exist (no inflate needed).
pub fn resolve_split(dir: &Path, split: &str) -> Result<SplitFiles, DataError> {
    let prefix = match split {
        "train" => "train",
        "test" | "t10k" => "t10k",
        other => {
            return Err(DataError::Invalid {
                source_name: dir.display().to_string(),
                reason: format!("unknown split `{other}`: expected `train` or `test`"),
            });
        }
    };
    let candidates = |kind: &str, rank: u8| {
        let base = format!("{prefix}-{kind}-idx{rank}-ubyte");
        [dir.join(&base), dir.join(format!("{base}.gz"))]
    };
    let images = candidates("images", 3);
    let labels = candidates("labels", 1);
    let found = |c: &[PathBuf; 2]| c.iter().find(|p| p.is_file()).cloned();
    match (found(&images), found(&labels)) {
        (Some(images), Some(labels)) => Ok(SplitFiles { images, labels }),
        (i, l) => {
            let mut looked_for = Vec::new();
            if i.is_none() {
                looked_for.extend(images);
            }
            if l.is_none() {
                looked_for.extend(labels);
            }
            Err(DataError::MissingSplit { dir: dir.to_path_buf(), split: split.to_string(), looked_for })
        }
    }
}

/// Load a split as a dataset with fields `images` (shape dims[1..]) and
/// `labels` (scalar per sample), checking they hold the same record count.
pub fn load_split(dir: &Path, split: &str) -> Result<Dataset, DataError> {
    let files = resolve_split(dir, split)?;
    load_pair(&files)
}

/// Like [`load_split`], for explicitly named files.
pub fn load_pair(files: &SplitFiles) -> Result<Dataset, DataError> {
    // Inflating the images dominates; the labels inflate alongside on a thread.
    let (images, labels) = std::thread::scope(|s| {
        let labels = s.spawn(|| read_idx(&files.labels));
        let images = read_idx(&files.images);
        let labels = labels.join().unwrap_or_else(|_| {
            Err(DataError::Invalid {
                source_name: files.labels.display().to_string(),
                reason: "reader thread panicked".into(),
            })
        });
        (images, labels)
    });
    let (images, labels) = (images?, labels?);
    if labels.dims.len() != 1 {
        return Err(bad_header(&files.labels, "1 dimension for labels", shape_str(&labels.dims)));
    }
    let (ni, nl) = (images.dims[0], labels.dims[0]);
    if ni != nl {
        return Err(DataError::CountMismatch {
            file: files.images.clone(),
            other: files.labels.clone(),
            count: ni,
            other_count: nl,
        });
    }
    Dataset::new(vec![images.into_field("images", &files.images)?, labels.into_field("labels", &files.labels)?])
}

/// Encode an array as IDX bytes (tests, fixtures, and exporting predictions).
pub fn encode_idx(array: &IdxArray) -> Vec<u8> {
    let ty = match &array.data {
        IdxData::U8(_) => IdxType::U8,
        IdxData::I8(_) => IdxType::I8,
        IdxData::I16(_) => IdxType::I16,
        IdxData::I32(_) => IdxType::I32,
        IdxData::F32(_) => IdxType::F32,
        IdxData::F64(_) => IdxType::F64,
    };
    let mut out = vec![0, 0, ty.code(), array.dims.len() as u8];
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    match &array.data {
        IdxData::U8(v) => out.extend_from_slice(v),
        IdxData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
        IdxData::I16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
        IdxData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
        IdxData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
        IdxData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("mem.idx")
    }

    #[test]
    fn every_type_round_trips() {
        let cases = vec![
            IdxData::U8(vec![0, 1, 255, 7, 8, 9]),
            IdxData::I8(vec![-128, -1, 0, 1, 127, 5]),
            IdxData::I16(vec![-32768, -2, 0, 3, 32767, 300]),
            IdxData::I32(vec![i32::MIN, -1, 0, 1, i32::MAX, 70000]),
            IdxData::F32(vec![-1.5, 0.0, 1.0e-8, 3.25, f32::MAX, 2.0]),
            IdxData::F64(vec![-1.5, 0.0, 1.0e-300, 3.25, f64::MAX, 2.0]),
        ];
        for data in cases {
            let a = IdxArray { dims: vec![2, 3], data };
            let back = parse_idx(encode_idx(&a), p()).expect("round trip");
            assert_eq!(back, a);
        }
    }

    #[test]
    fn nan_and_infinity_are_refused_naming_the_record() {
        for (data, record, element) in [
            (IdxData::F32(vec![0.0, 1.0, 2.0, f32::NAN, 4.0, 5.0]), 1, 0),
            (IdxData::F32(vec![0.0, f32::NEG_INFINITY, 2.0, 3.0, 4.0, 5.0]), 0, 1),
            (IdxData::F64(vec![0.0, 1.0, 2.0, 3.0, 4.0, 1e300]), 1, 2),
        ] {
            let a = IdxArray { dims: vec![2, 3], data };
            let e = a.into_field("x", p()).expect_err("non-finite");
            assert!(matches!(e, DataError::NonFinite { record: r, element: el, .. } if r == record && el == element));
            assert!(e.to_string().contains(&format!("record {record}")), "{e}");
        }
    }

    #[test]
    fn i16_widens_in_field() {
        let a = IdxArray { dims: vec![2], data: IdxData::I16(vec![-5, 300]) };
        let f = a.into_field("y", p()).expect("field");
        assert_eq!(f.data(), &ColumnData::I32(vec![-5, 300]));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).expect("compress");
        enc.finish().expect("finish")
    }

    #[test]
    fn gzip_matches_raw_and_every_truncation_is_an_error() {
        let a = IdxArray { dims: vec![3, 5], data: IdxData::I32((0..15).collect()) };
        let raw = encode_idx(&a);
        let gz = gzip(&raw);
        assert_eq!(read_gzip_idx(&gz, p()).expect("gzip"), a);
        for cut in 0..gz.len() {
            let err = read_gzip_idx(&gz[..cut], p()).expect_err("truncated gzip");
            assert_eq!(err.file(), Some(p()), "{err}");
        }
        for cut in 0..raw.len() {
            let err = parse_idx(raw[..cut].to_vec(), p()).expect_err("truncated raw");
            let expected = if cut < 4 {
                4
            } else if cut < 12 {
                12
            } else {
                72
            };
            assert!(
                matches!(err, DataError::Length { expected_bytes, .. } if expected_bytes == expected),
                "{cut}: {err}"
            );
        }
    }

    #[test]
    fn gzip_header_errors() {
        let msg = |b: &[u8]| read_gzip_idx(&gzip(b), p()).expect_err("must fail").to_string();
        assert!(msg(&[7, 0, 8, 1]).contains("bad magic"));
        assert!(msg(&[0, 0, 8, 2, 0, 0]).contains("expected 12 bytes, found 6"));
        assert!(msg(&[0, 0, 8, 1, 0, 0, 0, 2, 1]).contains("expected 10 bytes, found 9"));
        assert!(msg(&[0, 0, 8, 1, 0, 0, 0, 1, 1, 2]).contains("trailing"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let _ = parse_idx(bytes.clone(), p());
            let mut gz = vec![0x1f, 0x8b];
            gz.extend(bytes);
            let _ = read_gzip_idx(&gz, p());
        }

        #[test]
        fn plausible_headers_never_panic(code in 0u8..16, rank in 0u8..4, dims: Vec<u8>, tail: Vec<u8>) {
            let mut b = vec![0, 0, code, rank];
            b.extend(dims);
            b.extend(tail);
            let _ = parse_idx(b.clone(), p());
            let _ = read_gzip_idx(&gzip(&b), p());
        }
    }

    #[test]
    fn header_errors() {
        let msg = |b: Vec<u8>| parse_idx(b, p()).expect_err("must fail").to_string();
        assert!(msg(vec![1, 0, 8, 1, 0, 0, 0, 0]).contains("bad magic"));
        assert!(msg(vec![0, 0, 0x0A, 1, 0, 0, 0, 0]).contains("bad magic"));
        assert!(msg(vec![0, 0, 8, 0]).contains("rank 0"));
        assert!(msg(vec![0, 0]).contains("expected 4 bytes, found 2"));
        assert!(msg(vec![0, 0, 8, 2, 0, 0, 0, 1]).contains("expected 12 bytes, found 8"));
        let long = msg(vec![0, 0, 8, 1, 0, 0, 0, 1, 5, 6]);
        assert!(long.contains("trailing") && long.contains("expected 9 bytes, found 10"), "{long}");
        let huge = vec![0, 0, 0x0E, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(msg(huge).contains("bad header"));
    }
}
