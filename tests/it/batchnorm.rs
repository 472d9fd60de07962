//! std.nn.BatchNorm against PyTorch: three training steps (output and
//! running statistics) and one evaluation, for an NHWC image batch and for
//! dense features. The fixture is made by `benches/oracle/torch_batchnorm.py`
//! and committed, so this runs without Python; inputs and weights are the
//! closed-form formulas that script uses.
//!
//! Each case runs twice: in the interpreter in f64, to 1e-6 relative (the
//! graph's constants, eps and momentum, are rounded to f32 when it is
//! built, which moves results by ~1e-7; a wrong rule, say the biased
//! variance in the running statistics, is off by 1e-2), and compiled in f32
//! (to 1e-4), since the compiled training step is what a run uses.

use ndarray::{ArrayD, IxDyn};
use nnc::ir::interp::{self, Precision, Value};
use nnc::ir::{DType, Graph};
use nnc::runtime::CompiledStep;
use std::collections::HashMap;

const FIXTURE: &str = "tests/fixtures/oracle/batchnorm.json";

/// scale * sin(0.37 i + 1.3 k + 0.1) + shift, as the script.
fn formula(k: usize, shape: &[usize], scale: f64, shift: f64) -> Vec<f64> {
    let n: usize = shape.iter().product();
    (0..n).map(|i| scale * (0.37 * i as f64 + 1.3 * k as f64 + 0.1).sin() + shift).collect()
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

/// Runs a graph on named inputs, either way.
#[derive(Clone, Copy)]
enum How {
    Interp,
    Compiled,
}

impl How {
    fn value(self, shape: &[usize], v: &[f64]) -> Value {
        match self {
            How::Interp => Value::F64(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).expect("shape")),
            How::Compiled => {
                Value::F32(ArrayD::from_shape_vec(IxDyn(shape), v.iter().map(|&x| x as f32).collect()).expect("shape"))
            }
        }
    }

    fn run(self, g: &Graph, ins: &HashMap<String, Value>) -> HashMap<String, Vec<f64>> {
        let outs = match self {
            How::Interp => interp::run(g, ins, Precision::F64).expect("interpreter"),
            How::Compiled => CompiledStep::compile(g).expect("compile").run_values(g, ins).expect("run"),
        };
        let flat = |v: Value| match v {
            Value::F64(a) => a.iter().copied().collect(),
            Value::F32(a) => a.iter().map(|&x| f64::from(x)).collect(),
            other => panic!("unexpected {other:?}"),
        };
        g.outputs().iter().map(|(n, _)| n.clone()).zip(outs.into_iter().map(flat)).collect()
    }

    fn tolerance(self) -> f64 {
        match self {
            How::Interp => 1e-6,
            How::Compiled => 1e-4,
        }
    }
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}[{i}]: nnc {g}, PyTorch {w}");
    }
}

fn case(name: &str, how: How) {
    let text = std::fs::read_to_string(FIXTURE).expect("fixture");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let want = &json[name];
    let shape: Vec<usize> = want["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let c = *shape.last().unwrap();
    let (mut program, diags) = nnc::resolve::load_str("bn.nn", "use std.nn.BatchNorm\n");
    assert!(diags.is_empty());
    let expr = format!("BatchNorm({c})(x)");
    let input = [("x", DType::F32, shape.clone())];
    let train = nnc::lower::trace_in(&mut program, &expr, &input, true).expect("training trace");
    let eval = nnc::lower::trace_in(&mut program, &expr, &input, false).expect("evaluation trace");
    let kinds: Vec<_> = train.params.iter().map(|p| (p.name.as_str(), p.kind.name())).collect();
    let expected_kinds =
        [("weight", "trained"), ("bias", "trained"), ("running_mean", "buffer"), ("running_var", "buffer")];
    assert_eq!(kinds, expected_kinds);
    let mut vals: HashMap<String, Value> = HashMap::new();
    vals.insert("weight".into(), how.value(&[c], &formula(1, &[c], 0.5, 1.0)));
    vals.insert("bias".into(), how.value(&[c], &formula(2, &[c], 0.3, 0.0)));
    vals.insert("running_mean".into(), how.value(&[c], &vec![0.0; c]));
    vals.insert("running_var".into(), how.value(&[c], &vec![1.0; c]));
    vals.insert("rng".into(), Value::I32(ArrayD::from_elem(IxDyn(&[]), 0)));
    let mut out = HashMap::new();
    for step in 0..json["steps"].as_u64().unwrap() as usize {
        vals.insert("x".into(), how.value(&shape, &formula(10 + step, &shape, 2.0, 0.5 * step as f64)));
        out = how.run(&train.graph, &vals);
        for b in ["running_mean", "running_var"] {
            vals.insert(b.into(), how.value(&[c], &out[b]));
        }
    }
    let tol = how.tolerance();
    close(&format!("{name} training output"), &out["out"], &numbers(&want["train_out"]), tol);
    for b in ["running_mean", "running_var"] {
        close(&format!("{name} {b}"), &out[b], &numbers(&want[b]), tol);
    }
    assert_eq!(eval.graph.outputs().len(), 1, "evaluation must not update the buffers");
    vals.insert("x".into(), how.value(&shape, &formula(20, &shape, 2.0, 1.0)));
    let out = how.run(&eval.graph, &vals);
    close(&format!("{name} evaluation output"), &out["out"], &numbers(&want["eval_out"]), tol);
}

#[test]
fn image_batchnorm_matches_pytorch_in_f64() {
    case("image", How::Interp);
}

#[test]
fn dense_batchnorm_matches_pytorch_in_f64() {
    case("dense", How::Interp);
}

#[test]
fn compiled_batchnorm_matches_pytorch() {
    case("image", How::Compiled);
    case("dense", How::Compiled);
}
