//! `nnc check` end to end: the summary line and `--types`, the types and
//! shapes the checker hands on (what an editor shows on hover).

use assert_cmd::Command;
use std::path::PathBuf;

fn check(args: &[&str]) -> (String, String) {
    let out = Command::cargo_bin("nnc")
        .unwrap()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "nnc check {args:?} failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

fn scratch_file(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check_cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn types_of_the_examples() {
    for example in ["mnist", "mnist_cnn", "char_gpt", "resnet"] {
        let (types, summary) = check(&["--types", &format!("examples/{example}.nn")]);
        assert!(summary.contains("lowered"), "{summary}");
        insta::assert_snapshot!(format!("types_{example}"), types);
    }
}

/// A generic definition is checked once: its bindings have the signature's
/// dims. A function without a return type is checked generically and at
/// each call, and its lines show each type it was found to have.
#[test]
fn types_are_symbolic_in_generic_definitions_and_per_call_otherwise() {
    let file = scratch_file(
        "generic.nn",
        "fn double(x: f32[B, N]) -> f32[B, 2 * N] {\n    let y = concat([x, x], axis: 1)\n    y\n}\n\
         fn twice(x: f32[...S]) {\n    let y = x * 2.0\n    y\n}\n\
         fn both(a: f32[4, 3], b: f32[5]) -> f32[] {\n    let s = sum(twice(a)) + sum(twice(b))\n    let d = double(a)\n    s + sum(d)\n}\n",
    );
    let (types, _) = check(&["--types", file.to_str().unwrap()]);
    let expected = "\
2:9 y: f32[B, 2*N]
2:13 concat(..): f32[B, 2*N]
6:9 y: f32[...S]
6:9 y: f32[4, 3]
6:9 y: f32[5]
10:9 s: f32[]
10:13 sum(..): f32[]
10:17 twice(..): f32[4, 3]
10:29 sum(..): f32[]
10:33 twice(..): f32[5]
11:9 d: f32[4, 6]
11:13 double(..): f32[4, 6]
12:9 sum(..): f32[]
";
    assert_eq!(types, expected);
}

/// `ids % k` and `ids / k` by a positive constant keep a class count
/// (`min(C, k)`, `ceil(C / k)`), so `label % 2` can be a label; any other
/// arithmetic, or a count that does not fit, is refused where ids are used.
#[test]
fn ids_over_a_constant_keep_a_class_count() {
    let program = |body: &str| format!("fn f(l: i32[B] classes 10) -> f32[B, 3] {{\n    {body}\n}}\n");
    for (i, good) in ["one_hot(l % 3, 3)", "one_hot(l / 4, 3)", "one_hot((l % 20) / 4, 3)"].iter().enumerate() {
        let file = scratch_file(&format!("ids_good_{i}.nn"), &program(good));
        check(&[file.to_str().unwrap()]);
    }
    for (i, bad) in
        ["one_hot(l % 4, 3)", "one_hot(l / 3, 3)", "one_hot(l + 0, 3)", "one_hot(l % 0, 3)"].iter().enumerate()
    {
        let file = scratch_file(&format!("ids_bad_{i}.nn"), &program(bad));
        let out = Command::cargo_bin("nnc").unwrap().env("NO_COLOR", "1").arg("check").arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "`{bad}` was accepted");
    }
}
