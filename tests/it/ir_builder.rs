//! The builder: hash-consing, insert-time folding, and shape errors as values.

use nnc::ir::{BinaryOp, DType, Graph, InputRole, IrError, Node, NodeId, Op, Type, UnaryOp, verify};

fn x(g: &mut Graph, shape: &[usize]) -> NodeId {
    g.input("x", InputRole::Data, Type::f32(shape.to_vec())).unwrap()
}

#[test]
fn hash_consing_shares_identical_nodes() {
    let mut g = Graph::new();
    let a = x(&mut g, &[3]);
    let e1 = g.exp(a).unwrap();
    let e2 = g.exp(a).unwrap();
    assert_eq!(e1, e2);
    // Commutative operands are ordered, so a*b and b*a are one node.
    let b = g.input("b", InputRole::Data, Type::f32([3])).unwrap();
    assert_eq!(g.mul(a, b).unwrap(), g.mul(b, a).unwrap());
    assert_ne!(g.sub(a, b).unwrap(), g.sub(b, a).unwrap());
    // Same input declaration = same node; same name, other type = error.
    assert_eq!(x(&mut g, &[3]), a);
    assert!(g.input("x", InputRole::Data, Type::f32([4])).is_err());
    let n = g.len();
    let _ = g.exp(a).unwrap();
    assert_eq!(g.len(), n);
}

#[test]
fn constants_fold_as_they_are_built() {
    let mut g = Graph::new();
    let two = g.constant(2.0, Type::f32([2, 2]));
    let three = g.constant(3.0, Type::f32([2, 2]));
    let s = g.add(two, three).unwrap();
    assert_eq!(g.splat(s), Some(5.0));
    let e = g.exp(s).unwrap();
    assert_eq!(g.splat(e), Some(5f64.exp() as f32 as f64), "folded at f32");
    // f32 rounding: 0.1 + 0.2 as an f32 kernel computes it.
    let a = g.scalar(0.1);
    let b = g.scalar(0.2);
    let c = g.add(a, b).unwrap();
    assert_eq!(g.splat(c), Some((0.1f32 + 0.2f32) as f64));
    let r = g.reshape(two, &[4]).unwrap();
    assert_eq!(g.splat(r), Some(2.0));
    let total = g.sum_all(two).unwrap();
    assert_eq!(g.splat(total), Some(8.0));
    let lit = g.literal(&[4.0, 4.0], Type::f32([2])).unwrap();
    assert_eq!(g.splat(lit), Some(4.0), "a uniform literal is a splat");
}

#[test]
fn identities_fold_but_unsafe_float_ones_do_not() {
    let mut g = Graph::new();
    let a = x(&mut g, &[3]);
    let one = g.scalar(1.0);
    let zero = g.scalar(0.0);
    assert_eq!(g.mul(a, one).unwrap(), a);
    assert_eq!(g.add(zero, a).unwrap(), a);
    assert_eq!(g.div(a, one).unwrap(), a);
    let n = g.neg(a).unwrap();
    assert_eq!(g.neg(n).unwrap(), a);
    assert_eq!(g.max(a, a).unwrap(), a);
    // x * 0 is not 0 for floats (NaN, inf): kept.
    let m0 = g.mul(a, zero).unwrap();
    assert!(matches!(g.node(m0).op, Op::Binary(BinaryOp::Mul)));
    // ... but is for integers.
    let i = g.input("i", InputRole::Data, Type::new(DType::I32, [3])).unwrap();
    let izero = g.constant(0.0, Type::scalar(DType::I32));
    let im = g.mul(i, izero).unwrap();
    assert_eq!(g.splat(im), Some(0.0));
    let cast = g.cast(a, DType::F32).unwrap();
    assert_eq!(cast, a);
}

#[test]
fn movement_chains_collapse() {
    let mut g = Graph::new();
    let a = x(&mut g, &[2, 3, 4]);
    assert_eq!(g.reshape(a, &[2, 3, 4]).unwrap(), a);
    let r1 = g.reshape(a, &[6, 4]).unwrap();
    let r2 = g.reshape(r1, &[24]).unwrap();
    assert_eq!(g.node(r2).inputs, vec![a]);
    assert_eq!(g.permute(a, &[0, 1, 2]).unwrap(), a);
    let p1 = g.permute(a, &[1, 2, 0]).unwrap();
    let p2 = g.permute(p1, &[2, 0, 1]).unwrap();
    assert_eq!(p2, a, "inverse permutations cancel");
    assert_eq!(g.broadcast_to(a, &[2, 3, 4]).unwrap(), a);
    let s = g.slice(a, &[0, 0, 0], &[2, 3, 4], &[1, 1, 1]).unwrap();
    assert_eq!(s, a);
    assert_eq!(g.pad(a, &[0, 0, 0], &[0, 0, 0], 0.0).unwrap(), a);
    assert_eq!(g.concat(&[a], 1).unwrap(), a);
}

#[test]
fn shape_errors_are_values() {
    let mut g = Graph::new();
    let a = x(&mut g, &[2, 3]);
    let b = g.input("b", InputRole::Data, Type::f32([4])).unwrap();
    let i = g.input("i", InputRole::Data, Type::new(DType::I32, [2, 3])).unwrap();
    let errs = [
        g.add(a, b),
        g.binary(BinaryOp::Add, a, i),
        g.matmul(a, b),
        g.reshape(a, &[5]),
        g.permute(a, &[0, 0]),
        g.broadcast_to(a, &[3, 3]),
        g.slice(a, &[0, 2], &[2, 1], &[1, 1]),
        g.slice(a, &[0, 0], &[2, 3], &[1, 0]),
        g.pad(a, &[1], &[1], 0.0),
        g.concat(&[a, b], 0),
        g.concat(&[], 0),
        g.gather(a, a, 0),
        g.sum(a, &[2]),
        g.unary(UnaryOp::Exp, i),
        g.unary(UnaryOp::Not, a),
        g.iota(&[2], 1),
        g.random(a, 0, &[2]),
        g.literal(&[1.0, 2.0], Type::f32([3])),
        g.insert(Op::Select, &[a, a, a]),
        g.insert(Op::StopGradient, &[NodeId(999)]),
    ];
    for (k, e) in errs.into_iter().enumerate() {
        let err = e.expect_err(&format!("case {k} should fail"));
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(g.add(a, b).unwrap_err().to_string(), "broadcast: shapes [2,3] and [4] do not broadcast");
}

#[test]
fn verifier_catches_broken_graphs() {
    let mut g = Graph::new();
    let a = x(&mut g, &[2]);
    let e = g.exp(a).unwrap();
    g.set_output("e", e).unwrap();
    verify(&g).unwrap();
    let mut nodes = g.nodes().to_vec();
    // A forward reference.
    nodes[1].inputs = vec![NodeId(1)];
    let bad = Graph::from_raw(nodes, vec![("e".into(), e)]);
    assert!(matches!(verify(&bad), Err(IrError::Invalid { .. })));
    // A stored type that inference disagrees with.
    let mut nodes = g.nodes().to_vec();
    nodes[1].ty = Type::f32([3]);
    assert!(verify(&Graph::from_raw(nodes, vec![])).is_err());
    // A dangling output.
    let nodes: Vec<Node> = g.nodes().to_vec();
    assert!(verify(&Graph::from_raw(nodes, vec![("o".into(), NodeId(5))])).is_err());
}

#[test]
fn broadcasting_helpers() {
    let mut g = Graph::new();
    let a = x(&mut g, &[4, 1, 3]);
    let b = g.input("b", InputRole::Data, Type::f32([5, 1])).unwrap();
    let s = g.add(a, b).unwrap();
    assert_eq!(g.ty(s).unwrap().shape, vec![4, 5, 3]);
    let m = g.mean(s, &[0, 2], true).unwrap();
    assert_eq!(g.ty(m).unwrap().shape, vec![1, 5, 1]);
    let w = g.input("w", InputRole::Param, Type::f32([2, 3, 6])).unwrap();
    let bm = g.input("bm", InputRole::Data, Type::f32([7, 1, 5, 2])).unwrap();
    let mm = g.matmul(bm, w).unwrap_err();
    assert!(mm.to_string().contains("matmul"), "{mm}");
    let v = g.input("v", InputRole::Data, Type::f32([4, 2, 5, 2])).unwrap();
    let w2 = g.input("w2", InputRole::Data, Type::f32([2, 2, 6])).unwrap();
    let p = g.matmul(v, w2).unwrap();
    assert_eq!(g.ty(p).unwrap().shape, vec![4, 2, 5, 6]);
}
