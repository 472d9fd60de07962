//! Weights from PyTorch: `tests/fixtures/torch/make.py` saved two models'
//! `state_dict`s (some tensors f16/bf16, a BatchNorm's int64 counter) and
//! the probabilities PyTorch computes on fixed inputs; loaded through
//! `init_from` + `init_map` (renames, `[out, in]` and OIHW layouts), `nnc
//! predict` must give the same to 1e-5. A mapping that does not fit lists
//! every problem at once.

use super::common::nnc;
use std::path::{Path, PathBuf};

const FIXTURES: &str = "tests/fixtures/torch";

fn scratch(name: &str) -> PathBuf {
    super::common::scratch("torch_import", name)
}

/// `nnc run --epochs 0`: the file's weights loaded and saved as a checkpoint.
fn imported(file: &Path, dir: &Path) -> std::process::Output {
    nnc().args(["run", "--epochs", "0", "--quiet", "--out"]).arg(dir).arg(file).output().unwrap()
}

fn probabilities(file: &Path, ckpt: &Path, input: &Path) -> Vec<Vec<f64>> {
    let out = nnc().args(["predict", "--json", "--checkpoint"]).arg(ckpt).arg(file).arg(input).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["probs"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect()
        })
        .collect()
}

#[test]
fn pytorch_weights_give_pytorchs_outputs() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/expected.json")).unwrap()).unwrap();
    for model in ["mlp", "cnn"] {
        let dir = scratch(model);
        let file = PathBuf::from(format!("{FIXTURES}/{model}.nn"));
        let out = imported(&file, &dir);
        assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
        let got = probabilities(
            &file,
            &dir.join("checkpoints/final.safetensors"),
            Path::new(&format!("{FIXTURES}/{model}_x.csv")),
        );
        let want = expected[model].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            for (a, b) in g.iter().zip(w.as_array().unwrap()) {
                let b = b.as_f64().unwrap();
                assert!((a - b).abs() < 1e-5, "{model}: nnc {a}, PyTorch {b}");
            }
        }
    }
}

#[test]
fn a_mapping_that_does_not_fit_lists_every_problem() {
    let dir = scratch("bad");
    for f in ["mlp.safetensors", "mlp_train.csv"] {
        std::fs::copy(format!("{FIXTURES}/{f}"), dir.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(format!("{FIXTURES}/mlp.nn")).unwrap();
    let text = text
        .replace(r#"{ from: "fc1.weight", to: "l1.w", layout: "linear" }"#, r#"{ from: "fc1.weight", to: "l1.w" }"#)
        .replace(r#"{ from: "fc2.bias", to: "l2.b" }"#, r#"{ from: "fc9.bias", to: "l2.b" }"#)
        .replace(r#"{ skip: "aux" },"#, "");
    let file = dir.join("bad.nn");
    std::fs::write(&file, text).unwrap();
    let out = imported(&file, &dir.join("run"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "`fc1.weight` [16, 12] (mapped to `l1.w`): say its layout",
        "`fc9.bias` (mapped to `l2.b`): not in the file",
        "`aux.weight` [5, 16]: neither mapped nor named like a parameter",
        "`aux.bias` [5]",
        "`fc2.bias` [3]",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
}
