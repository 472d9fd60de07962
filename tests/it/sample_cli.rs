//! `nnc sample` end to end: a tiny causal language model trained for a few
//! steps on tests/fixtures/data/tiny.txt, sampled twice with one seed (the
//! same text) and with another; a model whose scores look ahead is refused;
//! the generator `nnc build` makes of it prints the same text.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

const CAUSAL: &str = "x |> block |> head";
// Every position sees the window's mean: the scores depend on later tokens.
const LOOKS_AHEAD: &str = "(x + x.mean(axis: 1, keepdim: true)) |> block |> head";

fn program(body: &str) -> String {
    format!(
        r#"use std.nn.{{Embedding, Block, Linear}}
use std.loss.cross_entropy
use std.optim.adam
model Lm {{
    tokens: Embedding(64, 16)
    block: Block(16, 2)
    head: Linear(16, 64)
    fn (ids: i32[B, 8] classes 64) -> f32[B, 8, 64] {{
        let x = tokens(ids)
        {body}
    }}
}}
dataset text8 = text("tiny.txt", context: 8, stride: 1, test_fraction: 0.2) {{
    x: i32[8] classes 64
    y: i32[8] classes 64
}}
experiment lm {{
    model = Lm
    data = text8.train(batch: 4, shuffle: true)
    loss = cross_entropy(model(x), y)
    optimizer = adam(lr: 1e-2)
    epochs = 2
    seed = 3
    eval = text8.test(batch: 4) every epoch
    checkpoint = every epoch
}}
"#
    )
}

/// Trains `body`'s model in a fresh directory: (the .nn file, its checkpoint).
fn trained(name: &str, body: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sample_cli").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy("tests/fixtures/data/tiny.txt", dir.join("tiny.txt")).unwrap();
    let file = dir.join("lm.nn");
    std::fs::write(&file, program(body)).unwrap();
    let run = dir.join("run");
    let out =
        Command::cargo_bin("nnc").unwrap().arg("run").arg(&file).args(["--quiet", "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "training failed: {}", String::from_utf8_lossy(&out.stderr));
    let ckpt = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .max()
        .expect("a checkpoint");
    (file, ckpt)
}

fn sample(file: &Path, ckpt: &Path, seed: &str) -> std::process::Output {
    let mut cmd = Command::cargo_bin("nnc").unwrap();
    cmd.arg("sample").arg(file).arg("--checkpoint").arg(ckpt);
    cmd.args(["--prompt", "To be", "--tokens", "40", "--temperature", "1.0", "--seed", seed]);
    cmd.output().unwrap()
}

fn build(file: &Path, ckpt: &Path, exe: &Path) -> std::process::Output {
    let mut cmd = Command::cargo_bin("nnc").unwrap();
    cmd.arg("build").arg(file).arg("--checkpoint").arg(ckpt).arg("-o").arg(exe).output().unwrap()
}

fn text(out: &std::process::Output) -> String {
    assert!(out.status.success(), "sample failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

#[test]
fn a_seed_gives_the_same_text_and_the_vocabulary_is_the_runs() {
    let (file, ckpt) = trained("causal", CAUSAL);
    let first = text(&sample(&file, &ckpt, "7"));
    assert_eq!(first, text(&sample(&file, &ckpt, "7")), "one seed, two texts");
    assert!(first.starts_with("To be"), "the prompt comes first: {first:?}");
    // The stream ends with a newline of its own, for the terminal.
    let drawn = first["To be".len()..].strip_suffix('\n').expect("a final newline");
    assert_eq!(drawn.chars().count(), 40, "{first:?}");
    // Every character drawn comes from the training text's vocabulary.
    let corpus = std::fs::read_to_string("tests/fixtures/data/tiny.txt").unwrap();
    assert!(drawn.chars().all(|c| corpus.contains(c)), "{drawn:?}");
    let others: Vec<String> = ["8", "9", "10"].iter().map(|s| text(&sample(&file, &ckpt, s))).collect();
    assert!(others.iter().any(|o| *o != first), "four seeds, one text: {first:?}");
}

#[test]
fn a_model_that_looks_ahead_is_refused() {
    let (file, ckpt) = trained("looks_ahead", LOOKS_AHEAD);
    let out = sample(&file, &ckpt, "7");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not causal"), "{err}");
    assert!(out.stdout.is_empty() || String::from_utf8_lossy(&out.stdout) == "To be", "no tokens drawn");
    let build = build(&file, &ckpt, &file.with_file_name("never_built"));
    assert_eq!(build.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&build.stderr).contains("not causal"), "{build:?}");
    assert!(!file.with_file_name("never_built").exists());
}

/// `nnc build` of a language model is a text generator that prints what
/// `nnc sample` prints, for every way of drawing, past the window too (40
/// tokens after a 5-character prompt in a window of 8), the prompt given as
/// an argument or on stdin.
#[test]
fn a_built_generator_writes_what_nnc_sample_writes() {
    let (file, ckpt) = trained("built", CAUSAL);
    let exe = file.with_file_name("lm_generator");
    let out = build(&file, &ckpt, &exe);
    assert!(out.status.success(), "build failed: {}", String::from_utf8_lossy(&out.stderr));
    let draws: [&[&str]; 4] = [
        &["--temperature", "1.0", "--seed", "7"],
        &["--temperature", "1.0", "--seed", "8", "--top-k", "3"],
        &["--temperature", "0.7", "--seed", "9", "--top-p", "0.9"],
        &["--temperature", "0"],
    ];
    for how in draws {
        let mut sample = Command::cargo_bin("nnc").unwrap();
        sample.arg("sample").arg(&file).arg("--checkpoint").arg(&ckpt).args(["--prompt", "To be", "--tokens", "40"]);
        let want = text(&sample.args(how).output().unwrap());
        let got = text(&Command::new(&exe).args(["To be", "--tokens", "40"]).args(how).output().unwrap());
        assert_eq!(got, want, "{how:?}");
    }
    let piped = Command::new(&exe).args(["-", "--tokens", "40", "--temperature", "0"]).write_stdin("To be").output();
    let mut sample = Command::cargo_bin("nnc").unwrap();
    sample.arg("sample").arg(&file).arg("--checkpoint").arg(&ckpt).args(["--prompt", "To be", "--tokens", "40"]);
    assert_eq!(text(&piped.unwrap()), text(&sample.args(["--temperature", "0"]).output().unwrap()));
    let bad = Command::new(&exe).arg("To be\u{1F600}").output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not in the model's vocabulary"), "{bad:?}");
}
