//! An outside oracle for autodiff: gradients of the seed MLP's loss and of
//! one std transformer block, for fixed weights and inputs, against JAX in
//! float64. The fixture is made by `benches/oracle/jax_grads.py` and
//! committed, so this test runs without Python.
//!
//! Tolerance 1e-5 relative, per element with an absolute floor of 1e-5 of
//! the tensor's largest gradient. nnc evaluates in f64 but its constants
//! are rounded to f32 when the graph is built (0.7978845608 in gelu, the
//! 1/255 scaling of pixels), which moves results by ~1e-8 relative; a
//! wrong rule moves them by O(1).

use ndarray::{ArrayD, IxDyn};
use nnc::autodiff;
use nnc::ir::interp::{self, Precision, Value};
use nnc::ir::{Graph, NodeId, Op};
use std::collections::HashMap;
use std::path::Path;

const FIXTURES: &str = "tests/fixtures/oracle";

/// Parameter k's values: scale * sin(0.37 i + 1.3 k + 0.1), as the script.
fn formula(k: usize, shape: &[usize], scale: f64) -> Value {
    let n: usize = shape.iter().product();
    let v = (0..n).map(|i| scale * (0.37 * i as f64 + 1.3 * k as f64 + 0.1).sin()).collect();
    Value::F64(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
}

struct Expected {
    loss: f64,
    grads: HashMap<String, ArrayD<f64>>,
}

fn expected(name: &str) -> Expected {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join(format!("{name}.json"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut grads = HashMap::new();
    for (k, v) in json["grads"].as_object().unwrap() {
        let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let bytes = std::fs::read(Path::new(FIXTURES).join(v["file"].as_str().unwrap())).unwrap();
        let data = bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        grads.insert(k.clone(), ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap());
    }
    Expected { loss: json["loss"].as_f64().unwrap(), grads }
}

fn input_name(g: &Graph, id: NodeId) -> String {
    match &g.node(id).op {
        Op::Input(i) => i.name.clone(),
        _ => String::new(),
    }
}

/// Append gradients of `loss` w.r.t. the named inputs, evaluate in f64.
fn loss_and_grads(
    mut g: Graph,
    loss: NodeId,
    names: &[String],
    vals: &HashMap<String, Value>,
) -> (f64, HashMap<String, ArrayD<f64>>) {
    let ids: Vec<NodeId> = names.iter().map(|n| g.find_input(n).unwrap()).collect();
    let grads = autodiff::grad(&mut g, loss, &ids).unwrap();
    g.set_output("oracle/loss", loss).unwrap();
    for (n, id) in names.iter().zip(grads) {
        g.set_output(format!("oracle/{n}"), id).unwrap();
    }
    let outs = interp::run(&g, vals, Precision::F64).unwrap();
    let mut by_name: HashMap<String, ArrayD<f64>> = HashMap::new();
    for ((n, _), v) in g.outputs().iter().zip(outs) {
        if let (Some(k), Value::F64(a)) = (n.strip_prefix("oracle/"), v) {
            by_name.insert(k.to_string(), a);
        }
    }
    let l = by_name.remove("loss").unwrap().iter().next().copied().unwrap();
    (l, by_name)
}

fn compare(what: &str, loss: f64, grads: &HashMap<String, ArrayD<f64>>, want: &Expected) {
    assert!((loss - want.loss).abs() <= 1e-5 * want.loss.abs(), "{what}: loss {loss} vs JAX {}", want.loss);
    assert_eq!(grads.len(), want.grads.len(), "{what}: parameter count");
    for (name, w) in &want.grads {
        let got = &grads[name];
        assert_eq!(got.shape(), w.shape(), "{what}: shape of {name}");
        let scale = w.iter().fold(0f64, |m, x| m.max(x.abs()));
        for (i, (a, b)) in got.iter().zip(w.iter()).enumerate() {
            let tol = 1e-5 * b.abs().max(1e-5 * scale);
            assert!((a - b).abs() <= tol, "{what}: d/d{name}[{i}] = {a}, JAX {b}");
        }
    }
}

#[test]
fn mlp_gradients_match_jax() {
    let setup = nnc::lower::Setup { eval_batch: Some(32), ..Default::default() };
    let compiled = nnc::compile(Path::new("examples/mnist.nn"), &[], setup).unwrap_or_else(|o| panic!("{:?}", o.diags));
    let g = compiled.lowered.eval;
    let names: Vec<String> = compiled.lowered.params.iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["l1.w", "l1.b", "l2.w", "l2.b"]);
    let mut vals: HashMap<String, Value> = HashMap::new();
    for (k, p) in compiled.lowered.params.iter().enumerate() {
        vals.insert(p.name.clone(), formula(k, &p.shape, 0.05));
    }
    let data = nnc::runner::data::load_split(Path::new("data/mnist"), "train").unwrap();
    let batch: Vec<usize> = (0..32).collect();
    let mut pixels = vec![0u8; 32 * 784];
    data.gather("images", &batch, &mut pixels).unwrap();
    let mut labels = vec![0i32; 32];
    data.gather("labels", &batch, &mut labels).unwrap();
    vals.insert("image".into(), Value::U8(ArrayD::from_shape_vec(IxDyn(&[32, 28, 28]), pixels).unwrap()));
    vals.insert("label".into(), Value::I32(ArrayD::from_shape_vec(IxDyn(&[32]), labels).unwrap()));
    let loss = g.output("loss").unwrap();
    let (l, grads) = loss_and_grads(g, loss, &names, &vals);
    compare("mlp", l, &grads, &expected("mlp"));
}

#[test]
fn transformer_block_gradients_match_jax() {
    let (mut program, diags) = nnc::resolve::load_str("oracle.nn", "use std.nn.Block\n");
    assert!(diags.is_empty());
    let (b, t, d) = (2, 5, 16);
    let traced =
        nnc::lower::trace(&mut program, "Block(16, 2)(x)", &[("x", nnc::ir::DType::F32, vec![b, t, d])]).unwrap();
    let mut g = traced.graph;
    let n = b * t * d;
    let mut vals: HashMap<String, Value> = HashMap::new();
    let x = (0..n).map(|i| (0.11 * i as f64 + 0.5).sin()).collect();
    let r: Vec<f64> = (0..n).map(|i| (0.07 * i as f64).cos()).collect();
    vals.insert("x".into(), Value::F64(ArrayD::from_shape_vec(IxDyn(&[b, t, d]), x).unwrap()));
    vals.insert("r".into(), Value::F64(ArrayD::from_shape_vec(IxDyn(&[b, t, d]), r).unwrap()));
    vals.insert("rng".into(), Value::I32(ArrayD::from_elem(IxDyn(&[]), 0)));
    for (k, p) in traced.params.iter().enumerate() {
        vals.insert(p.name.clone(), formula(k, &p.shape, 0.3));
    }
    let out = g.output("out").unwrap();
    let r = g.input("r", nnc::ir::InputRole::Data, g.ty(out).unwrap()).unwrap();
    let prod = g.mul(out, r).unwrap();
    let loss = g.sum_all(prod).unwrap();
    let names: Vec<String> = traced.params.iter().map(|p| p.name.clone()).collect();
    assert!(g.inputs().iter().any(|&id| input_name(&g, id) == "attn.qkv.w"));
    let (l, grads) = loss_and_grads(g, loss, &names, &vals);
    compare("block", l, &grads, &expected("block"));
}
