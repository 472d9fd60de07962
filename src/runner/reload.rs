//! Hot reload: swap an edited program into a running training loop.
//!
//! Tensors are matched by name and shape: `l1.w` in the new program takes
//! the trained `l1.w` when its shape did not change, and so does each
//! optimizer state (`l1.w@m`); a new or reshaped layer starts from its
//! initialiser while the others keep what they learned. Data and compiled
//! steps are built before anything is swapped, so a reload that fails
//! leaves the run exactly as it was.

use super::RunError;
use super::cache;
use super::engine::Engine;
use super::load;
use super::state::{EvalSteps, Pending, Run, batch_plan, hash_sources, init_state, say};
use crate::check::spec::OnReload;
use crate::lower::{Lowered, SplitPlan};
use serde_json::{Value, json};
use std::time::Instant;

/// What the new program's tensors start from.
#[derive(Default)]
struct Carried {
    /// Trained values carried over: same name, same shape.
    kept: Vec<String>,
    /// From the initialiser, with why when the name existed before.
    initialised: Vec<String>,
    /// The old program's tensors the new one no longer has.
    dropped: Vec<String>,
}

impl Run<'_> {
    /// Swap `program` in between two steps.
    pub(super) fn reload(&mut self, program: crate::Compiled, seen: Instant) -> Result<(), RunError> {
        let new = program.lowered;
        let train_data = match same_split(&self.l.data.train, &new.data.train) {
            true => None,
            false => Some(load::load(&new.data.train, self.opts.train_samples)?),
        };
        // Kept weights with classes numbered otherwise would silently mean other classes.
        if let Some(d) = &train_data
            && d.class_names != self.progress.class_names
        {
            return Err(RunError::Other(
                "the edited data numbers its classes differently (see classes.json); the trained outputs would \
                 change meaning: start a new run for it"
                    .into(),
            ));
        }
        let eval_data = match (&self.l.data.eval, &new.data.eval) {
            (Some(a), Some(b)) if same_split(a, b) => None,
            (_, Some(b)) => Some(Some(load::load(b, self.opts.eval_samples)?)),
            (_, None) => Some(None),
        };
        let batches = batch_plan(&new, train_data.as_ref().unwrap_or(&self.train_data))?.batches_per_epoch();
        let (backend, threads) = (self.opts.backend, self.opts.threads);
        let mut train = Engine::new(&new.train, backend, threads)?;
        let eval_split = eval_data.as_ref().map_or(self.eval_data.as_ref(), Option::as_ref);
        // Compiled now: a program whose evaluation cannot compile is refused
        // here, and training goes on with the last good one.
        let mut eval = EvalSteps::new(self.opts, &new, None, eval_split)?;
        eval.engines(self.opts)?;
        let carried = carry(&self.l, &mut self.train, &new, &mut train)?;
        init_state(&new, &mut train, &carried.kept)?;

        // Nothing below fails but the log: the swap is all or nothing.
        let changed = changes(&self.l, &new);
        let old_batch = self.l.data.train.batch;
        self.cache_key = cache::key(&new.train, &new.eval, backend, threads);
        self.epochs = self.opts.epochs.unwrap_or(new.epochs) as u64;
        (self.l, self.train, self.eval) = (new, train, eval);
        if let Some(d) = train_data {
            self.train_data = d;
        }
        if let Some(d) = eval_data {
            self.eval_data = d;
        }
        self.source_hash = hash_sources(&program.sources);
        self.progress.source_hash = self.source_hash.clone();
        self.sources = program.sources;
        self.follow_policy(old_batch, batches);
        self.pending = Some(self.report(seen, &carried, &changed));
        Ok(())
    }

    /// Move the step counter and the data cursor as the policy says.
    fn follow_policy(&mut self, old_batch: usize, batches: usize) {
        let policy = self.policy();
        if policy.step == OnReload::Restart {
            self.progress.step = 0;
        }
        match policy.data {
            OnReload::Restart => {
                (self.progress.epoch, self.progress.batch) = (0, 0);
                self.progress.sums.clear();
            }
            // The same samples count as seen when the batch size changes.
            OnReload::Continue => {
                let seen = self.progress.batch * old_batch;
                self.progress.batch = (seen / self.l.data.train.batch).min(batches);
            }
        }
    }

    fn report(&self, seen: Instant, c: &Carried, changed: &[(String, String, String)]) -> Pending {
        let total = c.kept.len() + c.initialised.len();
        let mut summary = format!("kept {}/{total} tensors", c.kept.len());
        if !c.initialised.is_empty() {
            summary.push_str(&format!(", initialised {}", brief(&c.initialised)));
        }
        if !c.dropped.is_empty() {
            summary.push_str(&format!(", dropped {}", brief(&c.dropped)));
        }
        if !changed.is_empty() {
            let list: Vec<String> = changed.iter().map(|(k, a, b)| format!("{k} {a} -> {b}")).collect();
            summary.push_str(&format!("; {}", list.join(", ")));
        }
        let policy = self.policy();
        let name = |p: OnReload| if p == OnReload::Restart { "restart" } else { "continue" };
        let event = json!({
            "event": "reload",
            "step": self.progress.step,
            "epoch": self.progress.epoch + 1,
            "kept": c.kept,
            "initialised": c.initialised,
            "dropped": c.dropped,
            "changed": changed.iter().map(|(k, a, b)| (k.clone(), json!([a, b]))).collect::<serde_json::Map<_, _>>(),
            "policy": { "step": name(policy.step), "data": name(policy.data) },
            "source_hash": self.source_hash,
        });
        let swap_ms = seen.elapsed().as_secs_f64() * 1e3;
        Pending { seen, swap_ms, step_at: self.progress.step, summary, event }
    }

    /// Print and log a finished reload: after the first step of the new
    /// program, or when no step follows it.
    pub(super) fn flush_reload(&mut self) -> Result<(), RunError> {
        let Some(mut p) = self.pending.take() else { return Ok(()) };
        let first = (self.progress.step > p.step_at).then(|| p.seen.elapsed().as_secs_f64() * 1e3);
        let timing = match first {
            Some(ms) => format!("reloaded in {:.0} ms (first step {ms:.0} ms after the edit)", p.swap_ms),
            None => format!("reloaded in {:.0} ms", p.swap_ms),
        };
        say(&format!("{timing}: {}", p.summary));
        if let Value::Object(o) = &mut p.event {
            o.insert("reload_ms".into(), json!(p.swap_ms));
            o.insert("first_step_ms".into(), json!(first));
        }
        self.dir.log(&p.event)
    }
}

/// Every parameter and optimizer state with its shape.
fn tensors(l: &Lowered) -> impl Iterator<Item = (&str, &[usize])> {
    let params = l.params.iter().map(|p| (p.name.as_str(), p.shape.as_slice()));
    params.chain(l.states.iter().map(|s| (s.name.as_str(), s.shape.as_slice())))
}

/// Copy each tensor whose name and shape match from `old` into `new`.
fn carry(old_l: &Lowered, old: &mut Engine, new_l: &Lowered, new: &mut Engine) -> Result<Carried, RunError> {
    let mut c = Carried::default();
    for (name, shape) in tensors(new_l) {
        if !new.has_input(name) {
            continue;
        }
        match tensors(old_l).find(|(n, _)| *n == name) {
            Some((_, was)) if was == shape && old.has_input(name) => {
                let values = old.read_f32(name)?;
                new.fill::<f32>(name, |b| {
                    b.copy_from_slice(&values);
                    Ok(())
                })?;
                c.kept.push(name.to_string());
            }
            Some((_, was)) if was != shape => c.initialised.push(format!("{name} ({was:?} -> {shape:?})")),
            _ => c.initialised.push(name.to_string()),
        }
    }
    let still = |n: &str| tensors(new_l).any(|(m, _)| m == n);
    c.dropped = tensors(old_l).filter(|(n, _)| !still(n)).map(|(n, _)| n.to_string()).collect();
    Ok(c)
}

/// Parameters by name, optimizer states (`l1.w@m`) as a count: they follow
/// their parameter, and the full lists are in the log.
fn brief(names: &[String]) -> String {
    let (states, params): (Vec<&String>, Vec<&String>) = names.iter().partition(|n| n.contains('@'));
    let mut out = params.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    match (states.len(), params.is_empty()) {
        (0, _) => {}
        (n, true) => out = format!("{n} optimizer states"),
        (n, false) => out.push_str(&format!(" and {n} optimizer states")),
    }
    out
}

/// Whether two data settings read the same samples the same way.
fn same_split(a: &SplitPlan, b: &SplitPlan) -> bool {
    a.source == b.source && a.split == b.split && a.fields == b.fields && a.keep_last == b.keep_last
}

/// The settings that changed, as `(name, before, after)`.
fn changes(old: &Lowered, new: &Lowered) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = new
        .hyperparameters
        .iter()
        .filter_map(|(k, v)| {
            let (_, was) = old.hyperparameters.iter().find(|(o, _)| o == k)?;
            (was != v).then(|| (k.clone(), was.clone(), v.clone()))
        })
        .collect();
    let mut setting = |name: &str, a: String, b: String| {
        if a != b && !out.iter().any(|(k, _, _)| k == name) {
            out.push((name.into(), a, b));
        }
    };
    setting("lr", old.lr.to_string(), new.lr.to_string());
    setting("batch", old.data.train.batch.to_string(), new.data.train.batch.to_string());
    setting("epochs", old.epochs.to_string(), new.epochs.to_string());
    setting("shuffle", old.data.train.shuffle.to_string(), new.data.train.shuffle.to_string());
    out
}
