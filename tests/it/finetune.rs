//! `examples/finetune.nn` as its header says to run it, in a scratch copy
//! of the repository layout: pretraining on digits, then a new parity head
//! on frozen features from its checkpoint, against the same network trained
//! from scratch on the same 1,000 images.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn layout() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("finetune");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("examples")).unwrap();
    std::fs::copy("examples/finetune.nn", root.join("examples/finetune.nn")).unwrap();
    std::os::unix::fs::symlink(std::fs::canonicalize("data").unwrap(), root.join("data")).unwrap();
    root
}

fn run(root: &Path, experiment: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::cargo_bin("nnc")
        .unwrap()
        .current_dir(root)
        .args(["run", "examples/finetune.nn", "--quiet", "--experiment", experiment, "--out"])
        .arg(format!("runs/{experiment}"))
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{experiment}: {}", String::from_utf8_lossy(&out.stderr));
    let summary = std::fs::read_to_string(root.join(format!("runs/{experiment}/summary.json"))).unwrap();
    serde_json::from_str(&summary).unwrap()
}

fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect();
    all.sort();
    all
}

#[test]
fn a_frozen_pretrained_backbone_carries_a_new_head() {
    let root = layout();
    let pre = run(&root, "pretrain", &["--epochs", "1", "--eval-samples", "500"]);
    assert!(pre["eval"]["accuracy"].as_f64().unwrap() > 0.85, "{pre}");
    let tuned = run(&root, "finetune", &["--eval-samples", "2000"]);
    let scratch = run(&root, "scratch", &["--eval-samples", "2000"]);
    let (t, s) = (tuned["eval"]["accuracy"].as_f64().unwrap(), scratch["eval"]["accuracy"].as_f64().unwrap());
    assert!(t > 0.9 && t > s, "fine-tuned {t}, from scratch {s}");
    // The features are the pretrained ones, bit for bit; the head trained.
    let before = tensors(&root.join("runs/pretrain/checkpoints/final.safetensors"));
    let after = tensors(&root.join("runs/finetune/checkpoints/final.safetensors"));
    let features = |all: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        all.iter().filter(|(n, _)| n.starts_with("features.") && !n.contains('@')).cloned().collect()
    };
    assert_eq!(features(&before).len(), 4);
    assert_eq!(features(&before), features(&after));
    assert!(after.iter().any(|(n, _)| n == "parity.w"));
}
