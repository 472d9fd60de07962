//! CSV and text readers on fixture files and the real Shakespeare corpus.

use std::path::{Path, PathBuf};

use nnc::runner::data::{
    BatchPlan, ColumnData, DataError, LabelKind, LastBatch, Order, Samples, Vocab, read_csv, read_text,
    read_text_with_vocab,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data").join(name)
}

fn shakespeare() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/shakespeare/plays.txt")
}

#[test]
fn csv_string_labels_are_mapped_and_recorded() {
    let d = read_csv(&fixture("iris_small.csv"), Some("species"), LabelKind::Names).expect("valid csv");
    assert_eq!(d.feature_names, ["sepal_length", "sepal_width", "petal_length", "petal_width"]);
    assert_eq!(d.classes.as_deref(), Some(&["setosa".to_string(), "versicolor".into(), "virginica".into()][..]));
    let labels = d.dataset.field("labels").expect("labels");
    assert_eq!(labels.data(), &ColumnData::I32(vec![0, 1, 2, 0]));
    d.dataset.check_shape("features", &[4]).expect("4 features");
    d.dataset.check_classes("labels", 3).expect("3 classes");
}

#[test]
fn csv_bad_cell_names_file_line_and_column() {
    let err = read_csv(&fixture("bad_cell.csv"), Some("label"), LabelKind::Integer).expect_err("bad cell");
    assert!(matches!(&err, DataError::Csv { line: 3, .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("bad_cell.csv:3") && msg.contains("column 2 (`pixel1`)"), "{msg}");
    assert!(msg.contains("`oops`") && msg.contains("a finite number"), "{msg}");
}

#[test]
fn csv_integer_label_out_of_range_names_record() {
    let d = read_csv(&fixture("int_labels.csv"), Some("label"), LabelKind::Integer).expect("valid csv");
    let err = d.dataset.check_classes("labels", 10).expect_err("12 >= 10");
    assert_eq!(err.record(), Some(2));
    let msg = err.to_string();
    assert!(msg.contains("int_labels.csv") && msg.contains("record 2") && msg.contains("12"), "{msg}");
}

#[test]
fn csv_missing_file_names_it() {
    let err = read_csv(&fixture("nope.csv"), Some("label"), LabelKind::Integer).expect_err("missing");
    assert!(err.to_string().contains("nope.csv"));
}

#[test]
fn shakespeare_vocab_and_windows() {
    let data = read_text(&shakespeare(), 64, 1).expect("corpus");
    assert_eq!(data.vocab.len(), 75);
    assert_eq!(data.windows.ids().len(), 1_137_041);
    assert_eq!(data.windows.len(), 1_137_041 - 64);
    assert!(data.vocab.chars().windows(2).all(|w| w[0] < w[1]));
    let text = std::fs::read_to_string(shakespeare()).expect("read");
    assert_eq!(data.vocab.decode(data.windows.ids()).as_deref(), Some(text.as_str()));

    // y is x shifted by one, for a random batch.
    let plan = BatchPlan::new(data.windows.len(), 8, LastBatch::Drop, Order::Shuffled { seed: 3 }).expect("plan");
    let mut epoch = plan.epoch(0);
    let idx = epoch.next_batch().expect("batch").to_vec();
    let (mut x, mut y) = (vec![0i32; 8 * 64], vec![0i32; 8 * 64]);
    Samples::gather(&data.windows, "x", &idx, &mut x).expect("x");
    Samples::gather(&data.windows, "y", &idx, &mut y).expect("y");
    for (s, &i) in idx.iter().enumerate() {
        let (xs, ys) = (&x[s * 64..(s + 1) * 64], &y[s * 64..(s + 1) * 64]);
        assert_eq!(&xs[1..], &ys[..63]);
        assert_eq!(xs, &data.windows.ids()[i..i + 64]);
    }
    data.windows.check_classes(data.vocab.len()).expect("ids in range");
    assert!(data.windows.check_classes(data.vocab.len() - 1).is_err());
}

#[test]
fn vocab_saved_and_reloaded_encodes_identically() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("data_formats_vocab");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let data = read_text(&fixture("tiny.txt"), 8, 4).expect("tiny");
    let file = dir.join("vocab.json");
    data.vocab.save(&file).expect("save");
    let vocab = Vocab::load(&file).expect("load");
    assert_eq!(vocab, data.vocab);
    let again = read_text_with_vocab(&fixture("tiny.txt"), &vocab, 8, 4).expect("re-encode");
    assert_eq!(again, data.windows);

    std::fs::write(&file, r#"{"chars": ["a", "a"]}"#).expect("write");
    let msg = Vocab::load(&file).expect_err("duplicate").to_string();
    assert!(msg.contains("vocab.json") && msg.contains("sorted and distinct"), "{msg}");
    // A corpus with a character the vocabulary lacks is refused, naming where.
    let small = Vocab::from_text("abc");
    let err = read_text_with_vocab(&fixture("tiny.txt"), &small, 8, 4).expect_err("unknown char");
    assert!(err.to_string().contains("tiny.txt") && err.to_string().contains("byte 0"), "{err}");
}

#[test]
fn text_too_short_for_a_window() {
    let err = read_text(&fixture("tiny.txt"), 500, 1).expect_err("too short");
    assert!(err.to_string().contains("tiny.txt") && err.to_string().contains("too short"), "{err}");
}
