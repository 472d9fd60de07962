//! No-panic fuzzing of the front end: random mutations of every file in
//! `examples/` and `std/` are parsed, resolved, checked and rendered, and
//! every mutant must end in success or diagnostics: never a panic, never a
//! hang (each case gets [`CASE_LIMIT`] of wall time).
//!
//! Mutations are byte- and token-level: delete, duplicate, swap or replace
//! ranges, insert random bytes (high bytes included, so the text goes
//! through `String::from_utf8_lossy` with split multi-byte characters) or
//! tokens of the language. Cases are deterministic per seed: proptest
//! generates the edits, and a failure is shrunk to a minimal edit list and
//! reported with the mutated text.
//!
//! `NNC_FUZZ_CASES=100000 cargo test --release --test fuzz_check` runs longer;
//! a debug build (`cargo test --test fuzz_check`) also catches arithmetic
//! overflow. `NNC_FUZZ_KNOWN=text|text` lets failures whose report contains
//! one of the texts pass, to look for further bugs past a known one.
//! A panic found here becomes a named regression test at the bottom of this
//! file, with the literal text.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The corpus, under the names the files have in the repository so relative
/// imports resolve from the crate root as they would for `nnc check`.
const CORPUS: &[(&str, &str)] = &[
    ("examples/mnist.nn", include_str!("../../examples/mnist.nn")),
    ("examples/mnist_cnn.nn", include_str!("../../examples/mnist_cnn.nn")),
    ("examples/mnist_sweep.nn", include_str!("../../examples/mnist_sweep.nn")),
    ("examples/char_gpt.nn", include_str!("../../examples/char_gpt.nn")),
    ("std/nn.nn", include_str!("../../std/nn.nn")),
    ("std/init.nn", include_str!("../../std/init.nn")),
    ("std/loss.nn", include_str!("../../std/loss.nn")),
    ("std/metrics.nn", include_str!("../../std/metrics.nn")),
    ("std/optim.nn", include_str!("../../std/optim.nn")),
    ("std/schedule.nn", include_str!("../../std/schedule.nn")),
];

/// Tokens of the language (and a few near misses) to splice in.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ";",
    ".",
    "...",
    "...S",
    "@",
    "|>",
    "-",
    "+",
    "*",
    "/",
    "%",
    "^",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "!",
    "->",
    "f32[",
    "i32[",
    "u8[",
    "bool[",
    "int",
    "dims",
    "init",
    "let",
    "fn",
    "model",
    "optimizer",
    "dataset",
    "experiment",
    "use",
    "state",
    "update",
    "if",
    "else",
    "true",
    "false",
    "sweep",
    "as",
    "every",
    "classes",
    "epoch",
    "steps",
    "std",
    "std.nn",
    "B",
    "N",
    "S",
    "T",
    "x",
    "y",
    "w",
    "model",
    "hidden",
    "relu",
    "Linear",
    "zeros",
    "glorot",
    "0",
    "1",
    "-1",
    "2",
    "3",
    "10",
    "784",
    "0.0",
    "1e-3",
    "1e",
    "9999999999999999999999",
    "-9223372036854775808",
    "2147483648",
    "9223372036854775807",
    "* 9223372036854775807",
    "\"",
    "\"data/mnist\"",
    "//",
    "/*",
    "*/",
    "\n",
    " ",
    "\t",
    "é",
    "→",
    "😀",
    "\u{0}",
    "\r",
    "x[..., -1]",
    "x[:, 0:5]",
    "[B, 784]",
    "f32[B, 28, 28]",
    "f32[...S, N]",
    "f32[]",
    "fn (x: f32[B, N]) -> f32[B, N] { x }",
    "every 0 steps",
    "axis: 7",
    "keepdim: true",
];

/// `--set` values, mostly bad, applied to some cases.
const OVERRIDES: &[&str] = &[
    "hidden=0",
    "hidden=-1",
    "hidden=abc",
    "hidden=9223372036854775807",
    "d=0",
    "heads=0",
    "heads=3",
    "context=0",
    "vocab=1",
    "lr=nan",
    "lr=1e400",
    "drop=2",
    "n_layers=0",
    "=1",
    "x",
    "n_layers=-5",
    "d=1",
    "context=-1",
];

/// Long enough for the largest program a mutant can legally reach (a stack
/// of 2020 GPT blocks, from a number in a comment, lowers in about 3 s on a
/// loaded 2-core machine), short enough to call anything slower a hang. A
/// case that once took 2 s only because `Graph::set_output` searched its
/// outputs linearly is what the printed slowest case is for.
const CASE_LIMIT: Duration = Duration::from_secs(8);

/// One edit. Positions are raw numbers taken modulo the current length, so
/// shrinking an edit (towards 0) keeps it meaningful.
#[derive(Clone, Debug)]
enum Edit {
    Delete {
        at: u32,
        len: u16,
    },
    Duplicate {
        from: u32,
        len: u16,
        to: u32,
    },
    Swap {
        a: u32,
        b: u32,
        len_a: u16,
        len_b: u16,
    },
    InsertBytes {
        at: u32,
        bytes: Vec<u8>,
    },
    InsertToken {
        at: u32,
        token: u16,
    },
    /// A run of one byte (a letter, a digit, a space, a quote...): the
    /// generated identifiers, literals and lines of 100,000 characters that
    /// once crashed the diagnostic renderer.
    InsertRun {
        at: u32,
        byte: u8,
        len: u32,
    },
    ReplaceWithToken {
        at: u32,
        len: u16,
        token: u16,
    },
    /// Token-level: act on whole lexical tokens rather than bytes.
    DeleteTokens {
        at: u32,
        count: u8,
    },
    DuplicateToken {
        at: u32,
        to: u32,
    },
    SwapTokens {
        a: u32,
        b: u32,
    },
    /// Replace a name or number by another one (from the text itself when
    /// `with` is even, else from [`WORDS`]): mostly still parses, so it
    /// exercises the resolver and the checker rather than the parser.
    ReplaceWord {
        at: u32,
        with: u32,
    },
}

/// Names and numbers for [`Edit::ReplaceWord`].
const WORDS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "-1",
    "4",
    "7",
    "10",
    "28",
    "784",
    "0.0",
    "0.5",
    "1.0",
    "1e-9",
    "1e30",
    "9223372036854775807",
    "B",
    "N",
    "S",
    "C",
    "T",
    "x",
    "y",
    "p",
    "g",
    "t",
    "w",
    "b",
    "d",
    "heads",
    "hidden",
    "context",
    "vocab",
    "true",
    "false",
    "int",
    "dims",
    "init",
    "model",
    "relu",
    "gelu",
    "softmax",
    "Linear",
    "Block",
    "LayerNorm",
    "Embedding",
    "Conv2d",
    "max_pool",
    "dropout",
    "cross_entropy",
    "accuracy",
    "adam",
    "sgd",
    "zeros",
    "glorot",
    "cosine",
    "train",
    "test",
    "rank",
    "step",
    "total",
    "epoch",
];

fn edit() -> impl Strategy<Value = Edit> {
    let len = prop_oneof![3 => 1u16..8, 2 => 1u16..64, 1 => 1u16..2000];
    prop_oneof![
        3 => (any::<u32>(), len.clone()).prop_map(|(at, len)| Edit::Delete { at, len }),
        2 => (any::<u32>(), len.clone(), any::<u32>()).prop_map(|(from, len, to)| Edit::Duplicate { from, len, to }),
        1 => (any::<u32>(), any::<u32>(), len.clone(), len.clone())
            .prop_map(|(a, b, len_a, len_b)| Edit::Swap { a, b, len_a, len_b }),
        2 => (any::<u32>(), prop::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(at, bytes)| Edit::InsertBytes { at, bytes }),
        4 => (any::<u32>(), any::<u16>()).prop_map(|(at, token)| Edit::InsertToken { at, token }),
        1 => (any::<u32>(), prop::sample::select(b"a9 _.\"(+".to_vec()), 60u32..120_000)
            .prop_map(|(at, byte, len)| Edit::InsertRun { at, byte, len }),
        2 => (any::<u32>(), 1u16..12, any::<u16>()).prop_map(|(at, len, token)| Edit::ReplaceWithToken { at, len, token }),
        3 => (any::<u32>(), 1u8..4).prop_map(|(at, count)| Edit::DeleteTokens { at, count }),
        2 => (any::<u32>(), any::<u32>()).prop_map(|(at, to)| Edit::DuplicateToken { at, to }),
        2 => (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Edit::SwapTokens { a, b }),
        8 => (any::<u32>(), any::<u32>()).prop_map(|(at, with)| Edit::ReplaceWord { at, with }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    file: usize,
    edits: Vec<Edit>,
    overrides: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    let word = (any::<u32>(), any::<u32>()).prop_map(|(at, with)| Edit::ReplaceWord { at, with });
    (
        0..CORPUS.len(),
        // Half the cases only swap names and numbers, so they mostly parse
        // and reach the checker; the others mix every kind of edit.
        prop_oneof![prop::collection::vec(edit(), 1..5), prop::collection::vec(word, 1..4)],
        prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 1..3)],
    )
        .prop_map(|(file, edits, overrides)| Case { file, edits, overrides })
}

/// Byte ranges of the lexical tokens of `text` (whitespace excluded):
/// identifiers and numbers, strings, comments, and punctuation runs split
/// into single characters.
fn tokens(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' {
            while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'_' || text[i] == b'.') {
                i += 1;
            }
        } else if c == b'"' {
            i += 1;
            while i < text.len() && text[i] != b'"' && text[i] != b'\n' {
                i += 1;
            }
            i = (i + 1).min(text.len());
        } else if text[i..].starts_with(b"//") {
            while i < text.len() && text[i] != b'\n' {
                i += 1;
            }
        } else {
            i += 1;
        }
        out.push((start, i));
    }
    out
}

fn at(pos: u32, len: usize) -> usize {
    if len == 0 { 0 } else { pos as usize % (len + 1) }
}

fn range(pos: u32, n: u16, len: usize) -> (usize, usize) {
    let a = at(pos, len);
    (a, (a + n as usize).min(len))
}

/// Entry `i` (wrapping) of `list` followed by every builtin's name, taken
/// from the compiler's own table so a new builtin is fuzzed too.
fn pick(list: &'static [&'static str], i: usize) -> &'static str {
    let builtins: Vec<&'static str> = nnc::builtins::Builtin::all().map(|b| b.name()).collect();
    let k = i % (list.len() + builtins.len());
    list.get(k).copied().unwrap_or_else(|| builtins[k - list.len()])
}

fn token(i: u16) -> &'static [u8] {
    pick(TOKENS, i as usize).as_bytes()
}

fn apply(text: &mut Vec<u8>, e: &Edit) {
    let n = text.len();
    match e {
        Edit::Delete { at, len } => {
            let (a, b) = range(*at, *len, n);
            text.drain(a..b);
        }
        Edit::Duplicate { from, len, to } => {
            let (a, b) = range(*from, *len, n);
            let piece = text[a..b].to_vec();
            let t = at(*to, n);
            text.splice(t..t, piece);
        }
        Edit::Swap { a, b, len_a, len_b } => {
            let (a0, a1) = range(*a, *len_a, n);
            let (b0, b1) = range(*b, *len_b, n);
            let ((x0, x1), (y0, y1)) = if a0 <= b0 { ((a0, a1), (b0, b1)) } else { ((b0, b1), (a0, a1)) };
            if x1 > y0 {
                return; // overlapping: nothing sensible to swap
            }
            let mut out = Vec::with_capacity(n);
            out.extend_from_slice(&text[..x0]);
            out.extend_from_slice(&text[y0..y1]);
            out.extend_from_slice(&text[x1..y0]);
            out.extend_from_slice(&text[x0..x1]);
            out.extend_from_slice(&text[y1..]);
            *text = out;
        }
        Edit::InsertBytes { at: p, bytes } => {
            let t = at(*p, n);
            text.splice(t..t, bytes.iter().copied());
        }
        Edit::InsertToken { at: p, token: k } => {
            let t = at(*p, n);
            text.splice(t..t, token(*k).iter().copied());
        }
        Edit::InsertRun { at: p, byte, len } => {
            let t = at(*p, n);
            text.splice(t..t, std::iter::repeat_n(*byte, *len as usize));
        }
        Edit::ReplaceWithToken { at: p, len, token: k } => {
            let (a, b) = range(*p, *len, n);
            text.splice(a..b, token(*k).iter().copied());
        }
        Edit::DeleteTokens { at: p, count } => {
            let toks = tokens(text);
            if toks.is_empty() {
                return;
            }
            let i = *p as usize % toks.len();
            let j = (i + *count as usize - 1).min(toks.len() - 1);
            text.drain(toks[i].0..toks[j].1);
        }
        Edit::DuplicateToken { at: p, to } => {
            let toks = tokens(text);
            if toks.is_empty() {
                return;
            }
            let (a, b) = toks[*p as usize % toks.len()];
            let mut piece = text[a..b].to_vec();
            piece.push(b' ');
            let t = toks[*to as usize % toks.len()].0;
            text.splice(t..t, piece);
        }
        Edit::ReplaceWord { at: p, with } => {
            let words: Vec<(usize, usize)> =
                tokens(text).into_iter().filter(|&(a, _)| text[a].is_ascii_alphanumeric() || text[a] == b'_').collect();
            if words.is_empty() {
                return;
            }
            let (a, b) = words[*p as usize % words.len()];
            let new = if with % 2 == 0 {
                let (c, d) = words[(*with / 2) as usize % words.len()];
                text[c..d].to_vec()
            } else {
                pick(WORDS, (*with / 2) as usize).as_bytes().to_vec()
            };
            text.splice(a..b, new);
        }
        Edit::SwapTokens { a, b } => {
            let toks = tokens(text);
            if toks.is_empty() {
                return;
            }
            let (mut x, mut y) = (toks[*a as usize % toks.len()], toks[*b as usize % toks.len()]);
            if x.0 > y.0 {
                std::mem::swap(&mut x, &mut y);
            }
            if x == y || x.1 > y.0 {
                return;
            }
            let mut out = Vec::with_capacity(n);
            out.extend_from_slice(&text[..x.0]);
            out.extend_from_slice(&text[y.0..y.1]);
            out.extend_from_slice(&text[x.1..y.0]);
            out.extend_from_slice(&text[x.0..x.1]);
            out.extend_from_slice(&text[y.1..]);
            *text = out;
        }
    }
}

fn mutant(c: &Case) -> (&'static str, String, Vec<String>) {
    let (name, text) = CORPUS[c.file];
    let mut bytes = text.as_bytes().to_vec();
    for e in &c.edits {
        apply(&mut bytes, e);
    }
    let overrides = c.overrides.iter().map(|&i| OVERRIDES[i as usize % OVERRIDES.len()].to_string()).collect();
    (name, String::from_utf8_lossy(&bytes).into_owned(), overrides)
}

// ---- running one input ----------------------------------------------------

thread_local! {
    /// Where the last panic on this thread happened, recorded by the hook.
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

const WORKER: &str = "nnc-fuzz-case";

/// Keep the default hook for everything but fuzz workers, whose panics are
/// expected to be caught and reported with their input instead.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(WORKER) {
                let mut loc = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                // A panic inside core or std (an overflow in `product`, an
                // index out of bounds) is located by its innermost caller in src/.
                if loc.as_deref().is_some_and(|l| !l.starts_with("src/")) {
                    let bt = std::backtrace::Backtrace::force_capture().to_string();
                    if let Some(caller) =
                        bt.lines().map(str::trim).find(|l| l.starts_with("at ./src/") || l.starts_with("at src/"))
                    {
                        loc = loc.map(|l| {
                            format!("{l}, called from {}", caller.trim_start_matches("at ./").trim_start_matches("at "))
                        });
                    }
                }
                PANIC_AT.with(|p| *p.borrow_mut() = loc);
            } else {
                default(info);
            }
        }));
    });
}

fn payload_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// Run `f` on a worker thread with a deadline. `Err` says how it panicked
/// (message and location) or that it did not finish in time.
fn guarded(limit: Duration, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    install_hook();
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::Builder::new()
        .name(WORKER.into())
        .stack_size(16 << 20)
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
                let at = PANIC_AT.with(|a| a.borrow_mut().take()).unwrap_or_else(|| "unknown location".into());
                format!("panicked at {at}: {}", payload_message(&*p))
            });
            let _ = tx.send(r);
        })
        .expect("spawn a worker");
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        // The worker is left running; the test fails and the process ends.
        Err(_) => Err(format!("no result after {:?} (a hang?)", start.elapsed())),
    }
}

/// Check and render `text` as the file `name`; `Err` describes a panic or a
/// hang, with the input.
fn check_one(name: &str, text: &str, overrides: &[String]) -> Result<(), String> {
    let (n, t, o) = (name.to_string(), text.to_string(), overrides.to_vec());
    guarded(CASE_LIMIT, move || {
        let out = nnc::check_source(&n, &t, &o);
        let rendered = nnc::diag::render_all(&out.sources, &out.diags, nnc::diag::Style::Plain);
        std::hint::black_box(rendered);
    })
    .map_err(|what| {
        format!("{what}\n  file: {name}\n  overrides: {overrides:?}\n  text ({} bytes):\n{text:?}", text.len())
    })
}

/// How the mutants fare, to see that fuzzing reaches past the parser:
/// `cargo test --release --test fuzz_check -- --ignored --nocapture`.
#[test]
#[ignore]
fn mutant_stats() {
    let mut runner = TestRunner::new(Config { failure_persistence: None, ..Config::default() });
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for _ in 0..2000 {
        let c = case().new_tree(&mut runner).expect("a case").current();
        let (name, text, overrides) = mutant(&c);
        let out = nnc::check_source(name, &text, &overrides);
        let kind = match out.diags.first() {
            None => "accepted".to_string(),
            Some(d) if d.message.starts_with("expected") && d.message.contains(", found") => "syntax error".into(),
            Some(d) => format!("checker: {}", d.message.split(['`', ':']).next().unwrap_or("").trim()),
        };
        *counts.entry(kind).or_default() += 1;
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by_key(|b| std::cmp::Reverse(b.1));
    for (k, n) in v {
        eprintln!("{n:6}  {k}");
    }
}

/// Print mutants whose diagnostics contain `NNC_FUZZ_FIND`, to study a
/// suspicious message the stats show:
/// `NNC_FUZZ_FIND='do not broadcast' cargo test --release --test fuzz_check find -- --ignored --nocapture`.
#[test]
#[ignore]
fn find_mutants_with_message() {
    let Ok(needle) = std::env::var("NNC_FUZZ_FIND") else { return };
    let mut runner = TestRunner::new(Config { failure_persistence: None, ..Config::default() });
    let mut shown = 0;
    for _ in 0..200_000 {
        let c = case().new_tree(&mut runner).expect("a case").current();
        let (name, text, overrides) = mutant(&c);
        let out = nnc::check_source(name, &text, &overrides);
        if out.diags.iter().any(|d| d.message.contains(&needle)) {
            eprintln!(
                "===== {name} {overrides:?} {:?}\n{}",
                c.edits,
                nnc::diag::render_all(&out.sources, &out.diags, nnc::diag::Style::Plain)
            );
            shown += 1;
            if shown == 3 {
                break;
            }
        }
    }
}

fn cases_wanted() -> u32 {
    std::env::var("NNC_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// The harness itself: a panic is caught with its message and location, and
/// a case that does not finish is reported rather than waited for.
#[test]
fn harness_reports_panics_and_hangs() {
    let e = guarded(CASE_LIMIT, || panic!("boom {}", 42)).unwrap_err();
    assert!(e.contains("boom 42") && e.contains("fuzz_check.rs"), "{e}");
    let e = guarded(Duration::from_millis(50), || std::thread::sleep(Duration::from_secs(1))).unwrap_err();
    assert!(e.contains("a hang"), "{e}");
}

#[test]
fn unmutated_corpus_checks() {
    for (name, text) in CORPUS {
        if let Err(e) = check_one(name, text, &[]) {
            panic!("{e}");
        }
    }
}

#[test]
fn mutants_never_panic() {
    let config =
        Config { cases: cases_wanted(), failure_persistence: None, max_shrink_iters: 4096, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let start = Instant::now();
    // `NNC_FUZZ_KNOWN=a|b`: failures whose report contains `a` or `b` (a
    // location, a message) are counted but pass, to look past known bugs.
    let known: Vec<String> = std::env::var("NNC_FUZZ_KNOWN")
        .map(|v| v.split('|').filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let skipped = std::sync::atomic::AtomicUsize::new(0);
    // The slowest case, printed so that a drift towards CASE_LIMIT shows
    // before it fails on a loaded machine.
    let slowest = std::sync::Mutex::new((Duration::ZERO, String::new()));
    let result = runner.run(&case(), |c| {
        let (name, text, overrides) = mutant(&c);
        let t = Instant::now();
        let r = check_one(name, &text, &overrides);
        if let Ok(mut s) = slowest.lock()
            && t.elapsed() > s.0
        {
            *s = (t.elapsed(), format!("{name}, {:?}", c.edits));
        }
        match r {
            Err(e) if known.iter().any(|k| e.contains(k.as_str())) => {
                skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            r => r.map_err(TestCaseError::fail),
        }
    });
    let (slow, which) = slowest.into_inner().unwrap_or_default();
    let which: String = which.chars().take(200).collect();
    eprintln!(
        "fuzz_check: {} cases in {:.1?}, the slowest {slow:.1?} ({which}){}",
        cases_wanted(),
        start.elapsed(),
        if known.is_empty() { String::new() } else { format!(", {} known failures passed", skipped.into_inner()) }
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---- regressions: minimal inputs that once panicked -----------------------

fn assert_no_panic(name: &str, text: &str, overrides: &[&str]) {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    if let Err(e) = check_one(name, text, &overrides) {
        panic!("{e}");
    }
}

/// `nnc check examples/mnist.nn --set hidden=9223372036854775807`: an
/// element count overflows i64 (`attempt to multiply with overflow` in
/// debug builds; in release it silently wraps).
#[test]
fn regression_huge_hidden_override() {
    assert_no_panic("examples/mnist.nn", include_str!("../../examples/mnist.nn"), &["hidden=9223372036854775807"]);
}

/// `batch: 9223372036854775807` in an experiment's data split: an element
/// count overflows i64 while lowering (`attempt to multiply with overflow`
/// in debug builds; in release it silently wraps).
#[test]
fn regression_huge_batch() {
    let text = include_str!("../../examples/mnist.nn").replace("batch: 32", "batch: 9223372036854775807");
    assert!(text.contains("9223372036854775807"));
    assert_no_panic("examples/mnist.nn", &text, &[]);
}

/// `let n_layers = 9223372036854775807` in examples/char_gpt.nn: lowering
/// unrolls the stack `[Block(...); n_layers]` one block at a time and never
/// finishes (`--set n_layers=100000` already takes over 4 GB and 20 s).
/// Run as a child process, which the timeout kills, so a hang does not keep
/// eating memory beside the other tests.
#[test]
fn regression_huge_stack_count() {
    let out = assert_cmd::Command::cargo_bin("nnc")
        .expect("the nnc binary")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .args(["check", "examples/char_gpt.nn", "--set", "n_layers=9223372036854775807"])
        .timeout(Duration::from_secs(5))
        .output()
        .expect("run nnc");
    assert!(
        out.status.code() == Some(1),
        "expected a diagnostic and exit 1 within 5 s, got {:?} (killed by the timeout if None)\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An error on a line of 100,000 characters: miette pads its label arrows
/// with a formatting width, which panicked ("Formatting argument out of
/// range", exit 101) past column 65535.
#[test]
fn regression_very_long_lines() {
    let far = format!("fn f(x: f32[N]) -> f32[N] {{ {} x + yy }}", " ".repeat(100_000));
    let name = format!("let x = {}", "a".repeat(100_000));
    let literal = format!("fn f(x: f32[N]) -> f32[N] {{ x + {} }}", "1".repeat(100_000));
    for text in [far, name, literal] {
        let out = nnc::check_source("long.nn", &text, &[]);
        assert!(!out.diags.is_empty(), "each case has a mistake");
        let shown = nnc::diag::render_all(&out.sources, &out.diags, nnc::diag::Style::Plain);
        assert!(shown.len() < 2000, "a diagnostic names the place without drawing the line:\n{shown}");
        assert!(shown.contains("long.nn:1:"), "{shown}");
    }
}

/// A name of 53,569 letters (one fuzz mutant of examples/char_gpt.nn): the
/// "did you mean" guess computed a full edit-distance table against every
/// name in scope, 2.4 s for one diagnostic.
#[test]
fn regression_very_long_unknown_name() {
    let text =
        include_str!("../../examples/char_gpt.nn").replacen("Block(", &format!("B{}lock(", "a".repeat(53_569)), 1);
    assert_no_panic("examples/char_gpt.nn", &text, &[]);
}
