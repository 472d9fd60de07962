//! CSV with a header row: one label column, every other column a feature.
//!
//! Deliberately small: comma-separated, one record per line, fields may be
//! double-quoted (with `""` for a quote inside), CRLF accepted, blank lines
//! skipped. Multi-line quoted fields are not supported and are reported as
//! an unterminated quote. Gzip is detected by content, as for IDX.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::dataset::{ColumnData, Dataset, Field};
use super::error::DataError;
use super::file::read_maybe_gzip;

/// How to read the label column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelKind {
    /// Integers if every label parses as one, else strings.
    #[default]
    Auto,
    /// Integer class ids, used as they are.
    Integer,
    /// Strings, mapped to ids by sorted order (so the mapping does not depend
    /// on row order).
    String,
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

/// Read `file`, taking `label_column` (a header name) as the label.
pub fn read_csv(file: &Path, label_column: &str, kind: LabelKind) -> Result<CsvData, DataError> {
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
pub fn parse_csv(text: &str, file: &Path, label_column: &str, kind: LabelKind) -> Result<CsvData, DataError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(csv_err(file, 1, None, "a header row", "an empty file"));
    };
    let names = split_record(header, file, header_line)?;
    let label_idx = header_index(&names, label_column, file, header_line)?;
    let ctx = Ctx { file, names: &names };
    let mut features = Vec::new();
    let mut raw_labels: Vec<(usize, String)> = Vec::new();
    for (line, record) in lines {
        let cells = split_record(record, file, line)?;
        if cells.len() != names.len() {
            let expected = format!("{} fields (as in the header)", names.len());
            return Err(csv_err(file, line, None, &expected, &format!("{}", cells.len())));
        }
        for (col, cell) in cells.iter().enumerate() {
            if col == label_idx {
                raw_labels.push((line, cell.trim().to_string()));
            } else {
                features.push(ctx.number(cell, line, col)?);
            }
        }
    }
    let (labels, classes) = ctx.labels(raw_labels, label_idx, kind)?;
    let n = labels.len();
    let feature_names: Vec<String> =
        names.iter().enumerate().filter(|&(i, _)| i != label_idx).map(|(_, s)| s.clone()).collect();
    let dataset = Dataset::new(vec![
        Field::new("features", file, n, vec![feature_names.len()], ColumnData::F32(features))?,
        Field::new("labels", file, n, vec![], ColumnData::I32(labels))?,
    ])?;
    Ok(CsvData { dataset, feature_names, classes })
}

fn csv_err(file: &Path, line: usize, column: Option<String>, expected: &str, found: &str) -> DataError {
    DataError::Csv { file: file.to_path_buf(), line, column, expected: expected.to_string(), found: found.to_string() }
}

fn header_index(names: &[String], label: &str, file: &Path, line: usize) -> Result<usize, DataError> {
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            let col = Some(format!("{} (`{n}`)", i + 1));
            return Err(csv_err(file, line, col, "distinct column names", "a duplicate"));
        }
    }
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
    ) -> Result<(Vec<i32>, Option<Vec<String>>), DataError> {
        let all_int = raw.iter().all(|(_, s)| s.parse::<i32>().is_ok());
        match kind {
            LabelKind::Integer => self.int_labels(&raw, col).map(|v| (v, None)),
            LabelKind::Auto if all_int => self.int_labels(&raw, col).map(|v| (v, None)),
            LabelKind::Auto | LabelKind::String => Ok(string_labels(raw)),
        }
    }

    fn int_labels(&self, raw: &[(usize, String)], col: usize) -> Result<Vec<i32>, DataError> {
        raw.iter()
            .map(|(line, s)| {
                s.parse::<i32>()
                    .map_err(|_| csv_err(self.file, *line, self.column(col), "an integer class id", &format!("`{s}`")))
            })
            .collect()
    }
}

fn string_labels(raw: Vec<(usize, String)>) -> (Vec<i32>, Option<Vec<String>>) {
    let classes: Vec<String> = raw.iter().map(|(_, s)| s.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let ids = raw.iter().map(|(_, s)| classes.binary_search(s).map_or(-1, |i| i as i32)).collect();
    (ids, Some(classes))
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
        parse_csv(text, Path::new("t.csv"), "label", kind)
    }

    #[test]
    fn reads_numbers_and_int_labels() {
        let d = parse("a,label,b\n1,2,3\r\n\n 4.5 ,0,-6e-1\n", LabelKind::Auto).expect("valid");
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
        let d = parse("x,label\n1,cat\n2,\"dog\"\n3,cat\n", LabelKind::Auto).expect("valid");
        assert_eq!(d.classes, Some(vec!["cat".to_string(), "dog".to_string()]));
        let labels = d.dataset.field("labels").expect("labels");
        assert_eq!(labels.data(), &ColumnData::I32(vec![0, 1, 0]));
    }

    #[test]
    fn bad_cell_names_line_and_column() {
        let err = parse("a,label,b\n1,0,2\n3,1,x7\n", LabelKind::Auto).expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("t.csv:3") && msg.contains("column 3 (`b`)") && msg.contains("`x7`"), "{msg}");
        assert_eq!(err.record(), Some(3));
    }

    #[test]
    fn structural_errors() {
        let msg = |t: &str, k| parse(t, k).expect_err("bad").to_string();
        assert!(msg("", LabelKind::Auto).contains("header"));
        assert!(msg("a,b\n1,2\n", LabelKind::Auto).contains("label column named `label`"));
        assert!(msg("a,label\n1,2,3\n", LabelKind::Auto).contains("expected 2 fields"));
        assert!(msg("a,label\n1,cat\n", LabelKind::Integer).contains("integer class id"));
        assert!(msg("a,label\nnan,1\n", LabelKind::Auto).contains("finite"));
        assert!(msg("a,label\n\"1,1\n", LabelKind::Auto).contains("closing quote"));
        assert!(msg("a,a,label\n", LabelKind::Auto).contains("duplicate"));
    }
}
