//! The TensorBoard files of a run: decoded here in any case, and read with
//! TensorBoard's own event reader when the `tensorboard` Python package is
//! importable (`NNC_PYTHON`, else `python3`; skipped otherwise).

use assert_cmd::Command;
use nnc::runner::tensorboard::{self, Event, Kind, What};
use std::path::{Path, PathBuf};

fn short_run(name: &str, extra: &[&str]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::cargo_bin("nnc")
        .unwrap()
        .args(["run", "examples/mnist.nn", "--train-samples", "640", "--eval-samples", "100", "--epochs", "2"])
        .args(["--log-every", "5", "--quiet", "--out"])
        .arg(&dir)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "nnc failed: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    files.sort();
    files
}

/// Every scalar as (tag, step, value), in file order.
fn scalars(events: &[Event]) -> Vec<(String, i64, f32)> {
    let mut out = Vec::new();
    for e in events {
        let Some(What::Summary(s)) = &e.what else { continue };
        for v in &s.value {
            if let Some(Kind::SimpleValue(x)) = v.kind {
                out.push((v.tag.clone(), e.step, x));
            }
        }
    }
    out
}

/// The scalars are the numbers of `metrics.jsonl`, at the same steps;
/// each parameter has a histogram per epoch; the hyperparameters open and
/// a success closes the HParams session.
#[test]
fn a_run_writes_what_it_logs_as_tensorboard_events() {
    let dir = short_run("tensorboard_events", &["--set", "hidden=32"]);
    let files = event_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let events = tensorboard::read(&files[0]).unwrap();
    let scalars = scalars(&events);
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let logged: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (kind, tag, key) in
        [("train_step", "batch/loss", "loss"), ("any", "lr", "lr"), ("eval", "eval/accuracy", "accuracy")]
    {
        let want: Vec<(i64, f32)> = logged
            .iter()
            // The learning rate is in step and epoch events both.
            .filter(|e| e["event"] == kind || (kind == "any" && e.get(key).is_some()))
            .map(|e| (e["step"].as_i64().unwrap(), e[key].as_f64().unwrap() as f32))
            .collect();
        let got: Vec<(i64, f32)> = scalars.iter().filter(|s| s.0 == tag).map(|s| (s.1, s.2)).collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{tag}");
    }
    assert!(scalars.iter().any(|s| s.0 == "train/accuracy") && scalars.iter().any(|s| s.0 == "samples_per_sec"));
    let histograms: Vec<(&str, i64, f64)> = events
        .iter()
        .filter_map(|e| match &e.what {
            Some(What::Summary(s)) => Some((e.step, s)),
            _ => None,
        })
        .flat_map(|(step, s)| {
            s.value.iter().filter_map(move |v| match &v.kind {
                Some(Kind::Histo(h)) => Some((v.tag.as_str(), step, h.num)),
                _ => None,
            })
        })
        .collect();
    assert_eq!(histograms.iter().filter(|h| h.0 == "l1.w").count(), 2, "one per epoch");
    assert!(histograms.contains(&("l1.w", 40, 784.0 * 32.0)), "{histograms:?}");
    let sessions: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.what {
            Some(What::Summary(s)) => s.value.first().map(|v| v.tag.as_str()),
            _ => None,
        })
        .filter(|t| t.starts_with("_hparams_/"))
        .collect();
    assert_eq!(sessions, ["_hparams_/session_start_info", "_hparams_/session_end_info"]);
}

/// A resumed run adds a file; an overwritten run starts over with one.
#[test]
fn resume_adds_an_events_file_and_overwrite_replaces_them() {
    let dir = short_run("tensorboard_resume", &[]);
    let ckpt = dir.join("checkpoints/epoch-1.safetensors");
    let more = ["--resume", ckpt.to_str().unwrap(), "--epochs", "3"];
    let again = Command::cargo_bin("nnc")
        .unwrap()
        .args(["run", "examples/mnist.nn", "--train-samples", "640", "--eval-samples", "100", "--quiet", "--out"])
        .arg(&dir)
        .args(more)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(event_files(&dir).len(), 2);
    short_run("tensorboard_resume", &["--overwrite"]);
    assert_eq!(event_files(&dir).len(), 1);
}

/// TensorBoard's `EventAccumulator` reads the same scalars and histograms.
#[test]
fn tensorboard_itself_reads_the_events() {
    let python = std::env::var("NNC_PYTHON").unwrap_or_else(|_| "python3".into());
    let importable = std::process::Command::new(&python)
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        eprintln!("skipped: `{python}` cannot import tensorboard (set NNC_PYTHON to a Python that can)");
        return;
    }
    let dir = short_run("tensorboard_python", &[]);
    let script = "import sys\n\
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n\
        ea = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0, 'histograms': 0, 'tensors': 0})\n\
        ea.Reload()\n\
        print(' '.join(f'{t}={len(ea.Scalars(t))}' for t in sorted(ea.Tags()['scalars'])))\n\
        print(' '.join(f'{t}={len(ea.Histograms(t))}' for t in sorted(ea.Tags()['histograms'])))\n\
        print(' '.join(sorted(ea.Tags()['tensors'])))\n";
    let out = std::process::Command::new(&python).args(["-c", script]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "batch/accuracy=8 batch/loss=8 eval/accuracy=2 eval/loss=2 lr=8 samples_per_sec=8 train/accuracy=2 train/loss=2",
            "l1.b=2 l1.w=2 l2.b=2 l2.w=2",
            "_hparams_/session_end_info _hparams_/session_start_info",
        ]
    );
}
