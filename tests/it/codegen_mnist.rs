//! The full examples/mnist.nn training step, compiled vs interpreted, over
//! a few steps with identical inputs, feeding each step's parameters and
//! optimizer state into the next.
//!
//! Tolerances: the loss and accuracy are compared at relative 1e-4 (the
//! compiled sums accumulate in f32 in a different order than the
//! reference's f64; over 784-long dot products that is ~1e-6 relative per
//! value, and softmax/log amplify it little). Parameters after each Adam
//! step: |a - b| <= 1e-6 + 1e-3 |b| + 2 lr for at most 0.1% of the elements
//! and 1e-6 + 1e-3 |b| for the rest: Adam's first step moves each weight by
//! ~lr * sign(g), so a gradient within rounding of zero may flip its sign
//! (a 2 lr difference) — a property of the update rule, not an error.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use nnc::ir::interp::{self, Precision, Value};
use nnc::ir::{DType, Graph, InputRole, Op};
use nnc::runtime::{CompiledStep, Options};

fn train_graph() -> Graph {
    let c = nnc::compile(Path::new("examples/mnist.nn"), &[], nnc::lower::Setup::default())
        .unwrap_or_else(|_| panic!("examples/mnist.nn does not compile"));
    nnc::opt::optimize(&c.lowered.train).expect("optimize")
}

/// A tiny deterministic generator (tests must not depend on a seed file).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn initial_inputs(g: &Graph, rng: &mut Lcg) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    for &id in g.inputs() {
        let Op::Input(inp) = &g.node(id).op else { continue };
        let shape = IxDyn(&inp.ty.shape);
        let n: usize = inp.ty.shape.iter().product();
        let v = match (inp.role, inp.ty.dtype) {
            (InputRole::Scalar, _) => {
                let x = match inp.name.as_str() {
                    "lr" => 1e-3,
                    "total_steps" => 100.0,
                    _ => 1.0,
                };
                Value::F32(ArrayD::from_elem(shape, x))
            }
            (InputRole::Param, DType::F32) => {
                Value::F32(ArrayD::from_shape_fn(shape, |_| (rng.next() as f32 - 0.5) * 0.1))
            }
            (_, DType::F32) => Value::F32(ArrayD::zeros(shape)),
            (_, DType::U8) => {
                Value::U8(ArrayD::from_shape_vec(shape, (0..n).map(|_| (rng.next() * 256.0) as u8).collect()).unwrap())
            }
            (_, DType::I32) => {
                Value::I32(ArrayD::from_shape_vec(shape, (0..n).map(|_| (rng.next() * 10.0) as i32).collect()).unwrap())
            }
            (_, DType::Bool) => Value::Bool(ArrayD::from_elem(shape, false)),
        };
        m.insert(inp.name.clone(), v);
    }
    m
}

fn floats(v: &Value) -> Vec<f64> {
    v.to_f64s()
}

#[test]
fn mnist_train_step_matches_the_interpreter() {
    let g = train_graph();
    let mut rng = Lcg(42);
    let mut inputs = initial_inputs(&g, &mut rng);
    let mut step =
        CompiledStep::compile_with(&g, Options { in_place: true, threads: 1, c_products: false }).expect("compile");
    let lr = 1e-3;
    for s in 1..=3 {
        inputs.insert("step".into(), Value::F32(ArrayD::from_elem(IxDyn(&[]), s as f32)));
        let want = interp::run(&g, &inputs, Precision::F32).expect("interp");
        let got = step.run_values(&g, &inputs).expect("compiled");
        for (((name, _), w), c) in g.outputs().iter().zip(&want).zip(&got) {
            let (w, c) = (floats(w), floats(c));
            assert_eq!(w.len(), c.len(), "{name}");
            let tight = |a: f64, b: f64| (a - b).abs() <= 1e-6 + 1e-3 * b.abs();
            if name == "loss" || name.starts_with("metric/") {
                assert!((w[0] - c[0]).abs() <= 1e-4 * w[0].abs().max(1e-3), "step {s} {name}: {} vs {}", c[0], w[0]);
                continue;
            }
            let loose = w.iter().zip(&c).filter(|&(&a, &b)| !tight(b, a)).count();
            let bad = w.iter().zip(&c).filter(|&(&a, &b)| (a - b).abs() > 1e-6 + 1e-3 * a.abs() + 2.0 * lr).count();
            assert_eq!(bad, 0, "step {s} {name}: {bad} elements beyond 2 lr");
            assert!(loose * 1000 <= w.len(), "step {s} {name}: {loose} of {} elements differ", w.len());
        }
        // The next step starts from the reference's state, so errors do not compound.
        for ((name, _), w) in g.outputs().iter().zip(want) {
            if inputs.contains_key(name) {
                inputs.insert(name.clone(), w);
            }
        }
    }
}

#[test]
fn mnist_schedule_prints() {
    let g = train_graph();
    let s = nnc::schedule::schedule(&g, nnc::schedule::Options { in_place: true }).expect("schedule");
    let text = s.to_string();
    if std::env::var_os("NNC_DUMP").is_some() {
        println!("{text}");
    }
    assert!(text.contains("gemm"), "{text}");
    assert!(s.kernels.len() < g.len(), "{} kernels for {} nodes", s.kernels.len(), g.len());
}
