//! `nnc run --profile`: where a training step's time goes, by kernel, by IR
//! op kind, by phase (forward, backward, optimizer) and by source line.
//!
//! The step is timed kernel by kernel, interleaved with whole steps, on
//! the last batch; its buffers are restored afterwards, so a profiled run
//! trains exactly as an unprofiled one, and the compiled step itself
//! carries no timing code. A fused kernel's time is split among the nodes
//! it computes by their work (see [`crate::schedule::Share`]).

use crate::ir::Phase;
use crate::runtime::{CompiledStep, StepProfile, peak};
use crate::schedule::{KernelBody, Schedule};
use crate::span::SourceMap;
use serde_json::{Value, json};
use std::fmt::Write;

/// Seconds of profiling to aim for, whatever the step's size.
const BUDGET_S: f64 = 1.0;

/// Where time went, by one key (a line, an op kind), split by phase.
#[derive(Default)]
struct Bucket {
    /// By [`Phase::ALL`] order, then time no node stands for (copies).
    secs: [f64; 4],
}

impl Bucket {
    fn total(&self) -> f64 {
        self.secs.iter().sum()
    }
}

/// Buckets keyed by name, in first-seen order.
#[derive(Default)]
struct Table(Vec<(String, String, Bucket)>);

impl Table {
    fn add(&mut self, key: &str, text: &str, phase: Option<Phase>, secs: f64) {
        let i = match self.0.iter().position(|(k, ..)| k == key) {
            Some(i) => i,
            None => {
                self.0.push((key.to_string(), text.to_string(), Bucket::default()));
                self.0.len() - 1
            }
        };
        self.0[i].2.secs[phase.map_or(3, |p| p as usize)] += secs;
    }

    fn sorted(&self) -> Vec<&(String, String, Bucket)> {
        let mut rows: Vec<_> = self.0.iter().collect();
        rows.sort_by(|a, b| b.2.total().total_cmp(&a.2.total()));
        rows
    }
}

/// The report: its text and `profile.json`'s contents.
pub struct Report {
    pub text: String,
    pub json: Value,
}

/// Profiles `step` and attributes its kernels to `sources`' lines.
pub fn measure(step: &mut CompiledStep, sources: &SourceMap) -> Report {
    let estimate = step.profile(1).step;
    let reps = ((BUDGET_S / (2.0 * estimate.max(1e-6))) as usize).clamp(3, 50);
    let prof = step.profile(reps);
    let (fma, mem) = (peak::fma_gflops(), peak::memory_gbps());
    report(step.schedule(), &prof, sources, reps, (fma, mem))
}

fn report(s: &Schedule, prof: &StepProfile, sources: &SourceMap, reps: usize, (fma, mem): (f64, f64)) -> Report {
    let [mut lines, mut ops, mut calls, mut inside]: [Table; 4] = Default::default();
    let mut kernels = Vec::new();
    for (i, k) in s.kernels.iter().enumerate() {
        let secs = prof.kernels[i];
        let work: f64 = k.origins.iter().map(|x| x.work).sum();
        if k.origins.is_empty() {
            lines.add("(no source line)", "copies between buffers", None, secs);
            ops.add("copy", "", None, secs);
        }
        let mut where_ = Vec::new();
        for sh in &k.origins {
            // Only index arithmetic: an equal share each.
            let part = if work > 0.0 { secs * sh.work / work } else { secs / k.origins.len() as f64 };
            let (key, text) = match sh.origin.span {
                Some(sp) => (sources.line_label(sp), sources.line_text(sp).to_string()),
                None => ("(no source line)".to_string(), "step counter, learning rate".to_string()),
            };
            lines.add(&key, &text, Some(sh.origin.phase), part);
            if let Some(sp) = sh.origin.span {
                let col = sources.get(sp.file).line_col(sp.start as usize).1;
                let call = format!("{}:{col}", sources.line_label(sp));
                calls.add(&call, sources.text(sp), Some(sh.origin.phase), part);
            }
            if let (Some(sp), Some(inner)) = (sh.origin.span, sh.origin.inner)
                && inner.file != sp.file
            {
                inside.add(&sources.line_label(inner), sources.line_text(inner), Some(sh.origin.phase), part);
            }
            ops.add(sh.op, "", Some(sh.origin.phase), part);
            if !where_.contains(&key) {
                where_.push(key);
            }
        }
        let (flops, bytes, threads) = (k.flops() as f64, k.bytes(&s.buffers) as f64, prof.threads[i] as f64);
        kernels.push(json!({
            "index": i,
            "label": k.label,
            "kind": kind(&k.body),
            "ms": secs * 1e3,
            "threads": prof.threads[i],
            "flops": flops,
            "bytes": bytes,
            "gflops": flops / secs.max(1e-12) / 1e9,
            "gbytes_per_s": bytes / secs.max(1e-12) / 1e9,
            "of_peak_flops": flops / secs.max(1e-12) / 1e9 / (fma * threads),
            "of_peak_bytes": bytes / secs.max(1e-12) / 1e9 / (mem * threads),
            "lines": where_,
        }));
    }
    let sum: f64 = prof.kernels.iter().sum();
    let json = json!({
        "reps": reps,
        "step_ms": prof.step * 1e3,
        "kernels_ms": sum * 1e3,
        "peak": { "fma_gflops_per_core": fma, "memory_gbytes_per_s_per_core": mem },
        "by_line": table_json(&lines),
        "by_op": table_json(&ops),
        "by_expression": table_json(&calls),
        "by_library_line": table_json(&inside),
        "by_phase": phases_json(&lines),
        "kernels": kernels,
    });
    let text = text(&json, [&lines, &calls, &inside, &ops], sum);
    Report { text, json }
}

fn kind(b: &KernelBody) -> &'static str {
    match b {
        KernelBody::Loop(_) => "loop",
        KernelBody::Gemm(_) => "gemm",
        KernelBody::Conv(_) => "conv",
    }
}

fn split(b: &Bucket) -> Value {
    json!({
        "forward": b.secs[0] * 1e3,
        "backward": b.secs[1] * 1e3,
        "optimizer": b.secs[2] * 1e3,
        "other": b.secs[3] * 1e3,
    })
}

fn table_json(t: &Table) -> Value {
    let rows = t.sorted().into_iter().map(|(key, text, b)| {
        let mut row = json!({ "name": key, "ms": b.total() * 1e3, "phases_ms": split(b) });
        if !text.is_empty() {
            row["text"] = json!(text);
        }
        row
    });
    Value::Array(rows.collect())
}

fn phases_json(lines: &Table) -> Value {
    let mut all = Bucket::default();
    for (_, _, b) in &lines.0 {
        for (a, x) in all.secs.iter_mut().zip(b.secs) {
            *a += x;
        }
    }
    split(&all)
}

/// Code without its `//` comment (one outside a string literal).
fn code(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '/' if !quoted && line[i + 1..].starts_with('/') => return line[..i].trim_end(),
            _ => {}
        }
    }
    line
}

fn text(j: &Value, [lines, calls, inside, ops]: [&Table; 4], sum: f64) -> String {
    let ms = |v: &Value| v.as_f64().unwrap_or(0.0);
    let step = ms(&j["step_ms"]);
    let pct = |x: f64| 100.0 * x / (sum * 1e3).max(1e-12);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nprofile ({} steps, kernel by kernel): {} kernels take {:.2} ms of a {step:.2} ms step ({:.0}%)",
        j["reps"],
        j["kernels"].as_array().map_or(0, Vec::len),
        sum * 1e3,
        100.0 * sum * 1e3 / step.max(1e-12),
    );
    let _ = writeln!(
        out,
        "\n  {:<16} {:>9} {:>6} {:>8} {:>8} {:>8}  source",
        "line", "ms/step", "%", "forward", "backward", "update"
    );
    for (key, text, b) in lines.sorted().into_iter().take(15).filter(|r| r.2.total() > 5e-7) {
        let [f, bw, u, _] = b.secs.map(|x| x * 1e3);
        let t = b.total() * 1e3;
        let text: String = code(text).chars().take(60).collect();
        let _ = writeln!(out, "  {key:<16} {t:>9.3} {:>5.1}% {f:>8.3} {bw:>8.3} {u:>8.3}  {text}", pct(t));
    }
    let by_call: Vec<String> = calls
        .sorted()
        .into_iter()
        .take(6)
        .map(|(k, text, b)| {
            let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(24).collect();
            format!("{text} ({k}) {:.0}%", pct(b.total() * 1e3))
        })
        .collect();
    let _ = writeln!(out, "\n  by expression: {}", by_call.join(", "));
    let lib = inside.sorted();
    if !lib.is_empty() {
        let _ = writeln!(out, "  inside library layers:");
    }
    for (key, text, b) in lib.into_iter().take(6) {
        let text: String = code(text).chars().take(60).collect();
        let _ = writeln!(out, "    {key:<18} {:>9.3} ms {:>5.1}%  {text}", b.total() * 1e3, pct(b.total() * 1e3));
    }
    let p = &j["by_phase"];
    let _ = writeln!(
        out,
        "  by phase: forward {:.2} ms, backward {:.2} ms, optimizer {:.2} ms, copies {:.2} ms",
        ms(&p["forward"]),
        ms(&p["backward"]),
        ms(&p["optimizer"]),
        ms(&p["other"])
    );
    let by_op: Vec<String> = ops
        .sorted()
        .into_iter()
        .take(8)
        .map(|(k, _, b)| format!("{k} {:.2} ms ({:.0}%)", b.total() * 1e3, pct(b.total() * 1e3)))
        .collect();
    let _ = writeln!(out, "  by op: {}", by_op.join(", "));
    let _ = writeln!(
        out,
        "\n  slowest kernels (of the peak of the threads used: {:.0} GFLOP/s FMA, {:.0} GB/s copy per core; \
         data in cache can beat the copy rate)",
        ms(&j["peak"]["fma_gflops_per_core"]),
        ms(&j["peak"]["memory_gbytes_per_s_per_core"])
    );
    let mut ks: Vec<&Value> = j["kernels"].as_array().map(|v| v.iter().collect()).unwrap_or_default();
    ks.sort_by(|a, b| ms(&b["ms"]).total_cmp(&ms(&a["ms"])));
    for k in ks.into_iter().take(10) {
        let line = k["lines"].get(0).and_then(Value::as_str).unwrap_or("");
        let label: String = k["label"].as_str().unwrap_or("").chars().take(40).collect();
        let speed = if ms(&k["flops"]) > 0.0 {
            format!("{:>6.1} GFLOP/s {:>3.0}% of peak", ms(&k["gflops"]), 100.0 * ms(&k["of_peak_flops"]))
        } else {
            format!("{:>6.1} GB/s    {:>3.0}% of copy", ms(&k["gbytes_per_s"]), 100.0 * ms(&k["of_peak_bytes"]))
        };
        let name = format!("k{}", k["index"]);
        let _ = writeln!(out, "  {name:<5} {:>8.3} ms  {speed}  {line:<16} {label}", ms(&k["ms"]));
    }
    out
}
