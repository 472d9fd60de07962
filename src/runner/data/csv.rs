//! CSV with a header row: an optional label column, every other column a
//! feature.
//!
//! Deliberately small: comma-separated, one record per line, fields may be
//! double-quoted (with `""` for a quote inside), CRLF accepted, blank lines
//! skipped, a UTF-8 byte order mark ignored. Multi-line quoted fields are
//! not supported and are reported as an unterminated quote. Gzip is
//! detected by content, as for IDX.
//!
//! The label column means what the dataset declares (`LabelKind`): integer
//! class ids, float targets, or class names; never a guess from the values.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::dataset::{ColumnData, Dataset, Field};
use super::error::DataError;
use super::file::read_maybe_gzip;

/// How to read the label column, from the field the dataset declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelKind {
    /// `y: i32 classes C`: integer class ids, used as they are.
    Integer,
    /// `y: f32`: a regression target.
    Float,
    /// `y: i32 classes C` with `label_names: true`: names, mapped to ids
    /// by sorted order (so the mapping does not depend on row order).
    Names,
}

/// A CSV file as a dataset: fields `features` (f32, `[n_features]`) and
/// `labels` (i32, scalar), with what is needed to interpret them later.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvData {
    pub dataset: Dataset,
    /// Header names of the feature columns, in order.
    pub feature_names: Vec<String>,
    /// For string labels, the class names; id `i` is `classes[i]`.
    pub classes: Option<Vec<String>>,
}

/// Read `file`, taking `label_column` (a header name), if any, as the label.
pub fn read_csv(file: &Path, label_column: Option<&str>, kind: LabelKind) -> Result<CsvData, DataError> {
    let bytes = read_maybe_gzip(file)?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::Text {
        file: file.to_path_buf(),
        byte_offset: e.utf8_error().valid_up_to(),
        expected: "UTF-8 text".into(),
        found: "an invalid byte sequence".into(),
    })?;
    parse_csv(&text, file, label_column, kind)
}

/// Parse CSV text already in memory; `file` is used only in errors.
pub fn parse_csv(text: &str, file: &Path, label_column: Option<&str>, kind: LabelKind) -> Result<CsvData, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(csv_err(file, 1, None, "a header row", "an empty file"));
    };
    let names = split_record(header, file, header_line)?;
    distinct(&names, file, header_line)?;
    let label_idx = match label_column {
        Some(l) => Some(header_index(&names, l, file, header_line)?),
        None => None,
    };
    let ctx = Ctx { file, names: &names };
    let mut features = Vec::new();
    let mut raw_labels: Vec<(usize, String)> = Vec::new();
    let mut rows = 0;
    for (line, record) in lines {
        let cells = split_record(record, file, line)?;
        if cells.len() != names.len() {
            let expected = format!("{} fields (as in the header)", names.len());
            return Err(csv_err(file, line, None, &expected, &format!("{}", cells.len())));
        }
        for (col, cell) in cells.iter().enumerate() {
            if Some(col) == label_idx {
                raw_labels.push((line, cell.trim().to_string()));
            } else {
                features.push(ctx.number(cell, line, col)?);
            }
        }
        rows += 1;
    }
    let feature_names: Vec<String> =
        names.iter().enumerate().filter(|&(i, _)| Some(i) != label_idx).map(|(_, s)| s.clone()).collect();
    let mut fields = vec![Field::new("features", file, rows, vec![feature_names.len()], ColumnData::F32(features))?];
    let mut classes = None;
    if let Some(col) = label_idx {
        let (labels, names) = ctx.labels(raw_labels, col, kind)?;
        classes = names;
        fields.push(Field::new("labels", file, rows, vec![], labels)?);
    }
    Ok(CsvData { dataset: Dataset::new(fields)?, feature_names, classes })
}

fn csv_err(file: &Path, line: usize, column: Option<String>, expected: &str, found: &str) -> DataError {
    DataError::Csv { file: file.to_path_buf(), line, column, expected: expected.to_string(), found: found.to_string() }
}

fn distinct(names: &[String], file: &Path, line: usize) -> Result<(), DataError> {
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            let col = Some(format!("{} (`{n}`)", i + 1));
            return Err(csv_err(file, line, col, "distinct column names", "a duplicate"));
        }
    }
    Ok(())
}

fn header_index(names: &[String], label: &str, file: &Path, line: usize) -> Result<usize, DataError> {
    names.iter().position(|n| n == label).ok_or_else(|| {
        let expected = format!("a label column named `{label}`");
        csv_err(file, line, None, &expected, &format!("columns {}", names.join(", ")))
    })
}

/// What cell errors need to name their column.
struct Ctx<'a> {
    file: &'a Path,
    names: &'a [String],
}

impl Ctx<'_> {
    fn column(&self, col: usize) -> Option<String> {
        let name = self.names.get(col).map_or("", String::as_str);
        Some(format!("{} (`{name}`)", col + 1))
    }

    /// A finite f32; NaN and infinities are refused, since they would poison training.
    fn number(&self, cell: &str, line: usize, col: usize) -> Result<f32, DataError> {
        let t = cell.trim();
        match t.parse::<f32>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(csv_err(self.file, line, self.column(col), "a finite number", &format!("`{t}`"))),
        }
    }

    fn labels(
        &self,
        raw: Vec<(usize, String)>,
        col: usize,
        kind: LabelKind,
    ) -> Result<(ColumnData, Option<Vec<String>>), DataError> {
        match kind {
            LabelKind::Integer => Ok((ColumnData::I32(self.int_labels(&raw, col)?), None)),
            LabelKind::Float => {
                let v = raw.iter().map(|(line, s)| self.number(s, *line, col)).collect::<Result<_, _>>()?;
                Ok((ColumnData::F32(v), None))
            }
            LabelKind::Names => {
                let (ids, names) = self.name_labels(&raw, col)?;
                Ok((ColumnData::I32(ids), Some(names)))
            }
        }
    }

    /// Every label an integer: "1.5" is not one, and "cat" asks for names.
    fn int_labels(&self, raw: &[(usize, String)], col: usize) -> Result<Vec<i32>, DataError> {
        raw.iter()
            .map(|(line, s)| {
                s.parse::<i32>().map_err(|_| {
                    let (expected, found) = match s.parse::<f64>() {
                        Ok(_) => ("an integer class id", format!("`{s}`, not an integer")),
                        Err(_) => (
                            "an integer class id (for class names, give the source `label_names: true`)",
                            format!("`{s}`"),
                        ),
                    };
                    csv_err(self.file, *line, self.column(col), expected, &found)
                })
            })
            .collect()
    }

    /// Names map to ids by sorted order. A name that would be ambiguous
    /// where predictions are printed (quotes, backslashes, control
    /// characters, nothing) is refused.
    fn name_labels(&self, raw: &[(usize, String)], col: usize) -> Result<(Vec<i32>, Vec<String>), DataError> {
        let bad = |s: &String| s.is_empty() || s.chars().any(|c| c.is_control() || c == '"' || c == '\\');
        if let Some((line, s)) = raw.iter().find(|(_, s)| bad(s)) {
            let found = if s.is_empty() { "an empty name".to_string() } else { format!("`{}`", s.escape_debug()) };
            let expected = "a class name without quotes, backslashes or control characters";
            return Err(csv_err(self.file, *line, self.column(col), expected, &found));
        }
        let names: Vec<String> = raw.iter().map(|(_, s)| s.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let ids = raw.iter().map(|(_, s)| names.binary_search(s).map_or(-1, |i| i as i32)).collect();
        Ok((ids, names))
    }
}

/// Split one line into fields, honouring double quotes.
fn split_record(line: &str, file: &Path, line_no: usize) -> Result<Vec<String>, DataError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        let col = Some(format!("{}", fields.len() + 1));
        return Err(csv_err(file, line_no, col, "a closing quote", "the end of the line"));
    }
    fields.push(cur);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, kind: LabelKind) -> Result<CsvData, DataError> {
        parse_csv(text, Path::new("t.csv"), Some("label"), kind)
    }

    #[test]
    fn reads_numbers_and_int_labels() {
        let d = parse("a,label,b\n1,2,3\r\n\n 4.5 ,0,-6e-1\n", LabelKind::Integer).expect("valid");
        assert_eq!(d.feature_names, vec!["a", "b"]);
        assert_eq!(d.classes, None);
        let ds = &d.dataset;
        assert_eq!(ds.len(), 2);
        let f = ds.field("features").expect("features");
        assert_eq!(f.data(), &ColumnData::F32(vec![1.0, 3.0, 4.5, -0.6]));
        assert_eq!(ds.field("labels").expect("labels").data(), &ColumnData::I32(vec![2, 0]));
    }

    #[test]
    fn string_labels_map_sorted() {
        let d = parse("x,label\n1,cat\n2,\"dog\"\n3,cat\n", LabelKind::Names).expect("valid");
        assert_eq!(d.classes, Some(vec!["cat".to_string(), "dog".to_string()]));
        let labels = d.dataset.field("labels").expect("labels");
        assert_eq!(labels.data(), &ColumnData::I32(vec![0, 1, 0]));
    }

    #[test]
    fn bad_cell_names_line_and_column() {
        let err = parse("a,label,b\n1,0,2\n3,1,x7\n", LabelKind::Integer).expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("t.csv:3") && msg.contains("column 3 (`b`)") && msg.contains("`x7`"), "{msg}");
        assert_eq!(err.record(), Some(3));
    }

    #[test]
    fn structural_errors() {
        let msg = |t: &str, k| parse(t, k).expect_err("bad").to_string();
        assert!(msg("", LabelKind::Integer).contains("header"));
        assert!(msg("a,b\n1,2\n", LabelKind::Integer).contains("label column named `label`"));
        assert!(msg("a,label\n1,2,3\n", LabelKind::Integer).contains("expected 2 fields"));
        assert!(msg("a,label\n1,cat\n", LabelKind::Integer).contains("integer class id"));
        assert!(msg("a,label\nnan,1\n", LabelKind::Integer).contains("finite"));
        assert!(msg("a,label\n\"1,1\n", LabelKind::Integer).contains("closing quote"));
        assert!(msg("a,a,label\n", LabelKind::Integer).contains("duplicate"));
    }

    #[test]
    fn labels_mean_what_the_dataset_declares() {
        // Float targets stay numbers: a regression column is not classes.
        let d = parse("x,label\n1,0.25\n2,1e3\n", LabelKind::Float).expect("valid");
        assert_eq!(d.dataset.field("labels").expect("labels").data(), &ColumnData::F32(vec![0.25, 1000.0]));
        // One non-integer in an integer column is an error naming it, not a renumbering.
        let msg = parse("x,label\n1,10\n2,3\n3,1.5\n", LabelKind::Integer).expect_err("1.5").to_string();
        assert!(msg.contains("t.csv:4") && msg.contains("`1.5`, not an integer"), "{msg}");
        let msg = parse("x,label\n1,10\n2,cat\n", LabelKind::Integer).expect_err("cat").to_string();
        assert!(msg.contains("t.csv:3") && msg.contains("`cat`") && msg.contains("label_names: true"), "{msg}");
        // A byte order mark is not part of the first column's name.
        let d = parse("\u{feff}x,label\n1,0\n", LabelKind::Integer).expect("valid");
        assert_eq!(d.feature_names, vec!["x"]);
        // No label column: every column is a feature.
        let d = parse_csv("a,b\n1,2\n", Path::new("t.csv"), None, LabelKind::Float).expect("valid");
        assert_eq!(d.feature_names, vec!["a", "b"]);
        assert!(d.dataset.field("labels").is_err());
    }
}
