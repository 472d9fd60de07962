//! Shared helpers for the `ir_*` integration tests: a seeded RNG, input
//! values, and the finite-difference gradient checker.
#![allow(dead_code)]

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use nnc::autodiff::grad;
use nnc::ir::interp::{self, Precision, Value};
use nnc::ir::{DType, Graph, InputRole, IrError, NodeId, Type, verify};
use nnc::opt::optimize;

/// splitmix64: tiny, seeded, good enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// A shape of rank `rank` with dims in 1..=max_dim (size-1 dims included).
    pub fn shape(&mut self, rank: usize, max_dim: usize) -> Vec<usize> {
        (0..rank).map(|_| 1 + self.below(max_dim)).collect()
    }
    pub fn data(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// One graph input for a check.
#[derive(Clone)]
pub struct Arg {
    pub name: String,
    pub ty: Type,
    pub data: Vec<f64>,
    /// Differentiate with respect to this input.
    pub diff: bool,
}

impl Arg {
    /// A differentiable f32 input with uniform values in [lo, hi).
    pub fn f32(rng: &mut Rng, name: &str, shape: &[usize], lo: f64, hi: f64) -> Arg {
        let ty = Type::f32(shape.to_vec());
        let data = rng.data(ty.numel(), lo, hi);
        Arg { name: name.into(), ty, data, diff: true }
    }
    /// A non-differentiable i32 input.
    pub fn i32(name: &str, shape: &[usize], data: Vec<i32>) -> Arg {
        let ty = Type::new(DType::I32, shape.to_vec());
        Arg { name: name.into(), ty, data: data.into_iter().map(f64::from).collect(), diff: false }
    }
    pub fn fixed(mut self) -> Arg {
        self.diff = false;
        self
    }
}

/// The interpreter value of `data` as type `ty` (f32 inputs given in f64).
pub fn value(ty: &Type, data: &[f64]) -> Value {
    let shape = IxDyn(&ty.shape);
    let arr = |v: Vec<f64>| ArrayD::from_shape_vec(shape.clone(), v).expect("data fits shape");
    match ty.dtype {
        DType::F32 => Value::F64(arr(data.to_vec())),
        DType::I32 => Value::I32(arr(data.to_vec()).mapv(|v| v as i32)),
        DType::Bool => Value::Bool(arr(data.to_vec()).mapv(|v| v != 0.0)),
        DType::U8 => Value::U8(arr(data.to_vec()).mapv(|v| v as u8)),
    }
}

pub fn feeds(args: &[Arg]) -> HashMap<String, Value> {
    args.iter().map(|a| (a.name.clone(), value(&a.ty, &a.data))).collect()
}

/// Declares `args` as inputs of `g`.
pub fn declare(g: &mut Graph, args: &[Arg]) -> Vec<NodeId> {
    args.iter()
        .map(|a| {
            let role = if a.diff { InputRole::Param } else { InputRole::Data };
            g.input(&a.name, role, a.ty.clone()).expect("input")
        })
        .collect()
}

pub type Build<'a> = &'a dyn Fn(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>;

/// Builds `build` and reduces its output to a scalar with fixed, distinct
/// weights (so every output element's gradient matters and errors in one
/// element cannot cancel another's).
pub fn scalar_loss(g: &mut Graph, args: &[Arg], build: Build) -> Result<(Vec<NodeId>, NodeId), IrError> {
    let ids = declare(g, args);
    let out = build(g, &ids)?;
    let ty = g.ty(out)?;
    let loss = if ty.rank() == 0 {
        out
    } else {
        let weights: Vec<f64> = (0..ty.numel()).map(|i| 0.5 + ((i * 7919) % 13) as f64 / 13.0).collect();
        let w = g.literal(&weights, ty.clone())?;
        let wo = g.mul(out, w)?;
        g.sum_all(wo)?
    };
    Ok((ids, loss))
}

fn eval_loss(args: &[Arg], build: Build) -> f64 {
    let mut g = Graph::new();
    let (_, loss) = scalar_loss(&mut g, args, build).expect("builds");
    g.set_output("loss", loss).expect("output");
    let out = interp::run(&g, &feeds(args), Precision::F64).expect("runs");
    out[0].to_f64s()[0]
}

/// Step for central differences. In f64, the truncation error is about
/// eps^2 |f'''| / 6 ~ 1e-13 and the rounding error about 1e-16 |L| / eps ~
/// 1e-10 |L|, so [`TOL`] leaves three or more orders of magnitude of margin
/// while any wrong rule (typically off by O(1)) fails.
pub const EPS: f64 = 1e-6;
/// Relative tolerance (absolute below magnitude 1).
pub const TOL: f64 = 1e-6;

/// Checks the autodiff gradient of `build` (reduced to a scalar) against
/// central finite differences for every element of every `diff` input,
/// evaluated in f64 by the reference interpreter. Also checks that the
/// verifier accepts the graph and that `optimize` preserves its outputs.
pub fn grad_check(args: &[Arg], build: Build) {
    let mut g = Graph::new();
    let (ids, loss) = scalar_loss(&mut g, args, build).expect("builds");
    let wrt: Vec<NodeId> = ids.iter().zip(args).filter(|(_, a)| a.diff).map(|(&i, _)| i).collect();
    let grads = grad(&mut g, loss, &wrt).expect("differentiates");
    g.set_output("loss", loss).expect("output");
    for (k, &d) in grads.iter().enumerate() {
        g.set_output(format!("grad{k}"), d).expect("output");
    }
    verify(&g).expect("verifies");
    let analytic = interp::run(&g, &feeds(args), Precision::F64).expect("runs");
    check_optimized(&g, args, &analytic);
    let diff_args = args.iter().enumerate().filter(|(_, a)| a.diff).map(|(i, _)| i);
    for (k, ai) in diff_args.enumerate() {
        let got = analytic[k + 1].to_f64s();
        for (j, &auto) in got.iter().enumerate() {
            let mut probe = args.to_vec();
            probe[ai].data[j] += EPS;
            let up = eval_loss(&probe, build);
            probe[ai].data[j] -= 2.0 * EPS;
            let down = eval_loss(&probe, build);
            let numeric = (up - down) / (2.0 * EPS);
            let scale = 1f64.max(numeric.abs()).max(auto.abs());
            assert!(
                (auto - numeric).abs() <= TOL * scale,
                "d loss / d {}[{j}]: autodiff {} vs finite difference {numeric}\n{g}",
                args[ai].name,
                auto
            );
        }
    }
}

/// `optimize(g)` computes the same outputs as `g` (constants are rounded to
/// f32 by folding, hence the looser tolerance than the gradient check).
pub fn check_optimized(g: &Graph, args: &[Arg], expected: &[Value]) {
    let opt = optimize(g).expect("optimizes");
    verify(&opt).expect("optimized graph verifies");
    let got = interp::run(&opt, &feeds(args), Precision::F64).expect("optimized graph runs");
    for (e, o) in expected.iter().zip(&got) {
        for (a, b) in e.to_f64s().iter().zip(o.to_f64s()) {
            let same = (a - b).abs() <= 1e-5 * 1f64.max(a.abs()) || (a.is_nan() && b.is_nan());
            assert!(same, "optimize changed a result: {a} vs {b}\nbefore:\n{g}\nafter:\n{opt}");
        }
    }
}
