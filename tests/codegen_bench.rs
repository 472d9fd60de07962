//! First measurements (ignored by default; run with
//! `cargo test --release --test codegen_bench -- --ignored --nocapture`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use nnc::ir::interp::{self, Precision, Value};
use nnc::ir::{Contract, DType, Graph, InputRole, Op, Type};
use nnc::runtime::{CompiledStep, Options};

/// Best-of-5 mean seconds per call over `reps` calls.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::MAX, f64::min)
}

fn zeros_for(g: &Graph) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    for &id in g.inputs() {
        let Op::Input(inp) = &g.node(id).op else { continue };
        let sh = IxDyn(&inp.ty.shape);
        let v = match inp.ty.dtype {
            DType::F32 => Value::F32(ArrayD::from_elem(sh, 0.01)),
            DType::I32 => Value::I32(ArrayD::from_elem(sh, 3)),
            DType::U8 => Value::U8(ArrayD::from_elem(sh, 17)),
            DType::Bool => Value::Bool(ArrayD::from_elem(sh, false)),
        };
        m.insert(inp.name.clone(), v);
    }
    m
}

#[test]
#[ignore]
fn mnist_step_time() {
    let c = nnc::compile(Path::new("examples/mnist.nn"), &[], nnc::lower::Setup::default())
        .unwrap_or_else(|_| panic!("compile"));
    let g = nnc::opt::optimize(&c.lowered.train).expect("optimize");
    let t0 = Instant::now();
    let mut step = CompiledStep::compile_with(&g, Options { in_place: true, threads: 1 }).expect("compile");
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let ins = zeros_for(&g);
    step.run_values(&g, &ins).expect("run");
    let compiled = time(200, || step.run());
    let interp = time(3, || {
        interp::run(&g, &ins, Precision::F32).expect("interp");
    });
    println!(
        "mnist train step, batch 32: compiled {:.1} us, interpreter {:.1} us ({:.0}x); {} kernels, compile {compile_ms:.1} ms",
        compiled * 1e6,
        interp * 1e6,
        interp / compiled,
        step.schedule().kernels.len()
    );
}

#[test]
#[ignore]
fn gemm_gflops() {
    let (m, k, n) = (32, 784, 128);
    let mut g = Graph::unfolded();
    let a = g.input("a", InputRole::Data, Type::f32(vec![m, k])).expect("a");
    let b = g.input("b", InputRole::Param, Type::f32(vec![k, n])).expect("b");
    let c = Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![1], rhs_contract: vec![0] };
    let y = g.contract(a, b, c).expect("contract");
    g.set_output("y", y).expect("output");
    let mut step = CompiledStep::compile(&g).expect("compile");
    step.input_mut::<f32>("a").expect("a").fill(0.5);
    step.input_mut::<f32>("b").expect("b").fill(0.25);
    let t = time(2000, || step.run());
    println!("gemm {m}x{k}x{n}: {:.1} GFLOP/s ({:.2} us)", 2.0 * (m * k * n) as f64 / t / 1e9, t * 1e6);
}
