//! `nnc run --trace FILE`: a Chrome trace (the JSON Perfetto and
//! chrome://tracing open) of the run: compiling, loading data, each step
//! with the kernels of the first [`KERNEL_STEPS`] steps inside it, every
//! evaluation and checkpoint write.

use super::RunError;
use crate::schedule::Schedule;
use crate::span::SourceMap;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Instant;

/// Steps whose kernels are traced one by one; later steps appear whole,
/// so a long run's trace stays a few megabytes.
pub const KERNEL_STEPS: u64 = 20;

pub struct Trace {
    path: PathBuf,
    origin: Instant,
    events: Vec<Value>,
}

impl Trace {
    /// A trace whose time 0 is `origin` (the start of the run).
    pub fn new(path: PathBuf, origin: Instant, experiment: &str) -> Trace {
        let meta = |name: &str, args: Value| json!({ "name": name, "ph": "M", "pid": 1, "tid": 1, "args": args });
        let events = vec![
            meta("process_name", json!({ "name": format!("nnc run {experiment}") })),
            meta("thread_name", json!({ "name": "training loop" })),
        ];
        Trace { path, origin, events }
    }

    /// Microseconds since the start, to the nanosecond.
    fn micros(&self, t: Instant) -> f64 {
        (t.saturating_duration_since(self.origin).as_secs_f64() * 1e9).round() / 1e3
    }

    /// A complete event from `start` to `end`.
    pub fn span(&mut self, name: &str, cat: &str, (start, end): (Instant, Instant), args: Value) {
        let (ts, end) = (self.micros(start), self.micros(end));
        let event = json!({ "name": name, "cat": cat, "ph": "X", "ts": ts, "dur": ((end - ts) * 1e3).round() / 1e3, "pid": 1, "tid": 1, "args": args });
        self.events.push(event);
    }

    /// The kernels of one step, as `CompiledStep::run_timed` reported them.
    pub fn kernels(&mut self, times: &[(usize, Instant, Instant)], s: &Schedule, sources: &SourceMap) {
        for &(i, a, b) in times {
            let Some(k) = s.kernels.get(i) else { continue };
            let mut lines: Vec<String> = Vec::new();
            for sp in k.origins.iter().filter_map(|x| x.origin.span) {
                let l = sources.line_label(sp);
                if !lines.contains(&l) {
                    lines.push(l);
                }
            }
            let args = json!({ "kernel": i, "lines": lines, "flops": k.flops() });
            self.span(&k.label, "kernel", (a, b), args);
        }
    }

    /// Writes the trace (atomically: a crash never leaves half a file).
    pub fn write(&self) -> Result<(), RunError> {
        let doc = json!({ "traceEvents": self.events, "displayTimeUnit": "ms" });
        let text = serde_json::to_string(&doc).unwrap_or_default();
        super::checkpoint::write_atomic(&self.path, text.as_bytes())
    }
}
