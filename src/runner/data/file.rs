//! Reading a file whole, inflating it when it is gzip.
//!
//! Compression is detected by the gzip magic (0x1f 0x8b), not the file name:
//! people rename files, and some mirrors serve MNIST inflated under `.gz`.

use std::io::Read;
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use super::error::DataError;

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// A gzip decoder over compressed bytes in memory. Multi-member, because
/// concatenated .gz files are valid gzip.
pub(crate) fn gunzip(compressed: &[u8]) -> MultiGzDecoder<&[u8]> {
    MultiGzDecoder::new(compressed)
}

/// The whole file, inflated if it is gzip.
pub(crate) fn read_maybe_gzip(file: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(file).map_err(|e| DataError::io(file, "read file", e))?;
    if !is_gzip(&raw) {
        return Ok(raw);
    }
    let mut bytes = Vec::with_capacity(inflated_size_hint(&raw));
    gunzip(&raw).read_to_end(&mut bytes).map_err(|e| DataError::io(file, "inflate gzip data", e))?;
    Ok(bytes)
}

/// The gzip trailer's ISIZE (inflated size mod 2^32), to allocate once.
fn inflated_size_hint(raw: &[u8]) -> usize {
    let Some(tail) = raw.last_chunk::<4>() else {
        return 0;
    };
    capped_hint(raw, u32::from_le_bytes(*tail) as u64)
}

/// `want + 1` bytes (the 1 spares read_to_end a final probe), capped at
/// deflate's maximum ratio so a corrupt header cannot make us reserve gigabytes.
pub(crate) fn capped_hint(compressed: &[u8], want: u64) -> usize {
    let cap = compressed.len().saturating_mul(1032) as u64;
    usize::try_from(want.min(cap)).unwrap_or(usize::MAX).saturating_add(1)
}

/// Read until `buf` is full or the stream ends. Returns how many bytes were
/// read and the error that stopped it, if any; unlike `read_exact`, the count
/// survives a short read so errors can report found vs expected lengths.
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> (usize, Option<std::io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}
