//! Text for character-level models.
//!
//! The vocabulary is the sorted set of distinct characters (Unicode scalar
//! values); a character's id is its rank. Sample `i` is the window of
//! `context + 1` ids starting at `i * stride`: `x` is its first `context` ids,
//! `y` the same window shifted by one (the next character at every position).
//! Windows are fixed by index, not drawn at random, so the epoch shuffler alone
//! decides the order and a resumed run sees the same samples; with stride 1 a
//! shuffled epoch is exactly "random offsets without replacement".
//! Windows are cut at gather time: materialising them would cost
//! `context + 1` times the corpus.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::{DType, Element};
use super::error::DataError;
use super::file::read_maybe_gzip;

/// Sorted distinct characters; id `i` is `chars[i]`. Serialises as
/// `{"chars": ["\n", " ", "!", ...]}` and is validated on load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "VocabRepr", into = "VocabRepr")]
pub struct Vocab {
    chars: Vec<char>,
}

#[derive(Serialize, Deserialize)]
struct VocabRepr {
    chars: Vec<char>,
}

impl TryFrom<VocabRepr> for Vocab {
    type Error = String;
    fn try_from(r: VocabRepr) -> Result<Vocab, String> {
        Vocab::from_chars(r.chars)
    }
}

impl From<Vocab> for VocabRepr {
    fn from(v: Vocab) -> VocabRepr {
        VocabRepr { chars: v.chars }
    }
}

impl Vocab {
    /// The vocabulary of `text`.
    pub fn from_text(text: &str) -> Vocab {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Vocab { chars }
    }

    /// A vocabulary from explicit characters, which must be strictly
    /// ascending (so ids are canonical and a saved file cannot be ambiguous).
    pub fn from_chars(chars: Vec<char>) -> Result<Vocab, String> {
        if let Some(w) = chars.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!("characters must be sorted and distinct, found {:?} before {:?}", w[0], w[1]));
        }
        if chars.len() > i32::MAX as usize {
            return Err("too many characters for i32 ids".into());
        }
        Ok(Vocab { chars })
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    pub fn id(&self, c: char) -> Option<i32> {
        // The length is bounded by i32::MAX (checked at construction).
        self.chars.binary_search(&c).ok().map(|i| i as i32)
    }

    pub fn char(&self, id: i32) -> Option<char> {
        usize::try_from(id).ok().and_then(|i| self.chars.get(i).copied())
    }

    /// Encode `text`; a character outside the vocabulary is an error naming
    /// its byte offset in `file`.
    pub fn encode(&self, text: &str, file: &Path) -> Result<Vec<i32>, DataError> {
        text.char_indices()
            .map(|(at, c)| {
                self.id(c).ok_or_else(|| DataError::Text {
                    file: file.to_path_buf(),
                    byte_offset: at,
                    expected: "a character in the vocabulary".into(),
                    found: format!("{c:?}"),
                })
            })
            .collect()
    }

    /// Decode ids back to text; `None` if any id is outside the vocabulary.
    pub fn decode(&self, ids: &[i32]) -> Option<String> {
        ids.iter().map(|&i| self.char(i)).collect()
    }

    pub fn to_json(&self) -> String {
        // Serialising a Vec<char> into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse a saved vocabulary; `file` is used only in errors.
    pub fn from_json(json: &str, file: &Path) -> Result<Vocab, DataError> {
        serde_json::from_str(json).map_err(|e| DataError::Vocab { file: file.to_path_buf(), reason: e.to_string() })
    }

    pub fn save(&self, file: &Path) -> Result<(), DataError> {
        std::fs::write(file, self.to_json()).map_err(|e| DataError::io(file, "write vocabulary", e))
    }

    pub fn load(file: &Path) -> Result<Vocab, DataError> {
        let json = std::fs::read_to_string(file).map_err(|e| DataError::io(file, "read vocabulary", e))?;
        Vocab::from_json(&json, file)
    }
}

/// Read a UTF-8 text file (gzip detected by content).
pub fn read_text_file(file: &Path) -> Result<String, DataError> {
    let bytes = read_maybe_gzip(file)?;
    String::from_utf8(bytes).map_err(|e| DataError::Text {
        file: file.to_path_buf(),
        byte_offset: e.utf8_error().valid_up_to(),
        expected: "UTF-8 text".into(),
        found: "an invalid byte sequence".into(),
    })
}

/// A corpus and the vocabulary it was encoded with.
#[derive(Clone, Debug)]
pub struct TextData {
    pub vocab: Vocab,
    pub windows: TextWindows,
}

/// Read `file`, build its vocabulary, and cut windows.
pub fn read_text(file: &Path, context: usize, stride: usize) -> Result<TextData, DataError> {
    let text = read_text_file(file)?;
    let vocab = Vocab::from_text(&text);
    let ids = vocab.encode(&text, file)?;
    let windows = TextWindows::new(file, ids, context, stride)?;
    Ok(TextData { vocab, windows })
}

/// Read `file` with an existing vocabulary (a validation split, or a resumed
/// run that saved its vocabulary).
pub fn read_text_with_vocab(
    file: &Path,
    vocab: &Vocab,
    context: usize,
    stride: usize,
) -> Result<TextWindows, DataError> {
    let text = read_text_file(file)?;
    TextWindows::new(file, vocab.encode(&text, file)?, context, stride)
}

/// Fixed windows over an encoded corpus; fields `x` and `y`, each `[context]` ids.
#[derive(Clone, Debug, PartialEq)]
pub struct TextWindows {
    file: PathBuf,
    ids: Vec<i32>,
    context: usize,
    stride: usize,
    n: usize,
}

impl TextWindows {
    pub fn new(file: &Path, ids: Vec<i32>, context: usize, stride: usize) -> Result<TextWindows, DataError> {
        let invalid = |reason: String| DataError::Invalid { source_name: file.display().to_string(), reason };
        if context == 0 || stride == 0 {
            return Err(invalid(format!(
                "context and stride must be at least 1, found context {context}, stride {stride}"
            )));
        }
        let Some(span) = ids.len().checked_sub(context) else {
            return Err(invalid(format!(
                "{} characters is too short for one window of {} (context + 1)",
                ids.len(),
                context + 1
            )));
        };
        if span == 0 {
            return Err(invalid(format!(
                "{} characters is too short for one window of {} (context + 1)",
                ids.len(),
                context + 1
            )));
        }
        // Windows start at 0, stride, ... as long as start + context < len.
        let n = (span - 1) / stride + 1;
        Ok(TextWindows { file: file.to_path_buf(), ids, context, stride, n })
    }

    /// Number of windows (samples).
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn context(&self) -> usize {
        self.context
    }
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// The whole encoded corpus.
    pub fn ids(&self) -> &[i32] {
        &self.ids
    }
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Copy windows `indices` of field `x` or `y` into `out`, which must hold
    /// `indices.len() * context` elements. Does not allocate.
    pub fn gather<T: Element>(&self, field: &str, indices: &[usize], out: &mut [T]) -> Result<(), DataError> {
        let shift = match field {
            "x" => 0,
            "y" => 1,
            _ => {
                return Err(DataError::NoSuchField {
                    field: field.to_string(),
                    available: vec!["x".into(), "y".into()],
                });
            }
        };
        if !T::accepts(DType::I32) {
            return Err(DataError::DTypeMismatch {
                file: self.file.clone(),
                field: field.to_string(),
                expected: format!("{}", T::DTYPE),
                found: DType::I32,
            });
        }
        check_batch(indices, out.len(), self.context, self.n, field)?;
        for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(self.context)) {
            let start = i * self.stride + shift;
            T::from_i32(&self.ids[start..start + self.context], dst);
        }
        Ok(())
    }

    /// Every id must be below `n_classes` (the model's output size); the error
    /// names the first window holding an offending id.
    pub fn check_classes(&self, n_classes: usize) -> Result<(), DataError> {
        let limit = i64::try_from(n_classes).unwrap_or(i64::MAX);
        let last = (self.n - 1) * self.stride + self.context;
        let bad = self.ids[..=last].iter().position(|&v| v < 0 || i64::from(v) >= limit);
        let Some(p) = bad else { return Ok(()) };
        // The first window covering position p: smallest i with i*stride + context >= p.
        let record = p.saturating_sub(self.context).div_ceil(self.stride);
        Err(DataError::ClassOutOfRange {
            file: self.file.clone(),
            field: "y".into(),
            record,
            element: p - record * self.stride,
            value: i64::from(self.ids[p]),
            n_classes,
        })
    }
}

fn check_batch(indices: &[usize], out_len: usize, k: usize, n: usize, field: &str) -> Result<(), DataError> {
    if Some(out_len) != indices.len().checked_mul(k) {
        return Err(DataError::Batch {
            expected: format!("a buffer of {} x {k} elements for field `{field}`", indices.len()),
            found: format!("{out_len} elements"),
        });
    }
    if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
        return Err(DataError::Batch { expected: format!("window indices below {n}"), found: format!("index {bad}") });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(text: &str, context: usize, stride: usize) -> (Vocab, TextWindows) {
        let v = Vocab::from_text(text);
        let ids = v.encode(text, Path::new("t.txt")).expect("encode");
        let w = TextWindows::new(Path::new("t.txt"), ids, context, stride).expect("windows");
        (v, w)
    }

    #[test]
    fn vocab_sorted_and_round_trips() {
        let v = Vocab::from_text("hello, world");
        assert_eq!(v.chars(), &[' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        let ids = v.encode("world", Path::new("t")).expect("encode");
        assert_eq!(v.decode(&ids).as_deref(), Some("world"));
        let back = Vocab::from_json(&v.to_json(), Path::new("v.json")).expect("json");
        assert_eq!(back, v);
        assert!(Vocab::from_json(r#"{"chars":["b","a"]}"#, Path::new("v.json")).is_err());
        assert!(v.decode(&[99]).is_none());
    }

    #[test]
    fn unknown_char_names_offset() {
        let v = Vocab::from_text("abc");
        let err = v.encode("abxc", Path::new("val.txt")).expect_err("x unknown");
        let msg = err.to_string();
        assert!(msg.contains("val.txt") && msg.contains("byte 2") && msg.contains("'x'"), "{msg}");
    }

    #[test]
    fn windows_shift_by_one() {
        let (v, w) = windows("abcdefg", 3, 2);
        // Window starts 0 and 2; start 4 would need ids up to 7, past the end.
        assert_eq!(w.len(), 2);
        let mut x = [0i32; 6];
        let mut y = [0i32; 6];
        w.gather("x", &[1, 0], &mut x).expect("x");
        w.gather("y", &[1, 0], &mut y).expect("y");
        assert_eq!(v.decode(&x).as_deref(), Some("cdeabc"));
        assert_eq!(v.decode(&y).as_deref(), Some("defbcd"));
        assert!(w.gather("x", &[2], &mut [0i32; 3]).is_err());
        assert!(w.gather("z", &[0], &mut [0i32; 3]).is_err());
        assert!(w.gather("x", &[0], &mut [0u8; 3]).is_err());
    }

    #[test]
    fn window_count_edges() {
        assert_eq!(windows("abcd", 3, 1).1.len(), 1);
        assert_eq!(windows("abcde", 3, 1).1.len(), 2);
        let v = Vocab::from_text("abc");
        let ids = v.encode("abc", Path::new("t")).expect("encode");
        assert!(TextWindows::new(Path::new("t"), ids.clone(), 3, 1).is_err());
        assert!(TextWindows::new(Path::new("t"), ids, 0, 1).is_err());
    }

    #[test]
    fn class_check_names_window() {
        let (_, w) = windows("abcabcz", 2, 2);
        // ids: a0 b1 c2 a0 b1 c2 z3; z at position 6 is first covered by window 2 (start 4).
        let err = w.check_classes(3).expect_err("z is id 3");
        assert!(matches!(err, DataError::ClassOutOfRange { record: 2, element: 2, value: 3, .. }), "{err}");
        assert!(w.check_classes(4).is_ok());
    }
}
