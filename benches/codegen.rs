//! Native backend measurements, in one run:
//!
//! ```text
//! cargo bench --bench codegen            # everything
//! cargo bench --bench codegen -- gemm    # only sections whose name contains "gemm"
//! cargo bench --bench codegen -- profile # per-kernel times of each train step (NNC_PROFILE=char_gpt: one)
//! ```
//!
//! - `peak`: one core's FMA throughput ([`nnc::runtime::peak`]), AVX-512 (else AVX2)
//!   loop of independent FMAs: the yardstick for the products.
//! - `gemm`: GFLOP/s of one compiled contraction per shape, 1 and 2 threads.
//! - `conv`: GFLOP/s of each role of mnist_cnn's convolutions, 1 and 2
//!   threads, beside the plain product of the same im2col shape.
//! - `train`: steady-state samples/s of compiled train steps
//!   (examples/mnist.nn at batch 32 and 128, benches/mlp_large.nn at 256,
//!   examples/mnist_cnn.nn at 64),
//!   1 and 2 threads, on random data fed through `CompiledStep`.
//! - `compile`: time to compile each example's train step (schedule +
//!   Cranelift, after the front end and IR optimisation).
//!
//! Timings are the best of several repetitions of a block of calls, so a
//! noisy neighbour on a shared machine inflates them less.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nnc::ir::{Contract, Conv, ConvAttrs, ConvRole, DType, Graph, InputRole, Op, Type};
use nnc::runtime::{CompiledStep, Options};

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let on = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let peak = nnc::runtime::peak::fma_gflops();
    println!("one-core FMA peak ({}): {peak:.1} GFLOP/s", nnc::runtime::peak::isa());
    if on("gemm") {
        gemm_section(peak);
    }
    if on("conv") {
        conv_section(peak);
    }
    if on("train") {
        train_section();
    }
    if on("compile") {
        compile_section();
    }
    if filter.iter().any(|f| f == "profile") {
        profile_section();
    }
}

/// Best-of-`rounds` seconds per call over blocks of `reps` calls.
fn time(rounds: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::MAX, f64::min)
}

/// Enough repetitions of something taking `secs` to fill ~50 ms.
fn reps_for(secs: f64) -> usize {
    ((0.05 / secs.max(1e-9)) as usize).clamp(1, 100_000)
}

// ---------------------------------------------------------------- gemm

fn gemm_section(peak: f64) {
    println!("\n| gemm m x k x n | 1 thread GFLOP/s | % of peak | 2 threads GFLOP/s | speed-up |");
    println!("| --- | --- | --- | --- | --- |");
    for (m, k, n) in [(32, 784, 128), (128, 784, 128), (256, 784, 1024), (256, 1024, 1024), (1024, 1024, 1024)] {
        let one = gemm_gflops(m, k, n, 1);
        let two = gemm_gflops(m, k, n, 2);
        println!("| {m}x{k}x{n} | {one:.1} | {:.0}% | {two:.1} | {:.2}x |", 100.0 * one / peak, two / one);
    }
}

fn gemm_gflops(m: usize, k: usize, n: usize, threads: usize) -> f64 {
    let mut g = Graph::unfolded();
    let a = g.input("a", InputRole::Data, Type::f32(vec![m, k])).expect("a");
    let b = g.input("b", InputRole::Param, Type::f32(vec![k, n])).expect("b");
    let c = Contract { lhs_batch: vec![], rhs_batch: vec![], lhs_contract: vec![1], rhs_contract: vec![0] };
    let y = g.contract(a, b, c).expect("contract");
    g.set_output("y", y).expect("output");
    gflops(&g, threads, 2 * m * k * n)
}

/// GFLOP/s of `g` (inputs `a` and `b`, random) compiled for `threads`.
fn gflops(g: &Graph, threads: usize, flops: usize) -> f64 {
    let mut step =
        CompiledStep::compile_with(g, Options { in_place: false, threads, c_products: false }).expect("compile");
    let mut r = Lcg(1);
    step.input_mut::<f32>("a").expect("a").iter_mut().for_each(|x| *x = r.sym());
    step.input_mut::<f32>("b").expect("b").iter_mut().for_each(|x| *x = r.sym());
    let once = time(1, 1, || step.run());
    let t = time(7, reps_for(once), || step.run());
    flops as f64 / t / 1e9
}

// ---------------------------------------------------------------- conv

/// Each role of examples/mnist_cnn.nn's two convolutions (batch 64, 3x3,
/// padding 1), compiled alone, and the plain product of the second one's
/// im2col shape: what the driver's tiling costs over one long product.
fn conv_section(peak: f64) {
    println!("\n| convolution (batch 64, 3x3, pad 1) | role | 1 thread GFLOP/s | % of peak | 2 threads GFLOP/s |");
    println!("| --- | --- | --- | --- | --- |");
    for (hw, cin, cout) in [(28, 1, 32), (14, 32, 64), (28, 16, 16), (14, 32, 32), (7, 64, 64)] {
        for role in [ConvRole::Forward, ConvRole::InputGrad, ConvRole::FilterGrad] {
            let one = conv_gflops(hw, cin, cout, role, 1);
            let two = conv_gflops(hw, cin, cout, role, 2);
            let name = format!("{hw}x{hw}x{cin} -> {cout}");
            println!("| {name} | {role:?} | {one:.1} | {:.0}% | {two:.1} |", 100.0 * one / peak);
        }
    }
    let (m, k, n) = (64 * 14 * 14, 9 * 32, 64);
    let one = gemm_gflops(m, k, n, 1);
    println!(
        "| gemm {m}x{k}x{n} (the im2col product) | - | {one:.1} | {:.0}% | {:.1} |",
        100.0 * one / peak,
        gemm_gflops(m, k, n, 2)
    );
}

fn conv_gflops(hw: usize, cin: usize, cout: usize, role: ConvRole, threads: usize) -> f64 {
    let (x, w, y) = (vec![64, hw, hw, cin], vec![3, 3, cin, cout], vec![64, hw, hw, cout]);
    let attrs = ConvAttrs { pad: vec![[1, 1], [1, 1]], ..ConvAttrs::plain(2) };
    let (a, b) = match role {
        ConvRole::Forward => (x, w),
        ConvRole::InputGrad => (y, w),
        ConvRole::FilterGrad => (x, y),
    };
    let mut g = Graph::unfolded();
    let a = g.input("a", InputRole::Data, Type::f32(a)).expect("a");
    let b = g.input("b", InputRole::Data, Type::f32(b)).expect("b");
    let op = Op::Conv(Conv { role, attrs, image: vec![hw, hw], window: vec![3, 3] });
    let out = g.insert(op, &[a, b]).expect("conv");
    g.set_output("y", out).expect("output");
    gflops(&g, threads, 2 * 64 * hw * hw * 9 * cin * cout)
}

// ---------------------------------------------------------------- train

/// A train step's graph from an experiment file, optionally with its
/// training batch replaced (`batch: 32` in the data line).
fn train_graph(path: &Path, batch: Option<usize>) -> Result<Graph, String> {
    let path = match batch {
        None => path.to_path_buf(),
        Some(b) => with_batch(path, b)?,
    };
    let c = nnc::compile(&path, &[], nnc::lower::Setup::default())
        .map_err(|_| format!("{} does not compile", path.display()))?;
    nnc::opt::optimize(&c.lowered.train).map_err(|e| e.to_string())
}

/// A copy of `path` (beside it, so relative paths still resolve) training
/// at batch `b`.
fn with_batch(path: &Path, b: usize) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let re = text.replace("train(batch: 32", &format!("train(batch: {b}"));
    let out = std::env::temp_dir().join(format!("nnc-bench-batch{b}.nn"));
    std::fs::write(&out, re).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Random parameters (±0.05), zero optimizer state, random data.
fn fill_inputs(g: &Graph, step: &mut CompiledStep) {
    let mut r = Lcg(7);
    for &id in g.inputs() {
        let Op::Input(inp) = &g.node(id).op else { continue };
        let name = inp.name.as_str();
        match (inp.role, inp.ty.dtype) {
            (InputRole::Param, DType::F32) => {
                step.input_mut::<f32>(name).map(|b| b.iter_mut().for_each(|x| *x = 0.05 * r.sym())).ok();
            }
            (InputRole::Scalar, DType::F32) => {
                let v = if name == "lr" { 1e-3 } else { 1.0 };
                step.input_mut::<f32>(name).map(|b| b.fill(v)).ok();
            }
            (_, DType::U8) => {
                step.input_mut::<u8>(name).map(|b| b.iter_mut().for_each(|x| *x = (r.unit() * 256.0) as u8)).ok();
            }
            (InputRole::Data, DType::I32) => {
                step.input_mut::<i32>(name).map(|b| b.iter_mut().for_each(|x| *x = (r.unit() * 10.0) as i32)).ok();
            }
            (InputRole::Data, DType::F32) => {
                step.input_mut::<f32>(name).map(|b| b.iter_mut().for_each(|x| *x = r.sym())).ok();
            }
            _ => {}
        }
    }
}

/// The batch size: the leading dim of the first data input.
fn batch_of(g: &Graph) -> usize {
    g.inputs()
        .iter()
        .find_map(|&id| match &g.node(id).op {
            Op::Input(inp) if inp.role == InputRole::Data => inp.ty.shape.first().copied(),
            _ => None,
        })
        .unwrap_or(1)
}

fn train_section() {
    let mnist = Path::new("examples/mnist.nn");
    let large = Path::new("benches/mlp_large.nn");
    let cnn = Path::new("examples/mnist_cnn.nn");
    println!("\n| train step | batch | threads | us/step | samples/s | kernels |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (path, batch) in [(mnist, None), (mnist, Some(128)), (large, None), (cnn, None)] {
        let g = match train_graph(path, batch) {
            Ok(g) => g,
            Err(e) => {
                println!("| {} | - | - | {e} | | |", path.display());
                continue;
            }
        };
        for threads in [1, 2] {
            let mut step = CompiledStep::compile_with(&g, Options { in_place: true, threads, c_products: false })
                .expect("compile");
            fill_inputs(&g, &mut step);
            let once = time(1, 3, || step.run());
            let t = time(7, reps_for(once), || step.run());
            let b = batch_of(&g);
            let k = step.schedule().kernels.len();
            println!("| {} | {b} | {threads} | {:.1} | {:.0} | {k} |", path.display(), t * 1e6, b as f64 / t);
        }
    }
}

fn profile_section() {
    let (cnn, resnet, gpt) =
        (("examples/mnist_cnn.nn", None), ("examples/resnet.nn", None), ("examples/char_gpt.nn", None));
    // `NNC_PROFILE=char_gpt`: only the steps whose path contains it.
    let only = std::env::var("NNC_PROFILE").unwrap_or_default();
    for (path, batch) in [
        ("examples/mnist.nn", None),
        ("examples/mnist.nn", Some(128)),
        ("benches/mlp_large.nn", None),
        cnn,
        resnet,
        gpt,
    ] {
        if !path.contains(&only) {
            continue;
        }
        let Ok(g) = train_graph(Path::new(path), batch) else { continue };
        for threads in [1, 2] {
            let mut step = CompiledStep::compile_with(&g, Options { in_place: true, threads, c_products: false })
                .expect("compile");
            fill_inputs(&g, &mut step);
            step.run();
            let prof = step.profile(20);
            let total: f64 = prof.kernels.iter().sum();
            println!(
                "\n{path} batch {} threads {threads}: {:.1} us in kernels (median, in step order), {:.1} us a step",
                batch_of(&g),
                total * 1e6,
                prof.step * 1e6
            );
            for (i, (k, t)) in step.schedule().kernels.iter().zip(&prof.kernels).enumerate() {
                println!("  k{i:<3} {:>8.1} us  {}", t * 1e6, k.label);
            }
        }
    }
}

// ---------------------------------------------------------------- compile

fn compile_section() {
    println!("\n| train step | schedule + Cranelift | kernels |");
    println!("| --- | --- | --- |");
    let mut files: Vec<PathBuf> = std::fs::read_dir("examples")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "nn")).collect()
        })
        .unwrap_or_default();
    files.sort();
    files.push(PathBuf::from("benches/mlp_large.nn"));
    for f in files {
        let g = match train_graph(&f, None) {
            Ok(g) => g,
            Err(e) => {
                println!("| {} | {e} | |", f.display());
                continue;
            }
        };
        let mut result = Err(String::new());
        let t = time(5, 1, || {
            result = CompiledStep::compile_with(&g, Options { in_place: true, threads: 1, c_products: false })
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(s) => println!("| {} | {:.1} ms | {} |", f.display(), t * 1e3, s.schedule().kernels.len()),
            Err(e) => println!("| {} | {e} | |", f.display()),
        }
    }
}

/// A deterministic generator for bench data.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn sym(&mut self) -> f32 {
        (self.unit() * 2.0 - 1.0) as f32
    }
}
