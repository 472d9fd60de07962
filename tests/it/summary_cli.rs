//! `nnc summary` end to end: the layer table (path, model, output shape,
//! parameters) and the totals, on the seed MLP (Keras' counts for the same
//! program: 100,480 and 1,290) and on the char GPT (nested layers).

use assert_cmd::Command;

fn summary(args: &[&str]) -> String {
    let out = Command::cargo_bin("nnc").unwrap().arg("summary").args(args).output().unwrap();
    assert!(out.status.success(), "summary failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The row of layer `path`: its columns.
fn row<'a>(text: &'a str, path: &str) -> Vec<&'a str> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(path));
    line.unwrap_or_else(|| panic!("no row {path} in\n{text}"))
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn the_seed_mlp_has_the_keras_counts() {
    let text = summary(&["examples/mnist.nn"]);
    assert!(text.starts_with("experiment seed_mlp: batch 32\n"), "{text}");
    assert_eq!(row(&text, "(model)"), ["(model)", "Mlp", "f32[32,10]", "101,770"]);
    assert_eq!(row(&text, "l1"), ["l1", "Linear", "f32[32,128]", "100,480"]);
    assert_eq!(row(&text, "l2"), ["l2", "Linear", "f32[32,10]", "1,290"]);
    assert!(text.contains("parameters: 101,770 trained, 0 frozen, 0 in buffers"), "{text}");
    // Forward 2*32*(784*128 + 128*10), and both gradients of each weight
    // but the input's: 3x the forward less the first layer's input gradient.
    let forward = 2 * 32 * (784 * 128 + 128 * 10);
    let flops = 3 * forward - 2 * 32 * 784 * 128;
    assert!(text.contains(&format!("training step: {:.3} GFLOP", flops as f64 / 1e9)), "{text}");
    let wider = summary(&["examples/mnist.nn", "--set", "hidden=256"]);
    assert_eq!(row(&wider, "l1"), ["l1", "Linear", "f32[32,256]", "200,960"]);
}

#[test]
fn the_char_gpt_lists_its_nested_layers() {
    let text = summary(&["examples/char_gpt.nn"]);
    for i in 0..4 {
        let block = row(&text, &format!("blocks.{i}"));
        assert_eq!(&block[1..3], ["Block", "f32[32,64,128]"], "{text}");
        let attn = row(&text, &format!("blocks.{i}.attn"));
        assert_eq!(attn[1], "CausalSelfAttention");
        // Nested one level deeper than the block.
        let indent = |p: &str| {
            let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{p} "))).expect("a row");
            line.len() - line.trim_start().len()
        };
        assert_eq!(indent(&format!("blocks.{i}.attn")), indent(&format!("blocks.{i}")) + 2);
    }
    assert_eq!(row(&text, "tokens")[1..], ["Embedding", "f32[32,64,128]", "16,384"]);
    // Embeddings (128 ids), positions (64), four blocks, the final norm, the head.
    let total = 128 * 128 + 64 * 128 + 4 * 198_272 + 256 + 128 * 128 + 128;
    assert_eq!(row(&text, "(model)")[3].replace(',', ""), total.to_string());
}

#[test]
fn a_file_that_does_not_check_gets_its_diagnostics() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("summary_cli");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.nn");
    std::fs::write(&file, "model M { fn (x: f32[B, 3]) -> f32[B, 4] { x } }\n").unwrap();
    let out = Command::cargo_bin("nnc").unwrap().arg("summary").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("declares f32[B, 4]"), "{out:?}");
}

/// `nnc run` starts with the same summary, and `--quiet` leaves it out.
#[test]
fn a_run_starts_with_the_summary_unless_quiet() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("summary_run");
    let run = |quiet: bool| {
        let mut c = Command::cargo_bin("nnc").unwrap();
        c.args(["run", "examples/mnist.nn", "--epochs", "1", "--train-samples", "64", "--eval-samples", "32"]);
        c.args(["--overwrite", "--out"]).arg(&dir);
        if quiet {
            c.arg("--quiet");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let text = run(false);
    assert!(text.starts_with("experiment seed_mlp: batch 32\n"), "{text}");
    assert_eq!(row(&text, "l1"), ["l1", "Linear", "f32[32,128]", "100,480"]);
    assert!(text.contains("training step: ") && text.contains(" kernels\n"), "{text}");
    assert!(!run(true).contains("experiment seed_mlp: batch"), "--quiet prints no summary");
}
