//! Golden IR of every example: the lowered evaluation graph (forward, loss,
//! metrics), the training step as lowered (forward + backward + optimizer
//! update in one graph), and the training step after `opt::optimize`.
//! The IR text form is an API: a change to lowering, autodiff or a pass shows
//! up here as a reviewed diff. Update with `INSTA_UPDATE=always cargo test
//! --test ir_golden` (or `cargo insta review`) and read the diff.
//!
//! char_gpt is shrunk with `--set` so its snapshot stays readable.

use std::path::Path;

fn lowered(file: &str, sets: &[&str]) -> nnc::lower::Lowered {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    match nnc::compile(Path::new(file), &sets, nnc::lower::Setup::default()) {
        Ok(c) => c.lowered,
        Err(out) => panic!("{file}: {}", nnc::diag::render_all(&out.sources, &out.diags, nnc::diag::Style::Plain)),
    }
}

fn snapshot_all(name: &str, file: &str, sets: &[&str]) {
    let l = lowered(file, sets);
    nnc::ir::verify(&l.train).unwrap();
    nnc::ir::verify(&l.eval).unwrap();
    let optimized = nnc::opt::optimize(&l.train).unwrap();
    nnc::ir::verify(&optimized).unwrap();
    insta::assert_snapshot!(format!("{name}_forward"), l.eval.to_string());
    insta::assert_snapshot!(format!("{name}_train"), l.train.to_string());
    insta::assert_snapshot!(format!("{name}_optimized"), optimized.to_string());
}

#[test]
fn mnist_mlp() {
    snapshot_all("mnist", "examples/mnist.nn", &[]);
}

#[test]
fn mnist_cnn() {
    snapshot_all("mnist_cnn", "examples/mnist_cnn.nn", &[]);
}

#[test]
fn char_gpt_small() {
    snapshot_all("char_gpt", "examples/char_gpt.nn", &["d=8", "heads=2", "n_layers=1", "context=4"]);
}

#[test]
fn the_train_graph_holds_forward_backward_and_update() {
    let l = lowered("examples/mnist.nn", &[]);
    let text = l.train.to_string();
    // Forward: the matmuls; backward: their transposed contractions; update:
    // Adam's state inputs and new-state outputs, all in one graph.
    assert!(text.contains("contract[lb=[] rb=[] lc=[1] rc=[0]]"));
    assert!(text.contains("contract[lb=[] rb=[] lc=[0] rc=[0]]"));
    for state in ["l1.w@m", "l1.w@v", "l2.b@m", "l2.b@v"] {
        assert!(l.train.find_input(state).is_some(), "missing state input {state}");
        assert!(l.train.output(state).is_some(), "missing state output {state}");
    }
    for p in ["l1.w", "l1.b", "l2.w", "l2.b"] {
        assert!(l.train.output(p).is_some(), "missing updated parameter {p}");
    }
}
