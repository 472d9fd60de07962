//! Helpers the end-to-end tests share.

use std::path::PathBuf;

/// An empty directory for one test: `<target tmp>/<group>/<name>`.
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `nnc` binary under test.
pub fn nnc() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("nnc").unwrap()
}
