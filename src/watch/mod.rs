//! `nnc watch`: train while the experiment file is being edited.
//!
//! A background thread watches the file and every module it imports,
//! re-checks and re-lowers the program on each save, and hands the result
//! to the training loop, which swaps it in between two steps (see
//! `runner::reload`). A broken edit only prints its diagnostics: training
//! goes on with the last good program. A second thread turns the keys
//! `r`, `s` and `q` on stdin into commands.
//!
//! Directories are watched rather than files: editors that save by
//! writing a new file and renaming it over the old one replace the inode a
//! file watch would hold.

mod keys;

use crate::diag::{self, Style};
use crate::runner::{Command, Control, RunOptions};
use crate::span::SourceMap;
use notify::{EventKind, RecursiveMode, Watcher as _};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// Saves come as bursts of events (truncate, write, rename); the program is
/// compiled once the files have been quiet this long.
const QUIET: Duration = Duration::from_millis(15);

/// The watcher and the keyboard, as the training loop sees them.
pub struct Watch {
    commands: Receiver<Command>,
    /// Restores the terminal when the watch ends.
    _keys: Option<keys::RawKeys>,
}

impl Watch {
    /// Start watching what `opts.file` reads; diagnostics are rendered in `style`.
    pub fn start(opts: &RunOptions, style: Style) -> Result<Watch, String> {
        let (tx, commands) = channel();
        let (events_tx, events) = channel();
        let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            let _ = events_tx.send(e);
        })
        .map_err(|e| format!("cannot watch files: {e}"))?;
        let mut files = Files { watcher, dirs: HashSet::new(), files: HashSet::new() };
        let (program, _) = crate::resolve::load(&opts.file);
        files.follow(&program.sources)?;
        let fingerprint = fingerprint(&program.sources);
        let opts = opts.clone();
        let keys_tx = tx.clone();
        std::thread::Builder::new()
            .name("nnc-watch".into())
            .spawn(move || Recompiler { opts, style, files, fingerprint, tx }.run(events))
            .map_err(|e| format!("cannot start the watcher: {e}"))?;
        let raw = keys::RawKeys::enable();
        keys::spawn(keys_tx);
        Ok(Watch { commands, _keys: raw })
    }
}

impl Control for Watch {
    fn poll(&mut self) -> Option<Command> {
        self.commands.try_recv().ok()
    }

    fn wait(&mut self, timeout: Duration) -> Option<Command> {
        self.commands.recv_timeout(timeout).ok()
    }
}

/// The files the program read, and the directories watched for them.
struct Files {
    watcher: notify::RecommendedWatcher,
    dirs: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
}

impl Files {
    /// Watch every on-disk file in `sources` (imports come and go with edits).
    fn follow(&mut self, sources: &SourceMap) -> Result<(), String> {
        for path in on_disk(sources) {
            let Some((dir, name)) = split(path) else { continue };
            if self.dirs.insert(dir.clone()) {
                self.watcher
                    .watch(&dir, RecursiveMode::NonRecursive)
                    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
            }
            self.files.insert(dir.join(name));
        }
        Ok(())
    }

    fn touches(&self, event: &notify::Event) -> bool {
        let writes = matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_));
        writes && event.paths.iter().any(|p| self.files.contains(p))
    }
}

/// The watched form of a path: its directory, canonical, and its name.
fn split(path: &Path) -> Option<(PathBuf, std::ffi::OsString)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some((dir.canonicalize().ok()?, path.file_name()?.to_os_string()))
}

fn on_disk(sources: &SourceMap) -> impl Iterator<Item = &Path> {
    (0..sources.len()).filter_map(|i| sources.get(crate::span::FileId(i as u32)).path.as_deref())
}

/// The text of every file read, so that a save that changes nothing (or
/// the compiler's own reads) does not reload.
fn fingerprint(sources: &SourceMap) -> Vec<(PathBuf, std::sync::Arc<str>)> {
    (0..sources.len())
        .map(|i| sources.get(crate::span::FileId(i as u32)))
        .filter_map(|f| Some((f.path.clone()?, f.text.clone())))
        .collect()
}

/// The watcher thread: events in, compiled programs or diagnostics out.
struct Recompiler {
    opts: RunOptions,
    style: Style,
    files: Files,
    fingerprint: Vec<(PathBuf, std::sync::Arc<str>)>,
    tx: Sender<Command>,
}

impl Recompiler {
    fn run(mut self, events: Receiver<notify::Result<notify::Event>>) {
        while let Ok(event) = events.recv() {
            let Ok(event) = event else { continue };
            if !self.files.touches(&event) {
                continue;
            }
            let seen = Instant::now();
            // Only events on the watched files extend the quiet period: a
            // log written beside the experiment every millisecond must not
            // hold a reload back.
            let mut last = seen;
            while last.elapsed() < QUIET {
                match events.recv_timeout(QUIET.saturating_sub(last.elapsed())) {
                    Ok(Ok(e)) if self.files.touches(&e) => last = Instant::now(),
                    Ok(_) => {}
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            if self.compile(seen).is_err() {
                return; // the run has ended
            }
        }
    }

    fn compile(&mut self, seen: Instant) -> Result<(), std::sync::mpsc::SendError<Command>> {
        let compiled = crate::compile(&self.opts.file, &self.opts.sets, self.opts.setup());
        let sources = match &compiled {
            Ok(c) => &c.sources,
            Err(out) => &out.sources,
        };
        let now = fingerprint(sources);
        if now == self.fingerprint {
            return Ok(());
        }
        self.fingerprint = now;
        if let Err(e) = self.files.follow(sources) {
            self.tx.send(Command::Say(format!("watch: {e}\n")))?;
        }
        match compiled {
            Ok(c) => self.tx.send(Command::Reload { program: Box::new(c), seen }),
            Err(out) => self.tx.send(Command::Broken(diag::render_all(&out.sources, &out.diags, self.style))),
        }
    }
}
