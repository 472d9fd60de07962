//! Helpers the end-to-end tests share.

use std::path::{Path, PathBuf};

/// An empty directory for one test: `<target tmp>/<group>/<name>`.
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The first `count` records of an MNIST test file in `data/mnist`
/// (`images` or `labels`), `size` bytes each, as they are.
pub fn mnist_test(what: &str, count: usize, size: usize) -> Vec<u8> {
    let (name, header) = match what {
        "images" => ("t10k-images-idx3-ubyte.gz", 16),
        _ => ("t10k-labels-idx1-ubyte.gz", 8),
    };
    let gz = std::fs::read(Path::new("data/mnist").join(name)).unwrap();
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut all).unwrap();
    all[header..header + count * size].to_vec()
}

/// An uncompressed IDX file of bytes of shape `dims`.
pub fn write_idx(path: &Path, dims: &[usize], values: &[u8]) {
    let mut file = vec![0, 0, 8, dims.len() as u8];
    for &d in dims {
        file.extend((d as u32).to_be_bytes());
    }
    file.extend(values);
    std::fs::write(path, &file).unwrap();
}

/// The `nnc` binary under test.
pub fn nnc() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("nnc").unwrap()
}
