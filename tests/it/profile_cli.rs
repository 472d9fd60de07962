//! `nnc run --profile` and `--trace`: the step's time attributed to the
//! source lines it was written on, a Chrome trace of the run, and `nnc ir`
//! naming the line of every node and kernel. Profiling must not change what
//! the run trains.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(out: &Path, extra: &[&str]) -> String {
    let o = Command::cargo_bin("nnc")
        .unwrap()
        .args(["run", "examples/mnist.nn", "--train-samples", "640", "--eval-samples", "100", "--quiet", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "nnc failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_profile_names_the_source_lines_and_phases_of_the_step() {
    let dir = scratch("profile_lines");
    let stderr = run(&dir, &["--profile"]);
    assert!(stderr.contains("line ") && stderr.contains("mnist.nn:24"), "{stderr}");
    let p = json(&dir.join("profile.json"));
    let (step, kernels) = (num(&p["step_ms"]), num(&p["kernels_ms"]));
    assert!(step > 0.0 && kernels > 0.0 && p["reps"].as_u64().unwrap() >= 3);
    let lines: Vec<&str> = p["by_line"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    // The model's pipe, the optimizer and the preprocessing are all in the step.
    for line in ["mnist.nn:24", "mnist.nn:39", "mnist.nn:31"] {
        assert!(lines.contains(&line), "{line} missing from {lines:?}");
    }
    // The model line runs forward and backward; the optimizer line only updates.
    let row = |name: &str| p["by_line"].as_array().unwrap().iter().find(|l| l["name"] == name).unwrap().clone();
    let (model, optim) = (row("mnist.nn:24"), row("mnist.nn:39"));
    assert!(num(&model["phases_ms"]["forward"]) > 0.0 && num(&model["phases_ms"]["backward"]) > 0.0);
    assert_eq!(num(&model["phases_ms"]["optimizer"]), 0.0);
    assert!(num(&optim["phases_ms"]["optimizer"]) > 0.0 && num(&optim["phases_ms"]["forward"]) == 0.0);
    assert!(model["text"].as_str().unwrap().contains("|> l1"));
    // Library layers are attributed to their own lines in std too.
    let lib = p["by_library_line"].as_array().unwrap();
    assert!(lib.iter().any(|l| l["name"].as_str().unwrap().starts_with("std/nn.nn:")), "{lib:?}");
    // The lines share out the kernels' time, nothing more.
    let total: f64 = p["by_line"].as_array().unwrap().iter().map(|l| num(&l["ms"])).sum();
    assert!((total - kernels).abs() <= 1e-6 * kernels.max(1.0) + 1e-9, "{total} vs {kernels}");
    // Every kernel has a time, a kind and the lines it came from; products report FLOP/s.
    let ks = p["kernels"].as_array().unwrap();
    assert!(ks.iter().all(|k| num(&k["ms"]) >= 0.0 && k["lines"].is_array() && k["kind"].is_string()));
    assert!(ks.iter().any(|k| num(&k["flops"]) > 0.0 && num(&k["gflops"]) > 0.0));
    assert!(num(&p["peak"]["fma_gflops_per_core"]) > 0.0);
    let ops: Vec<&str> = p["by_op"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert!(ops.contains(&"contract"), "{ops:?}");
}

#[test]
fn profiling_and_tracing_do_not_change_what_is_trained() {
    let (plain, profiled) = (scratch("profile_plain"), scratch("profile_on"));
    run(&plain, &[]);
    run(&profiled, &["--profile", "--trace", profiled.join("trace.json").to_str().unwrap()]);
    let weights = |d: &Path| std::fs::read(d.join("checkpoints/final.safetensors")).unwrap();
    assert!(weights(&plain) == weights(&profiled), "profiling changed the trained weights");
    let evals = |d: &Path| {
        let log = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        log.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["event"] == "eval")
            .map(|e| (e["loss"].clone(), e["accuracy"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(evals(&plain), evals(&profiled));
}

#[test]
fn a_trace_holds_kernels_steps_data_evaluation_and_checkpoints() {
    let dir = scratch("trace_events");
    let file = dir.join("trace.json");
    run(&dir, &["--trace", file.to_str().unwrap()]);
    let t = json(&file);
    let events = t["traceEvents"].as_array().unwrap();
    let cats = |c: &str| events.iter().filter(|e| e["cat"] == c).count();
    for c in ["compile", "data", "step", "kernel", "eval", "checkpoint"] {
        assert!(cats(c) > 0, "no {c} events");
    }
    // Complete events with a start and a duration, in microseconds, in order per step.
    for e in events.iter().filter(|e| e["ph"] == "X") {
        assert!(num(&e["ts"]) >= 0.0 && num(&e["dur"]) >= 0.0, "{e}");
    }
    let kernel = events.iter().find(|e| e["cat"] == "kernel").unwrap();
    assert!(kernel["args"]["lines"].as_array().is_some_and(|l| !l.is_empty()), "{kernel}");
}

#[test]
fn nnc_ir_names_the_source_line_and_phase_of_each_node_and_kernel() {
    let ir = |stage: &str| {
        let o =
            Command::cargo_bin("nnc").unwrap().args(["ir", "examples/mnist.nn", "--stage", stage]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let train = ir("train");
    let noted = |text: &str, what: &str| text.lines().any(|l| l.contains("; mnist.nn:24") && l.contains(what));
    assert!(noted(&train, "forward") && noted(&train, "backward"), "{train}");
    assert!(train.lines().any(|l| l.contains("; mnist.nn:39") && l.contains("optimizer")), "{train}");
    assert!(train.contains("(std/nn.nn:"), "library lines are named too");
    let kernels = ir("kernels");
    assert!(kernels.lines().any(|l| l.contains("; from") && l.contains("mnist.nn:24")), "{kernels}");
}
