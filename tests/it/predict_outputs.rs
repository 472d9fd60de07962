//! Models whose output is not class scores: an autoencoder (784 values a
//! sample, mse), a regression MLP (one value, mse), a binary classifier
//! (one logit, bce_with_logits). `nnc predict` prints what the loss makes
//! the output mean (`--output raw|probs|class`, defaults raw, raw, probs),
//! refuses readings the output has not, and a built executable prints the
//! same bytes; `nnc eval` scores each.

use super::common::{mnist_test, nnc, write_idx};
use std::path::{Path, PathBuf};

const IMAGES: usize = 20;

fn scratch(name: &str) -> PathBuf {
    super::common::scratch("predict_outputs", name)
}

fn stdout(out: std::process::Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The first MNIST test images as an uncompressed IDX file.
fn images(path: &Path) {
    write_idx(path, &[IMAGES, 28, 28], &mnist_test("images", IMAGES, 784));
}

/// Trains `file` briefly in a scratch directory `name`: the directory,
/// the final checkpoint and an IDX file of the first test images.
fn trained(file: &str, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = scratch(name);
    let args = ["run", file, "--train-samples", "1000", "--epochs", "1", "--eval-samples", "100", "--quiet", "--out"];
    stdout(nnc().args(args).arg(dir.join("run")).output().unwrap());
    let input = dir.join("images.idx");
    images(&input);
    let ckpt = dir.join("run/checkpoints/final.safetensors");
    (dir, ckpt, input)
}

fn predict(file: &str, ckpt: &Path, input: &Path, extra: &[&str]) -> std::process::Output {
    predict_all(file, ckpt, &[input], extra)
}

/// `nnc predict` with one file per input of the model.
fn predict_all(file: &str, ckpt: &Path, inputs: &[&Path], extra: &[&str]) -> std::process::Output {
    nnc().args(["predict", file, "--checkpoint"]).arg(ckpt).args(inputs).args(extra).output().unwrap()
}

fn values(text: &str) -> Vec<Vec<f64>> {
    text.lines().map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect()).collect()
}

/// The built executable prints what `nnc predict` prints, in every mode it
/// accepts and with --json (skipped without a C compiler).
fn built_agrees(file: &str, ckpt: &Path, dir: &Path, input: &Path, modes: &[&str]) {
    built_agrees_all(file, ckpt, dir, &[input], modes);
}

fn built_agrees_all(file: &str, ckpt: &Path, dir: &Path, inputs: &[&Path], modes: &[&str]) {
    if !std::process::Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: no C compiler `cc`");
        return;
    }
    let exe = dir.join("model");
    stdout(nnc().args(["build", file, "--checkpoint"]).arg(ckpt).arg("-o").arg(&exe).output().unwrap());
    for mode in modes {
        for json in [false, true] {
            let mut args = vec!["--output", mode];
            if json {
                args.push("--json");
            }
            let jit = stdout(predict_all(file, ckpt, inputs, &args));
            let built = stdout(std::process::Command::new(&exe).args(&args).args(inputs).output().unwrap());
            assert_eq!(built, jit, "{file} --output {mode} json={json}");
        }
    }
}

#[test]
fn an_autoencoder_predicts_its_pixels() {
    let file = "examples/autoencoder.nn";
    let (dir, ckpt, input) = trained(file, "autoencoder");
    let rows = values(&stdout(predict(file, &ckpt, &input, &[])));
    assert_eq!(rows.len(), IMAGES);
    for r in &rows {
        assert_eq!(r.len(), 784);
        assert!(r.iter().all(|p| (0.0..=1.0).contains(p)));
        // Raw pixels, not a softmax: far from summing to 1.
        assert!(r.iter().sum::<f64>() > 10.0, "{}", r.iter().sum::<f64>());
    }
    for mode in ["probs", "class"] {
        let out = predict(file, &ckpt, &input, &["--output", mode]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--output raw"), "{out:?}");
    }
    built_agrees(file, &ckpt, &dir, &input, &["raw"]);
    let eval = stdout(nnc().args(["eval", file, "--samples", "100", "--checkpoint"]).arg(&ckpt).output().unwrap());
    assert!(eval.contains("loss"), "{eval}");
}

#[test]
fn a_regression_model_predicts_values() {
    let file = "tests/fixtures/outputs/regression.nn";
    let (dir, ckpt, input) = trained(file, "regression");
    let rows = values(&stdout(predict(file, &ckpt, &input, &[])));
    assert!(rows.len() == IMAGES && rows.iter().all(|r| r.len() == 1), "{rows:?}");
    // Digits as numbers: spread over a range, not probabilities.
    let spread =
        rows.iter().map(|r| r[0]).fold(f64::MIN, f64::max) - rows.iter().map(|r| r[0]).fold(f64::MAX, f64::min);
    assert!(spread > 2.0, "{rows:?}");
    built_agrees(file, &ckpt, &dir, &input, &["raw"]);
}

#[test]
fn a_binary_classifier_predicts_probabilities() {
    let file = "tests/fixtures/outputs/binary.nn";
    let (dir, ckpt, input) = trained(file, "binary");
    let probs = values(&stdout(predict(file, &ckpt, &input, &[])));
    let logits = values(&stdout(predict(file, &ckpt, &input, &["--output", "raw"])));
    let classes = values(&stdout(predict(file, &ckpt, &input, &["--output", "class"])));
    for ((p, z), c) in probs.iter().zip(&logits).zip(&classes) {
        assert_eq!((p.len(), z.len(), c.len()), (1, 1, 2));
        assert!((p[0] - 1.0 / (1.0 + (-z[0]).exp())).abs() < 1e-6, "{p:?} vs sigmoid({z:?})");
        assert_eq!(c[0], f64::from(u8::from(z[0] > 0.0)));
        assert_eq!(c[1], p[0]);
    }
    // Images 3, 10 and 13 of the test set are the zeros among the first 20:
    // after a short training each is more likely a zero than any other.
    let zeros = [3, 10, 13];
    let least_zero = zeros.iter().map(|&i| probs[i][0]).fold(f64::MAX, f64::min);
    let most_other = (0..IMAGES).filter(|i| !zeros.contains(i)).map(|i| probs[i][0]).fold(f64::MIN, f64::max);
    assert!(least_zero > most_other, "{probs:?}");
    built_agrees(file, &ckpt, &dir, &input, &["raw", "probs", "class"]);
}

/// The first MNIST test labels, each plus `shift` (mod 10), as IDX.
fn labels(path: &Path, count: usize, shift: u8) {
    let shifted: Vec<u8> = mnist_test("labels", count, 1).iter().map(|l| (l + shift) % 10).collect();
    write_idx(path, &[count], &shifted);
}

/// A model that reads two fields of its dataset (a conditional
/// autoencoder: the image and its label) takes one file per field, in the
/// dataset's order; the built executable agrees; a missing file or files
/// of different lengths are errors that say so.
#[test]
fn a_model_of_two_inputs_takes_a_file_for_each() {
    let file = "tests/fixtures/outputs/conditional.nn";
    let (dir, ckpt, images) = trained(file, "conditional");
    let (right, shifted, short) = (dir.join("labels.idx"), dir.join("shifted.idx"), dir.join("short.idx"));
    labels(&right, IMAGES, 0);
    labels(&shifted, IMAGES, 3);
    labels(&short, IMAGES - 1, 0);
    let rows = values(&stdout(predict_all(file, &ckpt, &[&images, &right], &[])));
    assert!(rows.len() == IMAGES && rows.iter().all(|r| r.len() == 784), "{}", rows.len());
    // The label is an input: the same images with other labels rebuild otherwise.
    let other = values(&stdout(predict_all(file, &ckpt, &[&images, &shifted], &[])));
    let diff = rows.iter().flatten().zip(other.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(diff > 1e-3, "the labels made no difference: {diff}");
    let one = predict(file, &ckpt, &images, &[]);
    let err = String::from_utf8_lossy(&one.stderr);
    assert!(one.status.code() == Some(1) && err.contains("2 fields (image, label)"), "{err}");
    let uneven = predict_all(file, &ckpt, &[&images, &short], &[]);
    let err = String::from_utf8_lossy(&uneven.stderr);
    assert!(uneven.status.code() == Some(1) && err.contains(&format!("{} samples, but", IMAGES - 1)), "{err}");
    let twice = predict_all(file, &ckpt, &[Path::new("-"), Path::new("-")], &[]);
    let err = String::from_utf8_lossy(&twice.stderr);
    assert!(twice.status.code() == Some(1) && err.contains("one input only"), "{err}");
    built_agrees_all(file, &ckpt, &dir, &[&images, &right], &["raw"]);
}
