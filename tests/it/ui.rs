//! UI tests: every `tests/ui/NAME.nn` is a program with one mistake, checked
//! by the real binary as `nnc check tests/ui/NAME.nn` from the crate root
//! with `NO_COLOR=1`. The command must exit with code 1 (an error was
//! reported; not 0, and not 101, a panic), and its stderr must equal
//! `tests/ui/NAME.stderr` exactly.
//!
//! Directives, as comments in the first lines of a case:
//!
//! - `// set: NAME=VALUE` passes `--set NAME=VALUE` (repeatable).
//!
//! Helper modules for multi-file cases live in `tests/ui/aux/`; they are not
//! cases themselves.
//!
//! To (re)write the expected outputs after an intended change of a message:
//!
//! ```text
//! INSTA_UPDATE=always cargo test --release ui
//! ```
//!
//! then read every changed `.stderr` (`git diff tests/ui`) before committing.
//! Blessing never makes a case that exits 0 or panics pass.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const UI_DIR: &str = "tests/ui";

/// How many leading lines may hold directives.
const DIRECTIVE_LINES: usize = 10;

struct Case {
    name: String,
    path: PathBuf,
    sets: Vec<String>,
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(UI_DIR);
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "nn"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            Case { name, sets: directives(&text), path }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// `// set: hidden=abc` lines among the first lines of a case.
fn directives(text: &str) -> Vec<String> {
    text.lines()
        .take(DIRECTIVE_LINES)
        .filter_map(|l| l.trim().strip_prefix("//"))
        .filter_map(|l| l.trim().strip_prefix("set:"))
        .map(|v| v.trim().to_string())
        .collect()
}

/// A line diff good enough to read: common prefix and suffix dropped, the
/// differing middle shown as `-` (expected) and `+` (actual) lines.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let prefix = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let suffix = e[prefix..].iter().rev().zip(a[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
    let mut out = String::new();
    let from = prefix.saturating_sub(2);
    for l in &e[from..prefix] {
        let _ = writeln!(out, "   {l}");
    }
    for l in &e[prefix..e.len() - suffix] {
        let _ = writeln!(out, " - {l}");
    }
    for l in &a[prefix..a.len() - suffix] {
        let _ = writeln!(out, " + {l}");
    }
    for l in e[e.len() - suffix..].iter().take(2) {
        let _ = writeln!(out, "   {l}");
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        let _ = writeln!(out, "   (trailing newline differs)");
    }
    out
}

#[test]
fn ui() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The one blessing switch of the suite, insta's own: see tests/README.md.
    let bless = std::env::var("INSTA_UPDATE").is_ok_and(|v| v == "always");
    let cases = cases();
    assert!(!cases.is_empty(), "no cases in {UI_DIR}");
    let mut failures: Vec<String> = Vec::new();
    let mut blessed = 0;
    for case in &cases {
        let rel = format!("{UI_DIR}/{}.nn", case.name);
        let mut cmd = assert_cmd::Command::cargo_bin("nnc").expect("the nnc binary");
        cmd.current_dir(root).env("NO_COLOR", "1").arg("check").arg(&rel);
        for s in &case.sets {
            cmd.arg("--set").arg(s);
        }
        let out = cmd.output().expect("run nnc");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code();
        if code != Some(1) {
            let why = match code {
                Some(0) => "exit 0: the checker accepted a program with a mistake".to_string(),
                Some(101) => "exit 101: nnc panicked".to_string(),
                Some(c) => format!("exit {c}, expected 1"),
                None => "killed by a signal".to_string(),
            };
            failures.push(format!("{}: {why}\n--- stderr ---\n{stderr}", case.name));
            continue;
        }
        let expected_path = case.path.with_extension("stderr");
        if bless {
            if std::fs::read_to_string(&expected_path).ok().as_deref() != Some(stderr.as_str()) {
                std::fs::write(&expected_path, &stderr)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
                blessed += 1;
            }
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == stderr => {}
            Ok(expected) => failures.push(format!(
                "{}: stderr differs from {} (- expected, + actual)\n{}",
                case.name,
                expected_path.strip_prefix(root).unwrap_or(&expected_path).display(),
                diff(&expected, &stderr)
            )),
            Err(_) => failures.push(format!(
                "{}: no {} (run with INSTA_UPDATE=always to write it)\n--- stderr ---\n{stderr}",
                case.name,
                expected_path.strip_prefix(root).unwrap_or(&expected_path).display()
            )),
        }
    }
    if bless {
        eprintln!("blessed {blessed} of {} cases", cases.len());
    }
    // An expected output whose case is gone is stale.
    let dir = root.join(UI_DIR);
    for entry in std::fs::read_dir(&dir).into_iter().flatten().filter_map(Result::ok) {
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "stderr") && !p.with_extension("nn").is_file() {
            failures.push(format!("{}: stale expected output without a case", p.display()));
        }
    }
    if !failures.is_empty() {
        panic!("{} of {} UI cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n==========\n\n"));
    }
}
