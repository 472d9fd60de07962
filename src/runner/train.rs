//! The step loop: initialise, train for the schedule, evaluate.

use super::cache;
use super::checkpoint::{self, Progress, Sums, Tensors};
use super::data::{BatchPlan, Cursor, mix64};
use super::engine::{Elem, Engine, check_dtype};
use super::load::{self, SplitData};
use super::rundir::{Reuse, RunDir};
use super::state::{EvalSteps, Flow, Run, RunOptions, RunSummary, batch_plan, hash_sources, init_state, say};
use super::trace::Trace;
use super::{Command, Control, RunError};
use crate::check::spec::Period;
use crate::ir::DType;
use crate::lower::{Lowered, SCHEDULED_LR};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn run(opts: &RunOptions) -> Result<RunSummary, RunError> {
    run_with(opts, None)
}

/// Train under `control` (`nnc watch`): between two steps it may swap in an
/// edited program, restart, save or quit; a finished run waits for it.
pub fn run_with(opts: &RunOptions, control: Option<&mut dyn Control>) -> Result<RunSummary, RunError> {
    let start = Instant::now();
    let mut run = Run::start(opts, start)?;
    let outcome = match control {
        Some(c) => run.supervise(start, c),
        None => run.train_loop(start, None).and_then(|_| run.profile()),
    };
    run.summary.wall_s = start.elapsed().as_secs_f64();
    run.finish(outcome)
}

impl<'a> Run<'a> {
    fn start(opts: &'a RunOptions, start: Instant) -> Result<Run<'a>, RunError> {
        let compiled = crate::compile(&opts.file, &opts.sets, opts.setup())
            .map_err(|out| RunError::Compile(out.sources, out.diags))?;
        let source_hash = hash_sources(&compiled.sources);
        let (l, sources) = (compiled.lowered, compiled.sources);
        let mut trace = opts.trace.clone().map(|p| Trace::new(p, start, &l.name));
        let cache_key = cache::key(&l.train, &l.eval, opts.backend, opts.threads);
        if let Some(d) =
            [Some(&l.data.train), l.data.eval.as_ref()].into_iter().flatten().find_map(load::missing_source)
        {
            return Err(RunError::Compile(sources, vec![d]));
        }
        // The data loads on a second thread while the training step compiles:
        // each takes tens of milliseconds before the first step can start.
        let (compiled, loaded) = std::thread::scope(|s| {
            let loader = s.spawn(|| load_splits(&l, opts));
            let engines = cache::take(cache_key, &l.train, opts.backend, opts.threads);
            (engines.map(|e| (e, Instant::now())), loader.join())
        });
        let ((train, cached_eval), compiled_at) = compiled?;
        let compile_ms = (compiled_at - start).as_secs_f64() * 1e3;
        let (train_data, eval_data, loading) =
            loaded.map_err(|_| RunError::Other("internal: the data loader panicked".into()))??;
        if let Some(t) = &mut trace {
            t.span("compile", "compile", (start, compiled_at), json!({}));
            t.span("load data", "data", loading, json!({ "samples": train_data.len() }));
        }
        if !opts.quiet {
            say(&super::summary(&l, train.schedule()));
        }
        let reuse = match (&opts.resume, opts.overwrite) {
            (_, true) => Reuse::Overwrite,
            (Some(_), false) => Reuse::Append,
            (None, false) => Reuse::Refuse,
        };
        let eval = EvalSteps::new(opts, &l, cached_eval, eval_data.as_ref())?;
        let dir = RunDir::create(opts.out.as_deref(), &l.name, reuse)?;
        let summary =
            RunSummary { experiment: l.name.clone(), compile_ms, run_dir: dir.path.clone(), ..Default::default() };
        let epochs = opts.epochs.unwrap_or(l.epochs) as u64;
        let progress = Progress {
            experiment: l.name.clone(),
            source_hash: source_hash.clone(),
            seed: l.seed,
            class_names: train_data.class_names.clone(),
            ..Default::default()
        };
        let mut run = Run {
            opts,
            l,
            train,
            eval,
            train_data,
            eval_data,
            dir,
            progress,
            summary,
            epochs,
            source_hash,
            cache_key,
            samples: 0,
            train_secs: 0.0,
            cold: None,
            aside_secs: 0.0,
            pending: None,
            sources,
            trace,
        };
        run.write_config()?;
        if let Some(names) = &run.train_data.class_names {
            run.dir.write_json("classes.json", &json!(names))?;
        }
        if let Some(v) = &run.train_data.vocab {
            let path = run.dir.path.join("vocab.json");
            v.save(&path).map_err(RunError::Data)?;
        }
        init_state(&run.l, &mut run.train, &[])?;
        if let Some(path) = &run.l.init_from.clone() {
            run.load_weights(Path::new(path))?;
        }
        if let Some(path) = &opts.resume {
            run.resume(path)?;
        }
        Ok(run)
    }

    fn plan(&self) -> Result<BatchPlan, RunError> {
        batch_plan(&self.l, &self.train_data)
    }

    /// Train, and once the schedule is done wait for edits and keys.
    fn supervise(&mut self, start: Instant, control: &mut dyn Control) -> Result<(), RunError> {
        loop {
            match self.train_loop(start, Some(&mut *control))? {
                Flow::Quit => return Ok(()),
                Flow::Replan => continue,
                Flow::Go => {}
            }
            self.flush_reload()?;
            self.checkpoint("final")?;
            self.profile()?;
            say(&format!(
                "watching: trained {}/{} epochs; edit the file to go on (raise `epochs` to train more), r restart, s save, q quit",
                self.progress.epoch, self.epochs
            ));
            loop {
                if interrupt_flag().load(Ordering::SeqCst) {
                    return Ok(());
                }
                let Some(cmd) = control.wait(Duration::from_millis(100)) else { continue };
                match self.apply(cmd)? {
                    Flow::Go => {}
                    Flow::Replan => break,
                    Flow::Quit => return Ok(()),
                }
            }
        }
    }

    fn train_loop(&mut self, start: Instant, mut control: Option<&mut dyn Control>) -> Result<Flow, RunError> {
        let plan = self.plan()?;
        let total = (plan.batches_per_epoch() as u64 * self.epochs) as f32;
        let outputs = Engine::metric_outputs(&self.l.train);
        let names: Vec<String> = outputs.iter().map(|n| short(n)).collect();
        if self.progress.sums.names != names {
            self.progress.sums = Sums::new(&names);
        }
        let loss_at = names.iter().position(|n| n == "loss");
        let mut values = vec![0.0; names.len()];
        let interrupted = interrupt_flag();
        let clock = Instant::now();
        let aside_before = self.aside_secs;
        let training = |run: &Self| clock.elapsed().as_secs_f64() - (run.aside_secs - aside_before);
        let rate = |run: &Self| run.samples as f64 / (run.train_secs + training(run)).max(1e-9);
        let mut scratch = Vec::new();
        let mut flow = Flow::Go;
        'epochs: while self.progress.epoch < self.epochs {
            let mut batches = plan.resume(Cursor { epoch: self.progress.epoch, batch: self.progress.batch })?;
            let bar = self.bar(plan.batches_per_epoch());
            while let Some(batch) = batches.next_batch() {
                if interrupted.load(Ordering::SeqCst) {
                    bar.finish_and_clear();
                    self.checkpoint("interrupted")?;
                    return Err(RunError::Interrupted(self.dir.path.join("checkpoints/interrupted.safetensors")));
                }
                let step = self.progress.step + 1;
                let fed = Instant::now();
                feed(&mut self.train, &self.train_data, batch, &mut scratch)?;
                set_step_scalars(&mut self.train, step, total, &self.l)?;
                self.run_step(step, fed)?;
                self.train.read_scalars(&outputs, &mut values)?;
                let loss = loss_at.map_or(f64::NAN, |i| values[i]);
                if !loss.is_finite() {
                    bar.finish_and_clear();
                    let last = self.dir.path.join("checkpoints/last.safetensors");
                    return Err(RunError::Diverged { step, loss, kept: last.exists().then_some(last) });
                }
                if self.summary.first_step_ms == 0.0 {
                    self.summary.first_step_ms = start.elapsed().as_secs_f64() * 1e3;
                }
                self.progress.step = step;
                self.progress.batch += 1;
                self.progress.sums.add(&values, batch.len());
                self.samples += batch.len();
                if self.cold.is_none() {
                    self.cold = Some((self.train_secs + training(self), self.samples));
                    // The evaluation steps compile after the first step: one
                    // that cannot stops the run here, not an epoch later.
                    if self.eval_data.is_some() {
                        let t = Instant::now();
                        self.eval.engines(self.opts)?;
                        self.aside_secs += t.elapsed().as_secs_f64();
                    }
                }
                if self.pending.is_some() {
                    let t = Instant::now();
                    bar.suspend(|| self.flush_reload())?;
                    self.aside_secs += t.elapsed().as_secs_f64();
                }
                self.after_step(&bar, rate(self), &values)?;
                if let Some(cmd) = control.as_deref_mut().and_then(|c| c.poll()) {
                    flow = bar.suspend(|| self.apply(cmd))?;
                    if flow != Flow::Go {
                        bar.finish_and_clear();
                        break 'epochs;
                    }
                }
            }
            bar.finish_and_clear();
            if self.end_epoch(rate(self))? {
                break;
            }
        }
        self.train_secs += training(self);
        self.summary.train_s = self.train_secs;
        self.summary.samples_per_sec = self.samples as f64 / self.train_secs.max(1e-9);
        self.summary.steady_samples_per_sec = match self.cold {
            Some((secs, samples)) if self.samples > samples && self.train_secs > secs => {
                (self.samples - samples) as f64 / (self.train_secs - secs)
            }
            _ => self.summary.samples_per_sec,
        };
        Ok(flow)
    }

    /// Carry out a command from the watcher or the keyboard.
    fn apply(&mut self, cmd: Command) -> Result<Flow, RunError> {
        match cmd {
            Command::Say(text) => {
                eprint!("{text}");
                Ok(Flow::Go)
            }
            Command::Broken(text) => {
                eprintln!("{text}watch: the edit does not compile; training goes on with the last good program");
                self.dir.log(&json!({ "event": "broken_edit", "step": self.progress.step }))?;
                Ok(Flow::Go)
            }
            Command::Save => {
                // Not `step-N`: a checkpoint asked for is never pruned.
                let name = format!("saved-step-{}", self.progress.step);
                self.checkpoint(&name)?;
                say(&format!("saved {}", self.dir.path.join(format!("checkpoints/{name}.safetensors")).display()));
                Ok(Flow::Go)
            }
            Command::Quit => Ok(Flow::Quit),
            Command::Restart => {
                self.restart()?;
                Ok(Flow::Replan)
            }
            Command::Reload { program, seen } => match self.reload(*program, seen) {
                Ok(()) => Ok(Flow::Replan),
                Err(e) => {
                    eprintln!("reload failed: {e}\nwatch: training goes on with the last good program");
                    let event = json!({ "event": "failed_reload", "step": self.progress.step, "error": e.to_string() });
                    self.dir.log(&event)?;
                    Ok(Flow::Go)
                }
            },
        }
    }

    /// `r`: every tensor from its initialiser again, step 0, epoch 1.
    fn restart(&mut self) -> Result<(), RunError> {
        init_state(&self.l, &mut self.train, &[])?;
        if let Some(path) = &self.l.init_from.clone() {
            self.load_weights(Path::new(path))?;
        }
        let step = self.progress.step;
        self.progress = Progress {
            experiment: self.l.name.clone(),
            source_hash: self.source_hash.clone(),
            seed: self.l.seed,
            class_names: self.progress.class_names.take(),
            ..Default::default()
        };
        self.dir.log(&json!({ "event": "restart", "step": 0, "after_step": step }))?;
        say("restarted from scratch: every tensor re-initialised, step 0, epoch 1");
        Ok(())
    }

    fn after_step(&mut self, bar: &ProgressBar, rate: f64, values: &[f64]) -> Result<(), RunError> {
        let step = self.progress.step;
        if let Some(n) = self.opts.log_every.or(self.l.log_every)
            && n > 0
            && step.is_multiple_of(n)
        {
            self.log_step(values, rate)?;
        }
        if step.is_multiple_of(25) && !bar.is_hidden() {
            bar.set_position(self.progress.batch as u64);
            bar.set_message(format!("{}  {rate:.0} samples/s", fmt_metrics(&self.progress.sums.means())));
        }
        if let Period::Steps(n) = self.l.checkpoint_every
            && step.is_multiple_of(n)
        {
            self.checkpoint(&format!("step-{step}"))?;
        }
        if let Period::Steps(n) = self.l.eval_every
            && step.is_multiple_of(n)
        {
            self.run_eval()?;
        }
        Ok(())
    }

    /// A `train_step` event: this step's loss and metrics (not epoch means),
    /// the learning rate it used and the steady samples/s so far.
    fn log_step(&mut self, values: &[f64], rate: f64) -> Result<(), RunError> {
        let lr = self.lr()?;
        let mut event = json!({
            "event": "train_step",
            "epoch": self.progress.epoch + 1,
            "step": self.progress.step,
            "lr": lr,
            "samples_per_sec": rate,
        });
        let named: Vec<(String, f64)> = self.progress.sums.names.iter().cloned().zip(values.iter().copied()).collect();
        extend(&mut event, &named);
        self.dir.log(&event)
    }

    /// The learning rate the last step used: the schedule's, or the constant.
    fn lr(&mut self) -> Result<f64, RunError> {
        let scheduled = self.l.train.outputs().iter().any(|(n, _)| n == SCHEDULED_LR);
        Ok(if scheduled { self.train.scalar(SCHEDULED_LR)? } else { self.l.lr })
    }

    /// Log the epoch, evaluate and checkpoint when due; `true` to stop early.
    fn end_epoch(&mut self, rate: f64) -> Result<bool, RunError> {
        let epoch = self.progress.epoch + 1;
        self.summary.train = self.progress.sums.means();
        let lr = self.lr()?;
        let mut event = json!({ "event": "train", "epoch": epoch, "step": self.progress.step, "lr": lr });
        extend(&mut event, &self.summary.train);
        self.dir.log(&event)?;
        self.histograms()?;
        let due = matches!(self.l.eval_every, Period::Epochs(n) if epoch.is_multiple_of(n) || epoch == self.epochs);
        let stop = due && self.run_eval()?;
        // An epoch without an evaluation of its own shows none (not the last
        // one's numbers again); evaluations every N steps are recent enough.
        let show_eval = due || matches!(self.l.eval_every, Period::Steps(_));
        if !self.opts.quiet {
            say(&epoch_line(epoch, self.epochs, &self.summary, rate, show_eval));
        }
        self.progress.epoch = epoch;
        self.progress.batch = 0;
        self.progress.sums.clear();
        if let Period::Epochs(n) = self.l.checkpoint_every
            && epoch.is_multiple_of(n)
        {
            self.checkpoint(&format!("epoch-{epoch}"))?;
        }
        Ok(stop)
    }

    /// Evaluate, log, and apply early stopping; `true` to stop.
    fn run_eval(&mut self) -> Result<bool, RunError> {
        let Some(data) = &self.eval_data else { return Ok(false) };
        let t = Instant::now();
        let (eval, rest) = self.eval.engines(self.opts)?;
        self.summary.eval = evaluate(&self.l, Engines { train: &mut self.train, eval, rest }, data)?;
        self.aside_secs += t.elapsed().as_secs_f64();
        if let Some(trace) = &mut self.trace {
            trace.span("evaluate", "eval", (t, Instant::now()), json!({ "step": self.progress.step }));
        }
        let split = self.l.data.eval.as_ref().map_or("test".to_string(), |e| e.split.clone());
        let mut event =
            json!({ "event": "eval", "epoch": self.progress.epoch + 1, "step": self.progress.step, "split": split });
        extend(&mut event, &self.summary.eval);
        self.dir.log(&event)?;
        self.keep_best()?;
        let Some(es) = &self.l.early_stop else { return Ok(false) };
        let Some(v) = self.summary.eval.iter().find(|(k, _)| *k == es.metric).map(|(_, v)| *v) else {
            return Ok(false);
        };
        let better = self.progress.best.is_none_or(|b| if es.maximize { v > b } else { v < b });
        if better {
            self.progress.best = Some(v);
            self.progress.since_best = 0;
            return Ok(false);
        }
        self.progress.since_best += 1;
        if self.progress.since_best >= es.patience {
            self.summary.stopped_early = Some(format!(
                "`{}` did not improve for {} evaluations (best {:.4})",
                es.metric,
                es.patience,
                self.progress.best.unwrap_or(v)
            ));
            return Ok(true);
        }
        Ok(false)
    }

    /// `checkpoint = best(metric)`: save `best` when this evaluation beats
    /// every earlier one (ties keep the earlier).
    fn keep_best(&mut self) -> Result<(), RunError> {
        let Some(kb) = self.l.keep_best.clone() else { return Ok(()) };
        let Some(v) = self.summary.eval.iter().find(|(k, _)| *k == kb.metric).map(|(_, v)| *v) else { return Ok(()) };
        let better = self.progress.kept_best.is_none_or(|(b, _)| if kb.maximize { v > b } else { v < b });
        if better && v.is_finite() {
            self.progress.kept_best = Some((v, self.progress.step));
            self.checkpoint("best")?;
        }
        if let Some((b, step)) = self.progress.kept_best {
            self.summary.best = Some((kb.metric, b, step));
        }
        Ok(())
    }

    fn bar(&self, len: usize) -> ProgressBar {
        if self.opts.quiet || !std::io::stdout().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len as u64);
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} (ETA {eta})")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(format!("epoch {}/{}", self.progress.epoch + 1, self.epochs));
        bar.set_position(self.progress.batch as u64);
        bar
    }

    fn tensors(&mut self) -> Result<Tensors, RunError> {
        let mut out = Tensors::new();
        let shapes =
            self.l.params.iter().map(|p| (&p.name, &p.shape)).chain(self.l.states.iter().map(|s| (&s.name, &s.shape)));
        for (name, shape) in shapes.map(|(n, s)| (n.clone(), s.clone())).collect::<Vec<_>>() {
            if self.train.has_input(&name) {
                out.insert(name.clone(), (shape, self.train.read_f32(&name)?));
            }
        }
        Ok(out)
    }

    /// One training step; traced when the run is, kernel by kernel at first.
    fn run_step(&mut self, step: u64, fed: Instant) -> Result<(), RunError> {
        let Some(trace) = &mut self.trace else { return self.train.run() };
        let start = Instant::now();
        trace.span("batch", "data", (fed, start), json!({ "step": step }));
        let mut times = Vec::new();
        match step <= super::trace::KERNEL_STEPS {
            true => self.train.run_timed(&mut times)?,
            false => self.train.run()?,
        }
        trace.span(&format!("step {step}"), "step", (start, Instant::now()), json!({ "step": step }));
        if let Some(s) = self.train.schedule() {
            trace.kernels(&times, s, &self.sources);
        }
        Ok(())
    }

    /// `--profile`: the step's kernels timed, attributed and reported.
    fn profile(&mut self) -> Result<(), RunError> {
        if !self.opts.profile {
            return Ok(());
        }
        let Engine::Native(step) = &mut self.train else {
            eprintln!("--profile times compiled kernels; the interpreter backend has none");
            return Ok(());
        };
        let report = super::profile::measure(step, &self.sources);
        eprint!("{}", report.text);
        self.dir.write_json("profile.json", &report.json)?;
        eprintln!("  written to {}", self.dir.path.join("profile.json").display());
        Ok(())
    }

    fn checkpoint(&mut self, name: &str) -> Result<(), RunError> {
        let t = Instant::now();
        let dir = self.dir.path.join("checkpoints");
        std::fs::create_dir_all(&dir).map_err(|e| RunError::Io { path: dir.clone(), message: e.to_string() })?;
        let tensors = self.tensors()?;
        let paths = [dir.join(format!("{name}.safetensors")), dir.join("last.safetensors")];
        checkpoint::save(&paths, &tensors, &self.progress)?;
        if periodic(name).is_some() {
            checkpoint::prune(&dir, self.opts.keep_checkpoints, periodic)?;
        }
        self.aside_secs += t.elapsed().as_secs_f64();
        if let Some(trace) = &mut self.trace {
            trace.span(&format!("checkpoint {name}"), "checkpoint", (t, Instant::now()), json!({}));
        }
        Ok(())
    }

    /// The tensors a checkpoint must hold: every parameter and state in the step.
    fn wanted(&self) -> Vec<(String, Vec<usize>)> {
        let all = self.l.params.iter().map(|p| (p.name.clone(), p.shape.clone()));
        all.chain(self.l.states.iter().map(|s| (s.name.clone(), s.shape.clone())))
            .filter(|(n, _)| self.train.has_input(n))
            .collect()
    }

    fn resume(&mut self, path: &Path) -> Result<(), RunError> {
        let (tensors, progress) = checkpoint::load(path)?;
        let bad = checkpoint::mismatches(&tensors, &self.wanted());
        if !bad.is_empty() {
            return Err(RunError::Checkpoint { path: path.to_path_buf(), problems: bad });
        }
        let Some(progress) = progress else {
            let problems =
                vec!["no training progress recorded: use `init_from` in the file to start from these weights".into()];
            return Err(RunError::Checkpoint { path: path.to_path_buf(), problems });
        };
        if let Some(problem) = checkpoint::classes_differ(&progress.class_names, &self.progress.class_names) {
            return Err(RunError::Checkpoint { path: path.to_path_buf(), problems: vec![problem] });
        }
        for (name, (_, values)) in &tensors {
            self.train.fill::<f32>(name, |b| {
                b.copy_from_slice(values);
                Ok(())
            })?;
        }
        self.progress = progress;
        Ok(())
    }

    /// `init_from` (pretrain elsewhere, fine-tune here): the file's tensors
    /// under `init_map`'s names and layouts; every tensor whose name matches
    /// a parameter must have its shape, and with a map every other tensor
    /// of the file must be skipped by it. Says what it loaded, what kept its
    /// initialiser and what in the file went unused.
    fn load_weights(&mut self, path: &Path) -> Result<(), RunError> {
        let map = &self.l.init_map;
        let (tensors, mut problems) = super::import::apply(checkpoint::load(path)?.0, map);
        let (mut loaded, mut initialised) = (Vec::new(), Vec::new());
        for p in &self.l.params {
            let Some((shape, values)) = tensors.get(&p.name) else {
                initialised.push(p.name.as_str());
                continue;
            };
            if *shape != p.shape {
                let from = map.renames.iter().find(|r| r.to == p.name);
                let from = from.map_or(String::new(), |r| format!(" (from `{}`, laid out as mapped)", r.from));
                problems.push(format!("`{}`{from}: the model needs {:?}, the file has {shape:?}", p.name, p.shape));
                continue;
            }
            self.train.fill::<f32>(&p.name, |b| {
                b.copy_from_slice(values);
                Ok(())
            })?;
            loaded.push(p.name.as_str());
        }
        if initialised.len() == self.l.params.len() {
            problems.push("no tensor in the file is named like a parameter of the model".into());
        }
        let mut unused: Vec<&str> =
            tensors.keys().map(String::as_str).filter(|n| !n.contains('@') && !loaded.contains(n)).collect();
        unused.sort_unstable();
        // A mapping says what every tensor of the file is for: one it does
        // not mention is a name it missed, not a tensor to drop in silence.
        if !map.is_empty() {
            for n in &unused {
                problems.push(format!(
                    "`{n}` {:?}: neither mapped nor named like a parameter: map it (`{{ from: \"{n}\", to: ... }}`) or skip it (`{{ skip: \"{n}\" }}`)",
                    tensors[*n].0
                ));
            }
        }
        if !problems.is_empty() {
            return Err(RunError::Checkpoint { path: path.to_path_buf(), problems });
        }
        if !self.opts.quiet {
            let list = |v: &[&str]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
            let buffers = self.l.params.iter().any(|p| p.kind == crate::lower::ParamKind::Buffer);
            let what = if buffers { "parameters and buffers" } else { "parameters" };
            say(&format!(
                "init_from {}: loaded {} of {} {what}; initialised: {}; unused in the file: {}",
                path.display(),
                loaded.len(),
                self.l.params.len(),
                list(&initialised),
                list(&unused)
            ));
        }
        Ok(())
    }

    fn write_config(&mut self) -> Result<(), RunError> {
        let l = &self.l;
        let hyper: serde_json::Map<String, Value> =
            l.hyperparameters.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let params: Vec<Value> =
            l.params.iter().map(|p| json!({ "name": p.name, "shape": p.shape, "kind": p.kind.name() })).collect();
        let config = json!({
            "experiment": l.name,
            "file": self.opts.file.display().to_string(),
            "source_hash": self.source_hash,
            "overrides": self.opts.sets,
            "hyperparameters": hyper,
            "epochs": self.epochs,
            "seed": l.seed,
            "batch": l.data.train.batch,
            "lr": l.lr,
            "backend": format!("{:?}", self.opts.backend).to_lowercase(),
            "params": params,
        });
        self.dir.write_json("config.json", &config)?;
        let mut hparams = l.hyperparameters.clone();
        for (k, v) in
            [("lr", l.lr.to_string()), ("batch", l.data.train.batch.to_string()), ("seed", l.seed.to_string())]
        {
            if !hparams.iter().any(|(h, _)| h == k) {
                hparams.push((k.into(), v));
            }
        }
        self.dir.tensorboard.session_start(&hparams)
    }

    /// `early_stop = { .., restore_best: true }`: end with the weights of
    /// the best evaluation (`best.safetensors`, on disk, so a resumed run
    /// restores them too), evaluated again so the summary describes the
    /// weights the run ends with.
    fn restore_best(&mut self) -> Result<(), RunError> {
        if !self.l.early_stop.as_ref().is_some_and(|es| es.restore_best) {
            return Ok(());
        }
        let Some((_, step)) = self.progress.kept_best else { return Ok(()) };
        if step != self.progress.step {
            let path = self.dir.path.join("checkpoints/best.safetensors");
            let (tensors, _) = checkpoint::load(&path)?;
            let bad = checkpoint::mismatches(&tensors, &self.wanted());
            if !bad.is_empty() {
                return Err(RunError::Checkpoint { path, problems: bad });
            }
            for (name, (_, values)) in &tensors {
                self.train.fill::<f32>(name, |b| {
                    b.copy_from_slice(values);
                    Ok(())
                })?;
            }
            if let Some(data) = &self.eval_data {
                let (eval, rest) = self.eval.engines(self.opts)?;
                self.summary.eval = evaluate(&self.l, Engines { train: &mut self.train, eval, rest }, data)?;
            }
            let mut event = json!({ "event": "restore_best", "step": self.progress.step, "from_step": step });
            extend(&mut event, &self.summary.eval);
            self.dir.log(&event)?;
        }
        self.summary.restored_from = Some(step);
        Ok(())
    }

    /// Each parameter's values at the end of an epoch, for TensorBoard.
    fn histograms(&mut self) -> Result<(), RunError> {
        let names: Vec<&str> =
            self.l.params.iter().map(|p| p.name.as_str()).filter(|n| self.train.has_input(n)).collect();
        let mut values = Vec::new();
        for name in names {
            values.push((name, self.train.read_f32(name)?));
        }
        let step = self.progress.step;
        self.dir.tensorboard.histograms(step, values.iter().map(|(n, v)| (*n, &v[..])))
    }

    fn finish(mut self, outcome: Result<(), RunError>) -> Result<RunSummary, RunError> {
        // A failed run keeps its last good checkpoint: nothing more is written.
        if let Err(e) = outcome {
            let _ = self.dir.tensorboard.session_end(false);
            if let Some(t) = &self.trace {
                let _ = t.write();
            }
            return Err(e);
        }
        self.restore_best()?;
        self.dir.tensorboard.session_end(true)?;
        self.checkpoint("final")?;
        let obj = |m: &[(String, f64)]| Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
        let s = &self.summary;
        let summary = json!({
            "experiment": s.experiment,
            "steps": s.steps_or(self.progress.step),
            "train": obj(&s.train),
            "eval": obj(&s.eval),
            "samples_per_sec": s.samples_per_sec,
            "steady_samples_per_sec": s.steady_samples_per_sec,
            "compile_ms": s.compile_ms,
            "first_step_ms": s.first_step_ms,
            "train_s": s.train_s,
            "wall_s": s.wall_s,
            "stopped_early": s.stopped_early,
            "best": s.best.as_ref().map(|(m, v, step)| json!({ "metric": m, "value": v, "step": step })),
            "restored_from_step": s.restored_from,
        });
        self.dir.write_json("summary.json", &summary)?;
        if let Some(t) = &self.trace {
            t.write()?;
        }
        self.summary.steps = self.progress.step;
        cache::put(self.cache_key, (self.train, self.eval.compiled()));
        Ok(self.summary)
    }
}

impl RunSummary {
    fn steps_or(&self, step: u64) -> u64 {
        self.steps.max(step)
    }
}

/// The step or epoch of a periodic checkpoint's name (`epoch-3`, `step-500`).
fn periodic(name: &str) -> Option<u64> {
    let n = name.strip_prefix("epoch-").or_else(|| name.strip_prefix("step-"))?;
    n.parse().ok()
}

/// `loss 0.1234  accuracy 0.9876`.
pub fn fmt_metrics(m: &[(String, f64)]) -> String {
    m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join("  ")
}

fn extend(event: &mut Value, m: &[(String, f64)]) {
    if let Value::Object(o) = event {
        for (k, v) in m {
            o.insert(k.clone(), json!(v));
        }
    }
}

/// Whether Ctrl-C was pressed (from the first call on, Ctrl-C no longer
/// kills the process: the caller must look).
pub fn interrupted() -> bool {
    interrupt_flag().load(Ordering::SeqCst)
}

/// Set once per process by Ctrl-C; the loop checkpoints and stops.
fn interrupt_flag() -> &'static AtomicBool {
    static FLAG: OnceLock<&'static AtomicBool> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        // Without a handler (e.g. one already installed) Ctrl-C just ends the process.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
        flag
    })
}

pub(super) fn short(name: &str) -> String {
    name.trim_start_matches("metric/").to_string()
}

fn epoch_line(epoch: u64, epochs: u64, s: &RunSummary, rate: f64, show_eval: bool) -> String {
    let mut line = format!("epoch {epoch}/{epochs}  train: {}", fmt_metrics(&s.train));
    if show_eval && !s.eval.is_empty() {
        line.push_str(&format!("  |  eval: {}", fmt_metrics(&s.eval)));
    }
    line.push_str(&format!("  ({rate:.0} samples/s)"));
    line
}

/// `step` (1-based), `total_steps`, `lr`, and a per-step RNG key.
fn set_step_scalars(e: &mut Engine, step: u64, total: f32, l: &Lowered) -> Result<(), RunError> {
    e.set_scalar::<f32>("step", step as f32)?;
    e.set_scalar::<f32>("total_steps", total)?;
    e.set_scalar::<f32>("lr", l.lr as f32)?;
    e.set_scalar::<i32>("rng", (mix64(l.seed ^ mix64(step)) >> 33) as i32)
}

/// Gather one batch of every declared field straight into the step's inputs.
pub(super) fn feed(
    e: &mut Engine,
    data: &SplitData,
    batch: &[usize],
    scratch: &mut Vec<usize>,
) -> Result<(), RunError> {
    for (field, column) in &data.columns {
        check_dtype(field.dtype)?;
        match field.dtype {
            DType::F32 => fill_field::<f32>(e, data, &field.name, column, batch, scratch)?,
            DType::I32 => fill_field::<i32>(e, data, &field.name, column, batch, scratch)?,
            _ => fill_field::<u8>(e, data, &field.name, column, batch, scratch)?,
        }
    }
    Ok(())
}

fn fill_field<T: Elem>(
    e: &mut Engine,
    data: &SplitData,
    name: &str,
    column: &str,
    batch: &[usize],
    scratch: &mut Vec<usize>,
) -> Result<(), RunError> {
    if !e.has_input(name) {
        return Ok(());
    }
    e.fill::<T>(name, |buf| Ok(data.gather(column, batch, scratch, buf)?))
}

/// The training split and the evaluation split, and when loading them began and ended.
type Loaded = (SplitData, Option<SplitData>, (Instant, Instant));

fn load_splits(l: &Lowered, opts: &RunOptions) -> Result<Loaded, RunError> {
    let began = Instant::now();
    let train = load::load(&l.data.train, opts.train_samples)?;
    let eval = match &l.data.eval {
        Some(p) => Some(load::load(p, opts.eval_samples)?),
        None => None,
    };
    Ok((train, eval, (began, Instant::now())))
}

/// The steps an evaluation uses.
struct Engines<'e> {
    train: &'e mut Engine,
    eval: &'e mut Engine,
    /// For the split's last, partial batch, when it has one.
    rest: Option<&'e mut Engine>,
}

/// Evaluate on a whole split: full batches with the eval step, the rest
/// with a step lowered for the remainder's size.
fn evaluate(l: &Lowered, mut e: Engines, data: &SplitData) -> Result<Vec<(String, f64)>, RunError> {
    let mut targets: Vec<&mut Engine> = vec![&mut *e.eval];
    targets.extend(e.rest.as_deref_mut());
    copy_params(l, e.train, &mut targets)?;
    super::eval::eval_split(l, e.eval, e.rest, data)
}

/// The current parameters of `from`, read once, into every step of `to`.
fn copy_params(l: &Lowered, from: &mut Engine, to: &mut [&mut Engine]) -> Result<(), RunError> {
    for p in &l.params {
        if !to.iter().any(|t| t.has_input(&p.name)) {
            continue;
        }
        let v = from.read_f32(&p.name)?;
        for t in to.iter_mut().filter(|t| t.has_input(&p.name)) {
            t.fill::<f32>(&p.name, |b| {
                b.copy_from_slice(&v);
                Ok(())
            })?;
        }
    }
    Ok(())
}
