//! Golden text of a small MLP's forward and backward graph: the IR text form
//! is an API (stable numbering, stable float printing).

use nnc::autodiff::grad;
use nnc::ir::{DType, Graph, InputRole, NodeId, Type, dot};

fn mlp() -> (Graph, NodeId) {
    let mut g = Graph::new();
    let x = g.input("x", InputRole::Data, Type::f32([4, 3])).unwrap();
    let y = g.input("y", InputRole::Data, Type::new(DType::I32, [4])).unwrap();
    let w1 = g.input("w1", InputRole::Param, Type::f32([3, 5])).unwrap();
    let b1 = g.input("b1", InputRole::Param, Type::f32([5])).unwrap();
    let w2 = g.input("w2", InputRole::Param, Type::f32([5, 2])).unwrap();
    let h = g.matmul(x, w1).unwrap();
    let h = g.add(h, b1).unwrap();
    let zero = g.scalar(0.0);
    let h = g.max(h, zero).unwrap();
    let logits = g.matmul(h, w2).unwrap();
    // Squared error against one-hot labels keeps the golden file short.
    let classes = g.iota(&[4, 2], 1).unwrap();
    let lab = g.reshape(y, &[4, 1]).unwrap();
    let hit = g.eq(classes, lab).unwrap();
    let onehot = g.cast(hit, DType::F32).unwrap();
    let d = g.sub(logits, onehot).unwrap();
    let d2 = g.mul(d, d).unwrap();
    let loss = g.mean(d2, &[0, 1], false).unwrap();
    g.set_output("loss", loss).unwrap();
    let grads = grad(&mut g, loss, &[w1, b1, w2]).unwrap();
    for (name, d) in ["d_w1", "d_b1", "d_w2"].iter().zip(grads) {
        g.set_output(*name, d).unwrap();
    }
    (g, loss)
}

#[test]
fn mlp_forward_and_backward_text() {
    let (g, _) = mlp();
    nnc::ir::verify(&g).unwrap();
    insta::assert_snapshot!(g.to_string());
}

#[test]
fn mlp_optimized_text() {
    let (g, _) = mlp();
    insta::assert_snapshot!(nnc::opt::optimize(&g).unwrap().to_string());
}

#[test]
fn dot_output_is_well_formed() {
    let (g, _) = mlp();
    let d = dot(&g);
    assert!(d.starts_with("digraph nnc {") && d.ends_with("}\n"));
    assert_eq!(d.matches("label=\"").count(), g.len() + g.outputs().len());
    assert!(d.contains("n0 [label=\"%0 = input[\\\"x\\\" data] : f32[4,3]\"];"), "{d}");
}
