//! `nnc eval` end to end: a checkpoint's metrics agree with the run's own
//! evaluation of those weights (full batches and a partial last batch, a
//! model with BatchNorm buffers), another split evaluates too, and
//! checkpoints that do not fit are refused with each problem listed.

use super::common::nnc;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    super::common::scratch("eval_cli", name)
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn train(dir: &Path, file: &str, extra: &[&str]) -> serde_json::Value {
    let out = nnc().args(["run", file, "--epochs", "1", "--quiet", "--out"]).arg(dir).args(extra).output().unwrap();
    ok(&out);
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn eval(file: &str, ckpt: &Path, extra: &[&str]) -> serde_json::Value {
    let out = nnc().args(["eval", file, "--json", "--checkpoint"]).arg(ckpt).args(extra).output().unwrap();
    serde_json::from_str(ok(&out).trim()).unwrap()
}

#[test]
fn eval_gives_the_numbers_of_the_runs_own_evaluation() {
    let dir = scratch("mlp");
    // 1,300 samples: one full batch of 1,000 and a partial one.
    let run = train(&dir, "examples/mnist.nn", &["--train-samples", "2000", "--eval-samples", "1300"]);
    let ckpt = dir.join("checkpoints/final.safetensors");
    let got = eval("examples/mnist.nn", &ckpt, &["--samples", "1300"]);
    assert_eq!(got["split"], "test");
    assert_eq!(got["samples"], 1300);
    assert_eq!(got["metrics"], run["eval"], "eval differs from the run's evaluation");
    assert!(run["eval"]["accuracy"].as_f64().unwrap() > 0.8, "{run}");
    // The training split evaluates too, and on the data the run trained on
    // the loss is not that of the test split.
    let on_train = eval("examples/mnist.nn", &ckpt, &["--split", "train", "--samples", "700"]);
    assert_eq!(on_train["split"], "train");
    assert_eq!(on_train["samples"], 700);
    assert_ne!(on_train["metrics"]["loss"], got["metrics"]["loss"]);
    // The human line names the experiment, split and metrics.
    let line = ok(&nnc()
        .args(["eval", "examples/mnist.nn", "--samples", "1300", "--checkpoint"])
        .arg(&ckpt)
        .output()
        .unwrap());
    assert!(line.starts_with("seed_mlp on test (1300 samples"), "{line}");
    assert!(line.contains("accuracy"), "{line}");
}

#[test]
fn eval_reads_the_buffers_batchnorm_keeps() {
    let dir = scratch("resnet");
    let run = train(&dir, "examples/resnet.nn", &["--train-samples", "128", "--eval-samples", "96"]);
    let got = eval("examples/resnet.nn", &dir.join("checkpoints/final.safetensors"), &["--samples", "96"]);
    assert_eq!(got["metrics"], run["eval"]);
}

#[test]
fn a_checkpoint_of_another_model_is_refused_listing_each_problem() {
    let dir = scratch("other");
    train(&dir, "examples/mnist.nn", &["--train-samples", "64", "--eval-samples", "10", "--set", "hidden=32"]);
    let out = nnc()
        .args(["eval", "examples/mnist.nn", "--checkpoint"])
        .arg(dir.join("checkpoints/final.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("l1.w") && err.contains("l2.w") && err.contains("[784, 128]"), "{err}");
    let missing = nnc().args(["eval", "examples/mnist.nn", "--checkpoint", "no/such.safetensors"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such.safetensors"));
}
