//! `nnc watch`: train, and swap in each saved edit of the file.

use super::run::{RunArgs, fail, print_summary, say};
use crate::check::spec::OnReload;
use crate::diag;
use crate::runner::{self, Command, Control, RunError};
use crate::watch::Watch;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    run: RunArgs,
    /// On a reload, keep counting steps or start again from step 0 (which
    /// restarts schedules and Adam's bias correction). Overrides the file's
    /// `on_reload = { step: ... }`; default: continue.
    #[arg(long, value_enum, value_name = "POLICY")]
    reload_step: Option<OnReload>,
    /// On a reload, go on from the current batch of the epoch or start
    /// again from the first epoch. Overrides the file's `on_reload = { data: ... }`;
    /// default: continue.
    #[arg(long, value_enum, value_name = "POLICY")]
    reload_data: Option<OnReload>,
}

pub fn watch(a: WatchArgs) -> ExitCode {
    let mut opts = a.run.options();
    (opts.reload_step, opts.reload_data) = (a.reload_step, a.reload_data);
    if !crate::sweep_axes(&opts.file, &opts.sets).is_empty() {
        eprintln!(
            "error: `nnc watch` trains one program, and this file sweeps; pick a point with `--set NAME=VALUE` for each swept constant"
        );
        return ExitCode::from(2);
    }
    // Ctrl-C from here on stops the run cleanly, so the terminal settings
    // the watch changes are always restored.
    runner::interrupted();
    let mut watch = match Watch::start(&opts, super::style()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    say(&format!("watching {} and its imports: save to reload; keys: r restart, s save, q quit", opts.file.display()));
    let result = loop {
        match runner::run_with(&opts, Some(&mut watch)) {
            Err(RunError::Compile(sources, diags)) => {
                eprint!("{}", diag::render_all(&sources, &diags, super::style()));
                say("watch: the file does not compile yet; waiting for a save that does (q to quit)");
                if !wait_for_fix(&mut watch) {
                    return ExitCode::from(if runner::interrupted() { 130 } else { 1 });
                }
            }
            other => break other,
        }
    };
    drop(watch);
    match result {
        Ok(s) => {
            print_summary(&s);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Wait for an edit that compiles; `false` on `q` or Ctrl-C.
fn wait_for_fix(watch: &mut Watch) -> bool {
    loop {
        if runner::interrupted() {
            return false;
        }
        match watch.wait(Duration::from_millis(100)) {
            Some(Command::Reload { .. }) => return true,
            Some(Command::Say(text) | Command::Broken(text)) => eprint!("{text}"),
            Some(Command::Quit) => return false,
            _ => {}
        }
    }
}
