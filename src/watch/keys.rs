//! Keys typed while watching: `r` restart, `s` save, `q` quit.
//!
//! On a terminal, stdin is switched out of line mode (and echo) so a key
//! acts without Enter; output processing and Ctrl-C are left alone. From a
//! pipe the same letters work as they arrive.

use crate::runner::Command;
use std::io::Read;
use std::sync::mpsc::Sender;

/// Read keys on a thread of their own until stdin ends or the run does.
pub fn spawn(tx: Sender<Command>) {
    let reader = move || {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            for key in &buf[..n] {
                let cmd = match key {
                    b'r' => Command::Restart,
                    b's' => Command::Save,
                    b'q' => Command::Quit,
                    _ => continue,
                };
                if tx.send(cmd).is_err() {
                    return;
                }
            }
        }
    };
    // Without the thread the keys are lost, but watching still works.
    let _ = std::thread::Builder::new().name("nnc-keys".into()).spawn(reader);
}

/// The terminal's settings before the watch changed them; restored on drop.
pub struct RawKeys {
    saved: libc::termios,
}

impl RawKeys {
    /// Keys without Enter, when stdin is a terminal this process owns.
    pub fn enable() -> Option<RawKeys> {
        // SAFETY: plain libc calls on fd 0 with a zeroed, then filled, termios.
        unsafe {
            // A background job changing the terminal would be stopped (SIGTTOU).
            if libc::isatty(0) != 1 || libc::tcgetpgrp(0) != libc::getpgrp() {
                return None;
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut keys = saved;
            keys.c_lflag &= !(libc::ICANON | libc::ECHO);
            keys.c_cc[libc::VMIN] = 1;
            keys.c_cc[libc::VTIME] = 0;
            (libc::tcsetattr(0, libc::TCSANOW, &keys) == 0).then_some(RawKeys { saved })
        }
    }
}

impl Drop for RawKeys {
    fn drop(&mut self) {
        // SAFETY: restores settings read from the same descriptor.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}
