//! `nnc watch` end to end: a real process trains a temporary copy of the
//! seed program while the test edits it, types keys, and reads what the
//! process prints and logs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// Generous: CI runs these beside every other test on two cores.
const PATIENCE: Duration = Duration::from_secs(90);

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A watching process and every line it prints, stdout and stderr both.
struct Watching {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
    file: PathBuf,
    run: PathBuf,
}

impl Watching {
    /// Watch a copy of examples/mnist.nn training on 20,000 images, long
    /// enough that it is still training when the test acts.
    fn start(name: &str, extra: &[&str]) -> Watching {
        Watching::start_edited(name, &[], &[], extra)
    }

    /// The same, on a copy with `changes` made and `files` (name, text)
    /// written beside it before it starts.
    fn start_edited(name: &str, changes: &[(&str, &str)], files: &[(&str, &str)], extra: &[&str]) -> Watching {
        let dir = scratch(name);
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let file = dir.join("mnist.nn");
        // The copy lives elsewhere: point its data path at the repository's data.
        let data = std::path::absolute("data/mnist").unwrap();
        let mut text = std::fs::read_to_string("examples/mnist.nn")
            .unwrap()
            .replace("idx(\"../data/mnist\")", &format!("idx(\"{}\")", data.display()));
        for (from, to) in changes {
            assert!(text.contains(from), "the test's edit does not apply: {from}");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(&file, text).unwrap();
        Watching::spawn(&dir, file, extra)
    }

    /// `nnc watch` on `file` (in `dir`), training into `dir/run`.
    fn spawn(dir: &Path, file: PathBuf, extra: &[&str]) -> Watching {
        let long = ["--train-samples", "20000", "--eval-samples", "200", "--epochs", "1000"];
        Watching::launch(dir, file, &[&long[..], extra].concat())
    }

    /// `nnc watch ARGS FILE` with one thread, training into `dir/run`.
    fn launch(dir: &Path, file: PathBuf, args: &[&str]) -> Watching {
        let run = dir.join("run");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["watch", "--threads", "1", "--out"])
            .arg(&run)
            .arg(&file)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
        std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).for_each(|l| drop(tx2.send(l))));
        let stdin = child.stdin.take().unwrap();
        Watching { child, stdin, lines, seen: Vec::new(), file, run }
    }

    /// The next line satisfying `want`, failing with everything printed so far.
    fn expect(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no line {what} within {PATIENCE:?}; the process printed:\n{}", self.seen.join("\n"));
    }

    fn epoch_loss(&mut self) -> f64 {
        let line = self.expect("with an epoch's loss", |l| l.starts_with("epoch "));
        loss_of(&line)
    }

    /// Save as editors do: write a new file, rename it over the old one.
    fn edit(&self, from: &str, to: &str) {
        self.edits(&[(from, to)]);
    }

    /// Several changes, saved at once.
    fn edits(&self, changes: &[(&str, &str)]) {
        let mut text = std::fs::read_to_string(&self.file).unwrap();
        for (from, to) in changes {
            assert!(text.contains(from), "the test's edit does not apply: {from}");
            text = text.replacen(from, to, 1);
        }
        let tmp = self.file.with_extension("nn.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }

    fn key(&mut self, k: &str) {
        self.stdin.write_all(k.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// `q`, then a clean exit with a final checkpoint.
    fn quit(mut self) -> (Vec<String>, PathBuf) {
        self.key("q");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "`q` did not end the process");
            std::thread::sleep(Duration::from_millis(20));
        };
        self.seen.extend(self.lines.try_iter());
        assert!(status.success(), "exit {status}; printed:\n{}", self.seen.join("\n"));
        assert!(self.run.join("checkpoints/final.safetensors").is_file(), "no final checkpoint");
        assert!(self.run.join("summary.json").is_file(), "no summary");
        (std::mem::take(&mut self.seen), self.run.clone())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `epoch 3/1000  train: loss 0.2345  accuracy ...` → 0.2345.
fn loss_of(line: &str) -> f64 {
    let after = line.split("loss ").nth(1).unwrap_or_else(|| panic!("no loss in {line:?}"));
    after.split_whitespace().next().unwrap().parse().unwrap()
}

fn events(run: &Path, kind: &str) -> Vec<serde_json::Value> {
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let all = log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    all.filter(|e| e["event"] == kind).collect()
}

#[test]
fn a_new_learning_rate_and_batch_size_take_effect_without_losing_the_weights() {
    let mut w = Watching::start("watch_lr", &[]);
    let first = w.epoch_loss();
    w.epoch_loss();
    w.edits(&[("adam(lr: 1e-3)", "adam(lr: 5e-4)"), ("batch: 32,", "batch: 64,")]);
    let report = w.expect("reporting the reload", |l| l.starts_with("reloaded in"));
    assert!(report.contains("kept 12/12 tensors"), "{report}");
    assert!(report.contains("lr 0.001 -> 0.0005") && report.contains("batch 32 -> 64"), "{report}");
    let after = w.epoch_loss();
    // A reload that lost the weights would start again near ln(10) = 2.3.
    assert!(after < first && after < 0.5, "loss {after} after the reload, {first} in the first epoch");
    let (_, run) = w.quit();
    let reload = &events(&run, "reload")[0];
    assert_eq!(reload["changed"]["lr"], serde_json::json!(["0.001", "0.0005"]));
    assert_eq!(reload["kept"].as_array().unwrap().len(), 12);
    assert!(reload["first_step_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{reload}");
}

#[test]
fn a_broken_edit_prints_its_diagnostic_and_training_goes_on() {
    let mut w = Watching::start("watch_broken", &[]);
    w.epoch_loss();
    w.edit("let hidden = 128", "let hidden = 128 +");
    w.expect("with the diagnostic", |l| l.contains("mnist.nn:"));
    w.expect("saying training goes on", |l| l.contains("training goes on with the last good program"));
    let before = w.seen.len();
    w.epoch_loss();
    assert!(w.seen[before..].iter().all(|l| !l.starts_with("reloaded")), "a broken edit reloaded");
    // Fixing it again is a reload of the same program: everything kept.
    w.edit("let hidden = 128 +", "let hidden = 128");
    let report = w.expect("reporting the reload", |l| l.starts_with("reloaded in"));
    assert!(report.contains("kept 12/12 tensors"), "{report}");
    let (_, run) = w.quit();
    assert_eq!(events(&run, "broken_edit").len(), 1);
}

/// Buffers are model tensors like parameters: a reload keeps BatchNorm's
/// running statistics by name and shape, and never gives them optimizer
/// states.
#[test]
fn a_reload_keeps_the_running_statistics() {
    let bn = [
        ("use std.nn.{Linear, relu}", "use std.nn.{BatchNorm, Linear, relu}"),
        ("l2: Linear(hidden, 10)", "bn: BatchNorm(hidden)\n    l2: Linear(hidden, 10)"),
        ("|> l1 |> relu |> l2", "|> l1 |> bn |> relu |> l2"),
    ];
    let mut w = Watching::start_edited("watch_buffers", &bn, &[], &[]);
    w.epoch_loss();
    w.edit("adam(lr: 1e-3)", "adam(lr: 5e-4)");
    let report = w.expect("reporting the reload", |l| l.starts_with("reloaded in"));
    // 6 parameters, 2 buffers, 2 optimizer states for each parameter.
    assert!(report.contains("kept 20/20 tensors"), "{report}");
    let (_, run) = w.quit();
    let reload = &events(&run, "reload")[0];
    let kept: Vec<&str> = reload["kept"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(kept.contains(&"bn.running_mean") && kept.contains(&"bn.running_var"), "{kept:?}");
    assert!(!kept.iter().any(|n| n.starts_with("bn.running") && n.contains('@')), "{kept:?}");
}

#[test]
fn a_new_layer_is_initialised_and_the_others_are_kept() {
    let mut w = Watching::start("watch_layer", &[]);
    w.epoch_loss();
    w.edits(&[
        ("l2: Linear(hidden, 10)", "mid: Linear(hidden, hidden)\n    l2: Linear(hidden, 10)"),
        ("|> l1 |> relu |> l2", "|> l1 |> relu |> mid |> relu |> l2"),
    ]);
    let report = w.expect("reporting the new layer", |l| l.starts_with("reloaded") && l.contains("mid.w"));
    assert!(report.contains("kept 12/18 tensors"), "{report}");
    assert!(report.contains("initialised mid.w, mid.b and 4 optimizer states"), "{report}");
    let (_, run) = w.quit();
    let last = events(&run, "reload").pop().unwrap();
    let initialised: Vec<&str> = last["initialised"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(initialised, ["mid.w", "mid.b", "mid.w@m", "mid.w@v", "mid.b@m", "mid.b@v"]);
}

#[test]
fn keys_save_restart_and_quit() {
    let mut w = Watching::start("watch_keys", &[]);
    let first = w.epoch_loss();
    w.epoch_loss();
    w.key("s");
    let saved = w.expect("naming the saved checkpoint", |l| l.starts_with("saved "));
    assert!(Path::new(saved.trim_start_matches("saved ")).is_file(), "{saved}");
    w.key("r");
    w.expect("confirming the restart", |l| l.starts_with("restarted from scratch"));
    let line = w.expect("of the first epoch again", |l| l.starts_with("epoch 1/"));
    // The same weights, data order and step count as at the start: the
    // same first epoch, to the printed digit.
    assert_eq!(loss_of(&line), first, "{line}");
    let (_, run) = w.quit();
    assert_eq!(events(&run, "restart").len(), 1);
}

#[test]
fn the_reload_policy_can_restart_the_step_count_and_the_data() {
    // The data policy from the file, the step policy from the flag.
    let policy = ("    seed      = 42", "    seed      = 42\n    on_reload = { data: \"restart\" }");
    let mut w = Watching::start_edited("watch_policy", &[policy], &[], &["--reload-step", "restart"]);
    w.epoch_loss();
    w.epoch_loss();
    w.edit("adam(lr: 1e-3)", "adam(lr: 2e-3)");
    w.expect("reporting the reload", |l| l.starts_with("reloaded in"));
    w.expect("of epoch 1 again", |l| l.starts_with("epoch 1/"));
    let (_, run) = w.quit();
    let reload = &events(&run, "reload")[0];
    assert_eq!(reload["policy"], serde_json::json!({ "step": "restart", "data": "restart" }));
    assert_eq!(reload["step"], 0);
}

#[test]
fn an_edit_to_an_imported_module_reloads_too() {
    let import = ("use std.optim.adam", "use std.optim.adam\nuse settings.{rate}");
    let changes = [import, ("adam(lr: 1e-3)", "adam(lr: rate)")];
    let mut w = Watching::start_edited("watch_import", &changes, &[("settings.nn", "let rate = 1e-3\n")], &[]);
    let settings = w.file.with_file_name("settings.nn");
    w.epoch_loss();
    std::fs::write(&settings, "let rate = 5e-4\n").unwrap();
    let report = w.expect("reporting the reload", |l| l.starts_with("reloaded in"));
    assert!(report.contains("lr 0.001 -> 0.0005"), "{report}");
    w.quit();
}

#[test]
fn a_file_broken_from_the_start_trains_once_fixed() {
    let mut w = Watching::start_edited("watch_fix", &[("let hidden = 128", "let hidden = 128 +")], &[], &[]);
    w.expect("saying it waits for a fix", |l| l.contains("does not compile yet"));
    w.edit("let hidden = 128 +", "let hidden = 128");
    w.epoch_loss();
    w.quit();
}

/// A file written beside the experiment a thousand times a second (the
/// run's own log redirected there, say) must not hold reloads back: only
/// events on the watched files restart the quiet period.
#[test]
fn a_busy_neighbour_file_does_not_starve_reloads() {
    let mut w = Watching::start("watch_busy", &[]);
    w.epoch_loss();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let neighbour = w.file.with_file_name("train.log");
    let flag = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(neighbour).unwrap();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            f.write_all(b"step\n").unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let mut latencies = Vec::new();
    for (i, lr) in ["5e-4", "4e-4", "3e-4", "2e-4", "1e-4"].into_iter().enumerate() {
        let from = if i == 0 { "1e-3".to_string() } else { ["5e-4", "4e-4", "3e-4", "2e-4"][i - 1].to_string() };
        let saved = Instant::now();
        w.edit(&format!("adam(lr: {from})"), &format!("adam(lr: {lr})"));
        let report = w.expect("reporting the reload", |l| l.starts_with("reloaded in"));
        latencies.push(saved.elapsed());
        assert!(report.contains("lr "), "{report}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    // A starved watcher never reloads while the writer runs; a working one
    // takes tens of milliseconds. The bound leaves room for a loaded CI machine.
    assert!(latencies.iter().all(|l| *l < Duration::from_secs(2)), "reload latencies {latencies:?}");
    w.quit();
}

#[test]
fn a_reload_that_fails_loading_its_data_is_logged() {
    let mut w = Watching::start("watch_bad_data", &[]);
    w.epoch_loss();
    let data = std::path::absolute("data/mnist").unwrap().display().to_string();
    w.edit(&format!("idx(\"{data}\")"), "idx(\"/nonexistent/mnist\")");
    w.expect("saying the reload failed", |l| l.starts_with("reload failed"));
    w.epoch_loss();
    let (_, run) = w.quit();
    let failed = events(&run, "failed_reload");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0]["error"].as_str().is_some_and(|e| e.contains("/nonexistent/mnist")), "{failed:?}");
}

/// A reload onto data whose class names are numbered otherwise keeps the
/// weights but would change what each output means: refused, training goes on.
#[test]
fn a_reload_onto_renumbered_classes_is_refused() {
    let dir = scratch("watch_renumbered");
    let mut a = String::from("x0,x1,kind\n");
    for i in 0..4000 {
        let c = if i % 2 == 0 { 1.0 } else { -1.0 };
        a.push_str(&format!("{c},{},{}\n", -c, if c > 0.0 { "pos" } else { "neg" }));
    }
    std::fs::write(dir.join("a.csv"), &a).unwrap();
    std::fs::write(dir.join("b.csv"), a.replace(",pos", ",aye")).unwrap();
    let program = r#"use std.nn.{Linear}
use std.loss.cross_entropy
use std.optim.sgd

model Net {
    l: Linear(2, 2)
    fn (x: f32[B, 2]) -> f32[B, 2] { x |> l }
}

dataset blobs = csv("a.csv", label: "kind", label_names: true) {
    features: f32[2]
    kind: i32 classes 2
}

experiment e {
    model     = Net
    data      = blobs.train(batch: 1)
    loss      = cross_entropy(model(features), kind)
    optimizer = sgd(lr: 0.01)
}
"#;
    let file = dir.join("blobs.nn");
    std::fs::write(&file, program).unwrap();
    let mut w = Watching::spawn(&dir, file, &[]);
    w.epoch_loss();
    w.edit("csv(\"a.csv\"", "csv(\"b.csv\"");
    let line = w.expect("saying the reload failed", |l| l.starts_with("reload failed"));
    assert!(line.contains("numbers its classes differently"), "{line}");
    w.epoch_loss();
    w.quit();
}

/// `nnc watch --profile` profiles each finished schedule before it waits
/// for edits, and writes `profile.json` while still watching.
#[test]
fn a_watched_run_profiles_each_finished_schedule() {
    let dir = scratch("watch_profile");
    let file = dir.join("mnist.nn");
    let data = std::path::absolute("data/mnist").unwrap();
    let text = std::fs::read_to_string("examples/mnist.nn")
        .unwrap()
        .replace("idx(\"../data/mnist\")", &format!("idx(\"{}\")", data.display()));
    std::fs::write(&file, text).unwrap();
    let short = ["--train-samples", "320", "--eval-samples", "100", "--epochs", "1", "--profile"];
    let mut w = Watching::launch(&dir, file, &short);
    w.expect("with the profile's line table", |l| l.trim_start().starts_with("mnist.nn:24"));
    // The table is on stdout and the watch line on stderr: either may arrive first.
    if !w.seen.iter().any(|l| l.starts_with("watching:")) {
        w.expect("saying it watches", |l| l.starts_with("watching:"));
    }
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.run.join("profile.json")).unwrap()).unwrap();
    assert!(profile["step_ms"].as_f64().is_some_and(|t| t > 0.0), "{profile}");
    w.quit();
}
