//! `nnc run` end to end with the native backend: the run directory,
//! checkpoints and resume, determinism, and every failure a user can hit
//! with data, checkpoints and the run directory.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// A scratch directory under the target dir, fresh for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nnc() -> Command {
    Command::cargo_bin("nnc").unwrap()
}

/// A short run of the seed program: 640 images, batch 32, 100 test images.
fn short_run(out: &Path, extra: &[&str]) -> std::process::Output {
    nnc()
        .args(["run", "examples/mnist.nn", "--train-samples", "640", "--eval-samples", "100", "--quiet", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "nnc failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut t: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect();
    t.sort();
    t
}

#[test]
fn a_run_writes_config_metrics_summary_and_checkpoints() {
    let dir = scratch("run_dir");
    ok(&short_run(&dir, &["--epochs", "2"]));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["hyperparameters"]["hidden"], "128");
    assert_eq!(config["experiment"], "seed_mlp");
    assert!(config["source_hash"].as_str().is_some_and(|h| h.len() == 16));
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let train: Vec<_> = events.iter().filter(|e| e["event"] == "train").collect();
    let eval: Vec<_> = events.iter().filter(|e| e["event"] == "eval").collect();
    assert_eq!((train.len(), eval.len()), (2, 2));
    assert_eq!(train[1]["epoch"], 2);
    assert_eq!(train[1]["step"], 40);
    assert_eq!(eval[0]["split"], "test");
    assert!(eval[1]["accuracy"].as_f64().is_some() && train[0]["loss"].as_f64().is_some());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for key in ["samples_per_sec", "compile_ms", "wall_s"] {
        assert!(summary[key].as_f64().is_some_and(|v| v > 0.0), "summary.{key}");
    }
    assert!(summary["eval"]["accuracy"].as_f64().is_some());
    for ck in ["epoch-1", "epoch-2", "final", "last"] {
        assert!(dir.join(format!("checkpoints/{ck}.safetensors")).is_file(), "missing checkpoint {ck}");
    }
    let names: Vec<String> = tensors(&dir.join("checkpoints/final.safetensors")).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"l1.w".to_string()) && names.contains(&"l1.w@m".to_string()), "{names:?}");
}

fn events(dir: &Path) -> Vec<serde_json::Value> {
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    log.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `--log-every N`: a `train_step` event each N steps with that step's
/// numbers; every event carries `time` and `step`.
#[test]
fn log_every_adds_step_events() {
    let dir = scratch("log_every");
    ok(&short_run(&dir, &["--log-every", "5", "--epochs", "1"]));
    let events = events(&dir);
    let steps: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "train_step").collect();
    let at: Vec<u64> = steps.iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(at, vec![5, 10, 15, 20]);
    for e in &steps {
        assert!(e["loss"].as_f64().is_some_and(|l| l > 0.0) && e["accuracy"].as_f64().is_some(), "{e}");
        assert_eq!(e["lr"].as_f64(), Some(1e-3));
        assert!(e["samples_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{e}");
    }
    // Per-step losses, not running means: they are not all the same.
    assert!(steps.windows(2).any(|w| w[0]["loss"] != w[1]["loss"]));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    for e in &events {
        assert!(e["step"].as_u64().is_some(), "{e}");
        assert!(e["time"].as_f64().is_some_and(|t| (now - 600.0..now + 1.0).contains(&t)), "{e}");
    }
}

/// `log = every N steps` in the file does the same; `--log-every 0` turns
/// it off; a learning-rate schedule is logged as applied.
#[test]
fn the_log_setting_logs_the_scheduled_rate() {
    let dir = scratch("log_setting");
    let file = program_with_data(&dir, Path::new("data/mnist"), |src| {
        src.replace("use std.optim.adam", "use std.optim.adam\nuse std.schedule.cosine").replace(
            "    epochs    = 5\n",
            "    epochs    = 5\n    schedule  = cosine(warmup: 10)\n    log = every 4 steps\n",
        )
    });
    assert!(std::fs::read_to_string(&file).unwrap().contains("log = every"));
    let run = |out: &Path, extra: &[&str]| {
        nnc()
            .args(["run", "--quiet", "--epochs", "1", "--train-samples", "320", "--eval-samples", "50", "--out"])
            .arg(out)
            .arg(&file)
            .args(extra)
            .output()
            .unwrap()
    };
    let (on, off) = (run(&dir.join("on"), &[]), run(&dir.join("off"), &["--log-every", "0"]));
    ok(&on);
    ok(&off);
    let lrs: Vec<f64> = events(&dir.join("on"))
        .iter()
        .filter(|e| e["event"] == "train_step")
        .map(|e| e["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs.len(), 2, "{lrs:?}");
    assert!(lrs[0] < lrs[1] && lrs[1] <= 1e-3, "warming up: {lrs:?}");
    assert!(!events(&dir.join("off")).iter().any(|e| e["event"] == "train_step"));
}

/// `checkpoint = best(accuracy) every epoch`: `best.safetensors` holds the
/// weights of the evaluation with the highest accuracy, and the summary
/// names its step.
#[test]
fn the_best_checkpoint_is_the_best_evaluation() {
    let dir = scratch("keep_best");
    let file = program_with_data(&dir, Path::new("data/mnist"), |src| {
        src.replace("    epochs    = 5\n", "    epochs    = 4\n    checkpoint = best(accuracy) every epoch\n")
    });
    let out = nnc()
        .args(["run", "--quiet", "--train-samples", "320", "--eval-samples", "200", "--keep-checkpoints", "0"])
        .arg("--out")
        .arg(dir.join("out"))
        .arg(&file)
        .args(["--set", "hidden=16"])
        .output()
        .unwrap();
    let stdout = ok(&out);
    let out = dir.join("out");
    let evals: Vec<(f64, u64)> = events(&out)
        .iter()
        .filter(|e| e["event"] == "eval")
        .map(|e| (e["accuracy"].as_f64().unwrap(), e["step"].as_u64().unwrap()))
        .collect();
    assert_eq!(evals.len(), 4);
    // The first evaluation with the highest accuracy.
    let best = evals.iter().fold(evals[0], |b, e| if e.0 > b.0 { *e } else { b });
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["best"]["step"].as_u64(), Some(best.1), "{evals:?}");
    assert_eq!(summary["best"]["metric"], "accuracy");
    assert!(stdout.contains(&format!("best: accuracy {:.4} at step {}", best.0, best.1)), "{stdout}");
    let epoch = best.1 / 10;
    let weights = |name: &str| -> Vec<(String, Vec<u8>)> {
        tensors(&out.join(format!("checkpoints/{name}.safetensors")))
            .into_iter()
            .filter(|(n, _)| !n.contains('@'))
            .collect()
    };
    assert_eq!(weights("best"), weights(&format!("epoch-{epoch}")));
}

/// `early_stop = { .., restore_best: true }`: the run ends with the weights
/// of its best evaluation, and its summary is their evaluation.
#[test]
fn early_stop_restores_the_best_weights() {
    let dir = scratch("restore_best");
    let file = program_with_data(&dir, Path::new("data/mnist"), |src| {
        let stop = "    epochs    = 30\n    early_stop = { metric: \"loss\", patience: 1, restore_best: true }\n";
        src.replace("    epochs    = 5\n", stop)
    });
    let out = nnc()
        .args(["run", "--quiet", "--train-samples", "320", "--eval-samples", "200", "--out"])
        .arg(dir.join("out"))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = ok(&out);
    let out = dir.join("out");
    let events = events(&out);
    let evals: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "eval").collect();
    let best = evals.iter().min_by(|a, b| a["loss"].as_f64().partial_cmp(&b["loss"].as_f64()).unwrap()).unwrap();
    let last = evals.last().unwrap();
    assert!(last["loss"].as_f64() > best["loss"].as_f64(), "the run must stop after a worse evaluation: {evals:?}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["stopped_early"].is_string(), "{summary}");
    assert_eq!(summary["restored_from_step"], best["step"]);
    assert_eq!(summary["eval"]["loss"], best["loss"], "the summary evaluates the restored weights");
    assert!(stdout.contains(&format!("restored the weights of step {}", best["step"])), "{stdout}");
    let params = |name: &str| -> Vec<(String, Vec<u8>)> {
        tensors(&out.join(format!("checkpoints/{name}.safetensors")))
            .into_iter()
            .filter(|(n, _)| !n.contains('@'))
            .collect()
    };
    assert_eq!(params("final"), params("best"));
    assert_ne!(params("final"), params(&format!("epoch-{}", last["epoch"])));
}

#[test]
fn the_same_seed_gives_the_same_numbers_bit_for_bit() {
    let (a, b) = (scratch("det_a"), scratch("det_b"));
    ok(&short_run(&a, &[]));
    ok(&short_run(&b, &[]));
    // Every event is the same but for its wall-clock `time`.
    let log = |d: &Path| {
        let mut events = events(d);
        events.iter_mut().for_each(|e| assert!(e.as_object_mut().unwrap().remove("time").is_some()));
        events
    };
    assert_eq!(log(&a), log(&b));
    assert_eq!(tensors(&a.join("checkpoints/final.safetensors")), tensors(&b.join("checkpoints/final.safetensors")));
}

#[test]
fn resuming_gives_the_weights_of_an_uninterrupted_run() {
    let (whole, first, rest) = (scratch("resume_whole"), scratch("resume_first"), scratch("resume_rest"));
    ok(&short_run(&whole, &["--epochs", "2"]));
    ok(&short_run(&first, &["--epochs", "1"]));
    let ckpt = first.join("checkpoints/epoch-1.safetensors");
    ok(&short_run(&rest, &["--epochs", "2", "--resume", ckpt.to_str().unwrap()]));
    assert_eq!(
        tensors(&whole.join("checkpoints/final.safetensors")),
        tensors(&rest.join("checkpoints/final.safetensors")),
        "resumed weights differ from the uninterrupted run"
    );
}

/// Buffers live in checkpoints beside the parameters, without optimizer
/// states, and a resumed run continues them exactly.
#[test]
fn buffers_are_checkpointed_and_resume_exactly() {
    let resnet = |out: &Path, extra: &[&str]| {
        nnc()
            .args(["run", "examples/resnet.nn", "--train-samples", "256", "--eval-samples", "100", "--quiet"])
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let (whole, first, rest) = (scratch("bn_whole"), scratch("bn_first"), scratch("bn_rest"));
    ok(&resnet(&whole, &["--epochs", "2"]));
    ok(&resnet(&first, &["--epochs", "1"]));
    let ckpt = first.join("checkpoints/epoch-1.safetensors");
    ok(&resnet(&rest, &["--epochs", "2", "--resume", ckpt.to_str().unwrap()]));
    let final_whole = tensors(&whole.join("checkpoints/final.safetensors"));
    assert_eq!(final_whole, tensors(&rest.join("checkpoints/final.safetensors")), "resumed tensors differ");
    let names: Vec<&str> = final_whole.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"down2.a.bn.running_mean") && names.contains(&"down2.a.bn.running_var"));
    assert!(!names.iter().any(|n| n.contains("running") && n.contains('@')), "a buffer got optimizer states");
    // Updated by the training step: no longer their initial zeros and ones.
    let mean = &final_whole.iter().find(|(n, _)| n == "stem.bn.running_mean").unwrap().1;
    assert!(mean.chunks_exact(4).any(|b| f32::from_le_bytes(b.try_into().unwrap()) != 0.0));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("config.json")).unwrap()).unwrap();
    let kind =
        |name: &str| config["params"].as_array().unwrap().iter().find(|p| p["name"] == name).map(|p| p["kind"].clone());
    assert_eq!(kind("stem.bn.running_var"), Some(serde_json::json!("buffer")));
    assert_eq!(kind("stem.bn.weight"), Some(serde_json::json!("trained")));
}

#[test]
fn a_checkpoint_of_another_model_is_refused_with_every_mismatch() {
    let (a, b) = (scratch("mismatch_a"), scratch("mismatch_b"));
    ok(&short_run(&a, &["--epochs", "1"]));
    let ckpt = a.join("checkpoints/final.safetensors");
    let msg = err(&short_run(&b, &["--set", "hidden=64", "--resume", ckpt.to_str().unwrap()]));
    assert!(msg.contains("does not fit this model"), "{msg}");
    assert!(msg.contains("`l1.w`: the model needs [784, 64], the checkpoint has [784, 128]"), "{msg}");
    assert!(msg.contains("`l2.w`"), "{msg}");
}

#[test]
fn a_corrupt_checkpoint_is_an_error_not_a_crash() {
    let dir = scratch("corrupt");
    let bad = dir.join("bad.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    let msg = err(&short_run(&dir.join("out"), &["--resume", bad.to_str().unwrap()]));
    assert!(msg.contains("bad.safetensors") && msg.contains("not a valid safetensors file"), "{msg}");
}

/// A copy of the seed program whose dataset reads `data_dir`.
fn program_with_data(dir: &Path, data_dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let src = std::fs::read_to_string("examples/mnist.nn").unwrap();
    // The file is written elsewhere; its data path must still find the data.
    let data_dir = std::path::absolute(data_dir).unwrap();
    let src = src.replace("idx(\"../data/mnist\")", &format!("idx(\"{}\")", data_dir.display()));
    assert!(src.contains(&data_dir.display().to_string()), "examples/mnist.nn names its data differently");
    let path = dir.join("exp.nn");
    std::fs::write(&path, edit(src)).unwrap();
    path
}

fn run_file(file: &Path, out: &Path) -> std::process::Output {
    nnc()
        .args(["run", "--quiet", "--train-samples", "64", "--eval-samples", "64", "--out"])
        .arg(out)
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn missing_data_names_what_was_looked_for() {
    let dir = scratch("missing_data");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let msg = err(&run_file(&program_with_data(&dir, &empty, |s| s), &dir.join("out")));
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
}

#[test]
fn truncated_data_names_the_file_and_the_expected_size() {
    let dir = scratch("truncated");
    let data = dir.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(Path::new("data/mnist").join(f), data.join(f)).unwrap();
    }
    let raw = std::fs::read("data/mnist/t10k-images-idx3-ubyte.gz").unwrap();
    let mut d = flate2::read::GzDecoder::new(&raw[..]);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut d, &mut bytes).unwrap();
    bytes.truncate(bytes.len() - 100);
    std::fs::write(data.join("train-images-idx3-ubyte"), &bytes).unwrap();
    let msg = err(&run_file(&program_with_data(&dir, &data, |s| s), &dir.join("out")));
    assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("bytes"), "{msg}");
}

#[test]
fn a_label_outside_the_classes_names_the_record() {
    let dir = scratch("labels");
    let file = program_with_data(&dir, Path::new("data/mnist"), |s| s.replace("classes 10", "classes 5"));
    let msg = err(&run_file(&file, &dir.join("out")));
    assert!(msg.contains("record") && msg.contains("label") || msg.contains("labels"), "{msg}");
}

#[test]
fn data_that_does_not_fit_the_model_is_a_compile_time_error() {
    let dir = scratch("shape_model");
    let file =
        program_with_data(&dir, Path::new("data/mnist"), |s| s.replace("image: u8[28, 28]", "image: u8[28, 14, 2]"));
    let msg = err(&run_file(&file, &dir.join("out")));
    assert!(msg.contains("f32[B, 28, 28]") && msg.contains("f32[B, 28, 14, 2]"), "{msg}");
}

#[test]
fn a_file_of_another_shape_than_declared_names_both_shapes() {
    let dir = scratch("shape_file");
    let file = program_with_data(&dir, Path::new("data/mnist"), |s| {
        s.replace("image: u8[28, 28]", "image: u8[784]").replace("fn (x: f32[B, 28, 28])", "fn (x: f32[B, 784])")
    });
    let msg = err(&run_file(&file, &dir.join("out")));
    assert!(msg.contains("[784]") && msg.contains("[28, 28]"), "{msg}");
}

#[test]
fn a_diverging_loss_stops_with_the_step_and_a_hint() {
    let dir = scratch("nan");
    let file = program_with_data(&dir, Path::new("data/mnist"), |s| s.replace("adam(lr: 1e-3)", "adam(lr: 1e30)"));
    let out = run_file(&file, &dir.join("out"));
    let msg = err(&out);
    assert!(msg.contains("at step") && msg.contains("learning rate"), "{msg}");
}

#[test]
fn an_unwritable_run_directory_is_an_error() {
    let dir = scratch("unwritable");
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let msg = err(&short_run(&blocker.join("run"), &[]));
    assert!(msg.contains("cannot create the run directory"), "{msg}");
}

#[test]
fn only_the_newest_periodic_checkpoints_are_kept() {
    let (three, all) = (scratch("keep_3"), scratch("keep_all"));
    ok(&short_run(&three, &["--epochs", "5"]));
    ok(&short_run(&all, &["--epochs", "5", "--keep-checkpoints", "0"]));
    let has = |dir: &Path, ck: &str| dir.join(format!("checkpoints/{ck}.safetensors")).is_file();
    for (ck, kept) in [("epoch-1", false), ("epoch-2", false), ("epoch-3", true), ("epoch-5", true), ("final", true)] {
        assert_eq!(has(&three, ck), kept, "{ck}");
        assert!(has(&all, ck), "{ck} with --keep-checkpoints 0");
    }
}

#[test]
fn thread_count_does_not_change_the_numbers() {
    let (one, two) = (scratch("threads_1"), scratch("threads_2"));
    ok(&short_run(&one, &["--threads", "1"]));
    ok(&short_run(&two, &["--threads", "2"]));
    assert_eq!(
        tensors(&one.join("checkpoints/final.safetensors")),
        tensors(&two.join("checkpoints/final.safetensors"))
    );
}

#[test]
fn pretrained_weights_load_by_name_and_frozen_ones_stay() {
    let (pre, fine) = (scratch("pretrain"), scratch("finetune"));
    ok(&short_run(&pre, &["--epochs", "1"]));
    let weights = pre.join("checkpoints/final.safetensors");
    let file = program_with_data(&fine, Path::new("data/mnist"), |s| {
        s.replace(
            "    epochs    = 5\n",
            &format!("    epochs    = 1\n    init_from = \"{}\"\n    freeze = [\"l1\"]\n", weights.display()),
        )
    });
    ok(&nnc()
        .args(["run", "--quiet", "--train-samples", "640", "--eval-samples", "100", "--out"])
        .arg(fine.join("out"))
        .arg(&file)
        .output()
        .unwrap());
    let before: std::collections::HashMap<_, _> = tensors(&weights).into_iter().collect();
    let after: std::collections::HashMap<_, _> =
        tensors(&fine.join("out/checkpoints/final.safetensors")).into_iter().collect();
    assert_eq!(before["l1.w"], after["l1.w"], "a frozen, loaded parameter changed");
    assert_eq!(before["l1.b"], after["l1.b"]);
    assert_ne!(before["l2.w"], after["l2.w"], "a trainable parameter did not train");
}

#[test]
fn ctrl_c_saves_a_checkpoint_that_resumes() {
    interrupt_saves_a_checkpoint_that_resumes("ctrl_c", "-INT");
}

/// `kill`, a job scheduler's time limit, `docker stop`: SIGTERM saves the
/// run as Ctrl-C does.
#[test]
fn sigterm_saves_a_checkpoint_that_resumes() {
    interrupt_saves_a_checkpoint_that_resumes("sigterm", "-TERM");
}

fn interrupt_saves_a_checkpoint_that_resumes(name: &str, signal: &str) {
    let dir = scratch(name);
    let out = dir.join("run");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["run", "examples/mnist.nn", "--quiet", "--eval-samples", "100", "--epochs", "50", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Training starts right after the run directory's config is written.
    let t0 = std::time::Instant::now();
    while !out.join("config.json").exists() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let result = child.wait_with_output().unwrap();
    assert_eq!(result.status.code(), Some(130), "{}", String::from_utf8_lossy(&result.stderr));
    let ckpt = out.join("checkpoints/interrupted.safetensors");
    assert!(ckpt.is_file());
    let resumed = dir.join("resumed");
    ok(&nnc()
        .args(["run", "examples/mnist.nn", "--quiet", "--eval-samples", "100", "--epochs", "1", "--out"])
        .arg(&resumed)
        .args(["--resume", ckpt.to_str().unwrap()])
        .output()
        .unwrap());
}

#[test]
fn early_stopping_ends_the_run_when_the_metric_stalls() {
    let dir = scratch("early_stop");
    let file = program_with_data(&dir, Path::new("data/mnist"), |s| {
        s.replace("    epochs    = 5\n", "    epochs    = 40\n    early_stop = { metric: \"loss\", patience: 1 }\n")
    });
    let out = nnc()
        .args(["run", "--quiet", "--train-samples", "320", "--eval-samples", "100", "--out"])
        .arg(dir.join("out"))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("stopped early: `loss` did not improve"), "{stdout}");
    let log = std::fs::read_to_string(dir.join("out/metrics.jsonl")).unwrap();
    assert!(log.lines().filter(|l| l.contains("\"train\"")).count() < 40);
}

#[test]
fn a_sweep_trains_every_point_and_compares_them() {
    let dir = scratch("sweep");
    let out = nnc()
        .args(["run", "examples/mnist_sweep.nn", "--train-samples", "320", "--eval-samples", "100", "--epochs", "1"])
        .args(["--quiet", "--set", "hidden=32", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = ok(&out);
    for lr in ["3e-4", "1e-3", "3e-3"] {
        assert!(stdout.contains(&format!("| lr={lr} |")), "{stdout}");
        assert!(dir.join(format!("lr={lr}/summary.json")).is_file());
    }
    // The comparison is saved beside the runs, as CSV and JSON.
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "lr,train_loss,train_accuracy,eval_loss,eval_accuracy,samples_per_sec,run_dir", "{csv}");
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[1].starts_with("3e-4,") && lines[3].starts_with("3e-3,"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json[2]["point"]["lr"], "3e-3");
    assert!(json[2]["eval"]["accuracy"].as_f64().is_some() && json[0]["samples_per_sec"].as_f64().is_some());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lr=1e-3/summary.json")).unwrap()).unwrap();
    assert_eq!(json[1]["eval"]["accuracy"], summary["eval"]["accuracy"]);
}

#[test]
fn a_text_run_saves_its_vocabulary() {
    let dir = scratch("text_vocab");
    let out = nnc()
        .args(["run", "examples/char_gpt.nn", "--train-samples", "64", "--eval-samples", "16", "--epochs", "1"])
        .args(["--quiet", "--set", "d=16", "--set", "heads=2", "--set", "n_layers=1", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out);
    let vocab = std::fs::read_to_string(dir.join("vocab.json")).unwrap();
    assert!(vocab.contains('e') && vocab.len() > 75, "{vocab}");
}

#[test]
fn a_sweep_point_reusing_compiled_steps_matches_a_standalone_run() {
    let (sweep, alone) = (scratch("sweep_reuse"), scratch("sweep_alone"));
    let common = ["--train-samples", "320", "--eval-samples", "100", "--epochs", "1", "--quiet", "--set", "hidden=32"];
    ok(&nnc().args(["run", "examples/mnist_sweep.nn"]).args(common).arg("--out").arg(&sweep).output().unwrap());
    let pinned = ["--set", "lr=3e-3"];
    ok(&nnc()
        .args(["run", "examples/mnist_sweep.nn"])
        .args(common)
        .args(pinned)
        .arg("--out")
        .arg(&alone)
        .output()
        .unwrap());
    // lr=3e-3 is the sweep's last point: its steps came from the cache.
    assert_eq!(
        tensors(&sweep.join("lr=3e-3/checkpoints/final.safetensors")),
        tensors(&alone.join("checkpoints/final.safetensors"))
    );
}

#[test]
fn a_csv_dataset_trains_end_to_end() {
    let dir = scratch("csv");
    // Two separable blobs in 3-D, string labels, deterministic.
    let mut csv = String::from("x0,x1,x2,kind\n");
    for i in 0..240 {
        let (c, label) = if i % 2 == 0 { (1.0, "pos") } else { (-1.0, "neg") };
        let j = (i as f64 * 0.7).sin() * 0.5;
        csv.push_str(&format!("{},{},{},{label}\n", c + j, c - j, 0.3 * j));
    }
    std::fs::write(dir.join("blobs.csv"), csv).unwrap();
    let program = format!(
        r#"use std.nn.{{Linear, relu}}
use std.loss.cross_entropy
use std.metrics.accuracy
use std.optim.sgd

model Net {{
    l1: Linear(3, 8)
    l2: Linear(8, 2)
    fn (x: f32[B, 3]) -> f32[B, 2] {{ x |> l1 |> relu |> l2 }}
}}

dataset blobs = csv("{}", label: "kind", test_fraction: 0.25, label_names: true) {{
    features: f32[3]
    kind: i32 classes 2
}}

experiment csv_blobs {{
    model     = Net
    data      = blobs.train(batch: 16, shuffle: true)
    loss      = cross_entropy(model(features), kind)
    optimizer = sgd(lr: 0.1, momentum: 0.9)
    epochs    = 10
    metrics   = {{ accuracy: accuracy(model(features), kind) }}
    eval      = blobs.test(batch: 20) every epoch
}}
"#,
        dir.join("blobs.csv").display()
    );
    let file = dir.join("blobs.nn");
    std::fs::write(&file, program).unwrap();
    let out = nnc().args(["run", "--quiet", "--out"]).arg(dir.join("out")).arg(&file).output().unwrap();
    let stdout = ok(&out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/summary.json")).unwrap()).unwrap();
    let acc = summary["eval"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.95, "eval accuracy {acc}: {stdout}");
    // The names' ids are saved with the run, and predictions print names.
    let names: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/classes.json")).unwrap()).unwrap();
    assert_eq!(names, ["neg", "pos"]);
    std::fs::write(dir.join("x.csv"), "1,1,0\n-1,-1,0\n").unwrap();
    let ckpt = dir.join("out/checkpoints/final.safetensors");
    let predicted =
        ok(&nnc().args(["predict"]).arg(&file).arg("--checkpoint").arg(&ckpt).arg(dir.join("x.csv")).output().unwrap());
    let classes: Vec<&str> = predicted.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(classes, ["pos", "neg"], "{predicted}");
    // A built executable carries the names in it and prints the same.
    if std::process::Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let exe = dir.join("blobs");
        ok(&nnc().arg("build").arg(&file).arg("--checkpoint").arg(&ckpt).arg("-o").arg(&exe).output().unwrap());
        let built = ok(&std::process::Command::new(&exe).arg(dir.join("x.csv")).output().unwrap());
        let built: Vec<&str> = built.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(built, classes);
    }
    // Labels written as names without `label_names: true` are an error naming them.
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace(", label_names: true", "")).unwrap();
    let e = err(&nnc().args(["run", "--quiet", "--out"]).arg(dir.join("out2")).arg(&file).output().unwrap());
    assert!(e.contains("blobs.csv:2") && e.contains("label_names: true"), "{e}");
    // Resuming on data that numbers its classes otherwise is refused: the
    // trained outputs would silently mean other classes.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("test_fraction: 0.25", "test_fraction: 0.25, label_names: true"),
    )
    .unwrap();
    let renamed = std::fs::read_to_string(dir.join("blobs.csv")).unwrap().replace(",pos", ",aye");
    std::fs::write(dir.join("blobs.csv"), renamed).unwrap();
    let last = dir.join("out/checkpoints/last.safetensors");
    let out = nnc()
        .args(["run", "--quiet", "--out"])
        .arg(dir.join("out"))
        .arg("--resume")
        .arg(&last)
        .arg(&file)
        .output()
        .unwrap();
    let e = err(&out);
    assert!(e.contains("trained on classes neg, pos") && e.contains("aye, neg"), "{e}");
}

/// A float target column is a regression target, not class ids, and a
/// dataset needs no dummy label to be read.
#[test]
fn a_csv_regression_target_stays_a_number() {
    let dir = scratch("csv_regression");
    let mut csv = String::from("a,b,y\n");
    for i in 0..200 {
        let (a, b) = ((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos());
        csv.push_str(&format!("{a},{b},{}\n", 3.0 * a - 2.0 * b + 0.5));
    }
    std::fs::write(dir.join("r.csv"), csv).unwrap();
    let program = r#"use std.nn.{Linear}
use std.loss.mse
use std.optim.adam

model Reg {
    l: Linear(2, 1)
    fn (x: f32[B, 2]) -> f32[B] { (x |> l).reshape([B]) }
}

dataset r = csv("r.csv", label: "y") {
    features: f32[2]
    y: f32
}

experiment reg {
    model     = Reg
    data      = r.train(batch: 20, shuffle: true)
    loss      = mse(model(features), y)
    optimizer = adam(lr: 0.05)
    epochs    = 60
}
"#;
    let file = dir.join("reg.nn");
    std::fs::write(&file, program).unwrap();
    let out = nnc().args(["run", "--quiet", "--out"]).arg(dir.join("out")).arg(&file).output().unwrap();
    let stdout = ok(&out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/summary.json")).unwrap()).unwrap();
    let loss = summary["train"]["loss"].as_f64().unwrap();
    assert!(loss < 0.01, "a linear target must be fitted: MSE {loss}\n{stdout}");
}

#[test]
fn a_directory_holding_a_run_is_refused_unless_resumed_or_overwritten() {
    let dir = scratch("reuse_dir");
    ok(&short_run(&dir, &["--epochs", "1"]));
    let first = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let e = err(&short_run(&dir, &["--epochs", "1"]));
    assert!(e.contains("already holds a run") && e.contains("--overwrite") && e.contains("--resume"), "{e}");
    assert_eq!(std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap(), first, "a refused run wrote to the log");
    ok(&short_run(&dir, &["--epochs", "1", "--overwrite"]));
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let epochs = log.lines().filter(|l| l.contains("\"event\":\"train\"")).count();
    assert_eq!(epochs, 1, "the overwritten run's events are still in the log:\n{log}");
    let last = dir.join("checkpoints/last.safetensors");
    ok(&short_run(&dir, &["--epochs", "2", "--resume", last.to_str().unwrap()]));
}

#[test]
fn a_torn_last_log_line_is_not_appended_onto() {
    let dir = scratch("torn_log");
    ok(&short_run(&dir, &["--epochs", "1"]));
    let log = dir.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"event\": \"tr");
    std::fs::write(&log, text).unwrap();
    let last = dir.join("checkpoints/last.safetensors");
    ok(&short_run(&dir, &["--epochs", "2", "--resume", last.to_str().unwrap()]));
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[test]
fn a_diverged_run_names_the_checkpoint_it_kept_only_when_there_is_one() {
    let dir = scratch("diverged");
    let data = std::fs::canonicalize("data/mnist").unwrap();
    for (name, every) in [("none", ""), ("kept", "    checkpoint = every 1 steps\n")] {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let file = program_with_data(&sub, &data, |s| {
            s.replace("adam(lr: 1e-3)", "sgd(lr: 1e30)")
                .replace("use std.optim.adam", "use std.optim.sgd")
                .replace("    seed      = 42\n", &format!("    seed      = 42\n{every}"))
        });
        let e = err(&run_file(&file, &sub.join("out")));
        assert!(e.contains("the loss became"), "{e}");
        if every.is_empty() {
            assert!(e.contains("no checkpoint had been saved yet"), "{e}");
        } else {
            assert!(e.contains("last good checkpoint") && e.contains("last.safetensors"), "{e}");
            assert!(sub.join("out/checkpoints/last.safetensors").is_file());
        }
    }
}

/// Data paths are relative to the `.nn` file, so a run works from any
/// working directory.
#[test]
fn data_paths_are_relative_to_the_file_that_names_them() {
    let dir = scratch("elsewhere");
    let file = std::path::absolute("examples/mnist.nn").unwrap();
    let out = nnc()
        .current_dir(&dir)
        .args(["run", "--quiet", "--train-samples", "64", "--eval-samples", "64", "--epochs", "1", "--out", "out"])
        .arg(&file)
        .output()
        .unwrap();
    ok(&out);
    assert!(dir.join("out/checkpoints/final.safetensors").is_file());
}

#[test]
fn a_missing_data_path_points_at_the_path_in_the_file_with_a_guess() {
    let dir = scratch("data_typo");
    let typo = std::path::absolute("data/mnst").unwrap();
    let file = program_with_data(&dir, &typo, |s| s);
    let out =
        nnc().env("NO_COLOR", "1").args(["run", "--quiet", "--out"]).arg(dir.join("out")).arg(&file).output().unwrap();
    let e = err(&out);
    assert!(e.contains("data not found"), "{e}");
    assert!(e.contains("exp.nn:28:"), "the error points at the path in the file: {e}");
    assert!(e.contains("did you mean") && e.contains("data/mnist`"), "{e}");
}

/// `init_from` says what it loaded, what kept its initialiser and what in
/// the file went unused; a file whose names match but whose shapes do not
/// is not "named like no parameter".
#[test]
fn init_from_reports_what_it_loaded_and_names_real_mismatches() {
    let (pre, fine) = (scratch("init_report_pre"), scratch("init_report"));
    ok(&short_run(&pre, &["--epochs", "1"]));
    let weights = pre.join("checkpoints/final.safetensors");
    let data = std::path::absolute("data/mnist").unwrap();
    let with = |edit: &dyn Fn(String) -> String| {
        program_with_data(&fine, &data, |s| {
            edit(s.replace(
                "    epochs    = 5\n",
                &format!("    epochs    = 1\n    init_from = \"{}\"\n", weights.display()),
            ))
        })
    };
    // A third layer the file does not have: loaded 4 of 6, l3 initialised.
    let file = with(&|s: String| {
        s.replace("    l2: Linear(hidden, 10)\n", "    l2: Linear(hidden, 10)\n    l3: Linear(10, 10)\n")
            .replace("|> relu |> l2", "|> relu |> l2 |> l3")
    });
    let out = nnc()
        .args(["run", "--train-samples", "64", "--eval-samples", "64", "--out"])
        .arg(fine.join("a"))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(
        stdout.contains("loaded 4 of 6 parameters; initialised: l3.b, l3.w")
            || stdout.contains("loaded 4 of 6 parameters; initialised: l3.w, l3.b"),
        "{stdout}"
    );
    // Same names, other shapes: the mismatches are named, not "no tensor".
    let file = with(&|s: String| s.replace("let hidden = 128", "let hidden = 64"));
    let e = err(&run_file(&file, &fine.join("b")));
    assert!(e.contains("`l1.w`: the model needs [784, 64]"), "{e}");
    assert!(!e.contains("no tensor in the file"), "{e}");
}

/// `nnc check` on a good file says what it covered, in one line per file,
/// as `cargo check` does; a broken one prints each mistake once.
#[test]
fn check_prints_a_summary_on_success_and_each_mistake_once() {
    let out = nnc().args(["check", "examples/mnist.nn", "examples/char_gpt.nn"]).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("checked examples/mnist.nn: 6 files, experiment `seed_mlp` lowered"), "{stderr}");
    assert!(stderr.contains("checked examples/char_gpt.nn:"), "{stderr}");
    let dir = scratch("check_once");
    let file = program_with_data(&dir, &std::path::absolute("data/mnist").unwrap(), |s| {
        s.replace("x = f32(image) / 255.0", "x = image")
    });
    let out = nnc().env("NO_COLOR", "1").arg("check").arg(&file).output().unwrap();
    let e = err(&out);
    assert_eq!(e.matches("expected dtype f32, found u8").count(), 1, "{e}");
    assert!(e.contains("f32(image) / 255.0"), "the hint names the fix at the dataset: {e}");
}

/// Names that start like a keyword are names; ids fit a table with spare
/// rows; a head wider than the classes is allowed (no id reads nothing).
#[test]
fn programs_that_must_check() {
    let text = r#"use std.nn.{Embedding}
use std.loss.cross_entropy

fn twice(assertion: float) -> float { assertion * 2.0 }

model M {
    e: Embedding(512, 8)
    fn (ids: i32[B, 64] classes 100) -> f32[B, 64, 8] { e(ids) + e(arange(64)) }
}

fn wide(logits: f32[B, 12], y: i32[B] classes 10) -> f32 { cross_entropy(logits, y) }
"#;
    let out = nnc::check_source("ok.nn", text, &[]);
    let shown = nnc::diag::render_all(&out.sources, &out.diags, nnc::diag::Style::Plain);
    assert!(out.diags.is_empty(), "{shown}");
}

/// `nnc ir --stage kernels` prints the kernels `nnc run` compiles: the
/// runner's native step is built by the same entry point with the same
/// options, and its schedule prints the same text (`nnc ir` adds a
/// `; from LINE` note under each kernel).
#[test]
fn ir_kernels_are_what_run_compiles() {
    let unnoted = |text: String| {
        text.lines().filter(|l| !l.trim_start().starts_with("; from ")).map(|l| format!("{l}\n")).collect::<String>()
    };
    for file in ["examples/mnist.nn", "examples/mnist_cnn.nn", "examples/char_gpt.nn"] {
        let printed = ok(&nnc().args(["ir", file, "--stage", "kernels"]).output().unwrap());
        let compiled =
            nnc::compile(Path::new(file), &[], nnc::lower::Setup::default()).unwrap_or_else(|_| panic!("{file}"));
        let opts =
            nnc::runtime::Options { in_place: nnc::runner::STEP_SCHEDULE.in_place, threads: 1, c_products: false };
        let step = nnc::runtime::CompiledStep::compile_with(&compiled.lowered.train, opts).unwrap();
        assert!(printed.lines().filter(|l| l.trim_start().starts_with("; from ")).count() > 0, "{file}");
        assert_eq!(unnoted(printed), step.schedule().to_string(), "{file}");
    }
}

/// `--set` is parsed once, by the checker, as the constant's type: an
/// integer given for a float constant is the float, so `lr / 4` stays a
/// float division (lowering once read `--set lr=1` as the int 1, and
/// `1 / 4` trained with a learning rate of 0).
#[test]
fn an_integer_set_on_a_float_constant_stays_a_float() {
    let dir = scratch("set_float");
    let file = program_with_data(&dir, Path::new("data/mnist"), |s| {
        let s = s.replace("let hidden = 128", "let hidden = 128\nlet lr = 1e-3");
        s.replace("adam(lr: 1e-3)", "adam(lr: lr / 4)")
    });
    let compiled = nnc::compile(&file, &["lr=1".into()], nnc::lower::Setup::default()).unwrap_or_else(|_| panic!());
    assert_eq!(compiled.lowered.lr, 0.25);
    let lr = compiled.lowered.hyperparameters.iter().find(|(k, _)| k == "lr").map(|(_, v)| v.clone());
    assert_eq!(lr.as_deref(), Some("1"));
}

/// `model(x)` written in the loss and in a metric is one forward pass with
/// one set of random draws (Keras' `y_pred`): with dropout in the model, a
/// metric that repeats the loss is the loss's own node, and the step draws
/// one dropout mask, not two.
#[test]
fn the_loss_and_the_metrics_share_one_forward_pass() {
    let dir = scratch("one_forward");
    let with = |metrics: &'static str| {
        move |s: String| {
            let s = s.replace("use std.nn.{Linear, relu}", "use std.nn.{Linear, relu, dropout}");
            let s = s.replace("|> l1 |> relu |> l2", "|> l1 |> relu |> dropout(0.5) |> l2");
            s.replace("metrics   = { accuracy: accuracy(model(x), y) }", metrics)
        }
    };
    let compile = |file: &Path| nnc::compile(file, &[], nnc::lower::Setup::default()).unwrap_or_else(|_| panic!());
    let file =
        program_with_data(&dir, Path::new("data/mnist"), with("metrics = { again: cross_entropy(model(x), y) }"));
    let train = compile(&file).lowered.train;
    assert_eq!(train.output("metric/again"), train.output("loss"));
    let randoms = |g: &nnc::ir::Graph| g.ids().filter(|&id| matches!(g.node(id).op, nnc::ir::Op::Random(_))).count();
    let masks = randoms(&train);
    assert!(masks > 0, "the model has dropout");
    let file = program_with_data(&dir, Path::new("data/mnist"), with("metrics = { acc: accuracy(model(x), y) }"));
    assert_eq!(randoms(&compile(&file).lowered.train), masks);
}
