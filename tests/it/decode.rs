//! The one-position step `nnc::decode` derives for `nnc sample`, against the
//! whole window: a small GPT (learned positions, two pre-norm blocks of
//! causal attention) at every position of a random sequence, in the
//! interpreter (f64, to 1e-9) and compiled (f32, to 1e-5), for windows of
//! 1, 5 (not a multiple of any vector width) and 8 positions; and models
//! whose positions cannot be computed one at a time are refused.

use ndarray::{ArrayD, IxDyn};
use nnc::decode::{POSITION, decoder, next};
use nnc::ir::interp::{self, Precision, Value};
use nnc::ir::{Graph, InputRole, Op};
use nnc::runner::data::SplitMix64;
use nnc::runtime::CompiledStep;
use std::collections::HashMap;
use std::path::PathBuf;

const VOCAB: usize = 32;

fn program(context: usize, body: &str) -> String {
    format!(
        r#"use std.nn.{{Embedding, Block, LayerNorm, Linear}}
use std.init.zeros
use std.loss.cross_entropy
use std.optim.adam
model Lm {{
    tokens: Embedding({VOCAB}, 16)
    positions: f32[{context}, 16] = zeros
    blocks: [Block(16, 2); 2]
    ln: LayerNorm(16)
    head: Linear(16, {VOCAB})
    fn (ids: i32[B, {context}] classes {VOCAB}) -> f32[B, {context}, {VOCAB}] {{
        let x = tokens(ids) + positions
        {body}
    }}
}}
dataset chars = text("tiny.txt", context: {context}, stride: 1) {{
    x: i32[{context}] classes {VOCAB}
    y: i32[{context}] classes {VOCAB}
}}
experiment lm {{
    model = Lm
    data = chars.train(batch: 4)
    loss = cross_entropy(model(x), y)
    optimizer = adam(lr: 1e-2)
}}
"#
    )
}

/// The inference graph at batch 1 of `body`'s model over `context` tokens.
fn inference(name: &str, context: usize, body: &str) -> Graph {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("decode").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy("tests/fixtures/data/tiny.txt", dir.join("tiny.txt")).unwrap();
    let file = dir.join("lm.nn");
    std::fs::write(&file, program(context, body)).unwrap();
    let mut predicts = nnc::compile_predict(&file, &[], None, &[1]).unwrap_or_else(|_| panic!("{name} compiles"));
    predicts.pop().expect("an inference graph").graph
}

/// Random values for every parameter of `g` (positions included, so that
/// they matter), big enough that attention is far from uniform.
fn weights(g: &Graph, seed: u64) -> HashMap<String, Value> {
    let mut rng = SplitMix64::new(seed);
    let mut out = HashMap::new();
    for &id in g.inputs() {
        if let Op::Input(inp) = &g.node(id).op
            && inp.role == InputRole::Param
        {
            let shape = &inp.ty.shape;
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n).map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5).collect();
            out.insert(inp.name.clone(), Value::F64(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()));
        }
    }
    out
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::F64(a) => a.iter().copied().collect(),
        Value::F32(a) => a.iter().map(|&x| f64::from(x)).collect(),
        other => panic!("not floats: {other:?}"),
    }
}

/// Runs `g` on `inputs` (f32 inputs given in f64) and names its outputs.
fn run(g: &Graph, inputs: &HashMap<String, Value>, compiled: Option<&mut CompiledStep>) -> HashMap<String, Value> {
    let outs = match compiled {
        None => interp::run(g, inputs, Precision::F64).expect("interpreter"),
        Some(step) => {
            let f32s = inputs
                .iter()
                .map(|(k, v)| match v {
                    Value::F64(a) => (k.clone(), Value::F32(a.mapv(|x| x as f32))),
                    other => (k.clone(), other.clone()),
                })
                .collect();
            step.run_values(g, &f32s).expect("compiled step")
        }
    };
    g.outputs().iter().map(|(n, _)| n.clone()).zip(outs).collect()
}

/// The step's logits at each position of `tokens`, one position at a time.
fn stepwise(
    g: &Graph,
    caches: &[String],
    base: &HashMap<String, Value>,
    tokens: &[i32],
    compile: bool,
) -> Vec<Vec<f64>> {
    let mut step = compile.then(|| CompiledStep::compile(g).expect("the step compiles"));
    let mut inputs = base.clone();
    for name in caches {
        let ty = &g.node(g.find_input(name).expect("cache input")).ty;
        inputs.insert(name.clone(), Value::F64(ArrayD::zeros(IxDyn(&ty.shape))));
    }
    let mut logits = Vec::new();
    for (p, &t) in tokens.iter().enumerate() {
        inputs.insert("x".into(), Value::I32(ArrayD::from_elem(IxDyn(&[1, 1]), t)));
        inputs.insert(POSITION.into(), Value::I32(ArrayD::from_elem(IxDyn(&[1]), p as i32)));
        let mut outs = run(g, &inputs, step.as_mut());
        logits.push(floats(&outs["logits"]));
        for name in caches {
            let v = outs.remove(&next(name)).expect("cache update");
            inputs.insert(name.clone(), Value::F64(ArrayD::from_shape_vec(IxDyn(v.shape()), floats(&v)).unwrap()));
        }
    }
    logits
}

#[test]
fn the_one_position_step_matches_the_whole_window_at_every_position() {
    for context in [1, 5, 8] {
        let full = inference(&format!("gpt{context}"), context, "x |> blocks |> ln |> head");
        let dec = decoder(&full, "x").expect("a GPT decodes one position at a time");
        assert_eq!(dec.caches.len(), 4, "keys and values of two blocks");
        let base = weights(&full, context as u64);
        let mut rng = SplitMix64::new(99);
        let tokens: Vec<i32> = (0..context).map(|_| (rng.next_u64() % VOCAB as u64) as i32).collect();
        let mut inputs = base.clone();
        inputs.insert("x".into(), Value::I32(ArrayD::from_shape_vec(IxDyn(&[1, context]), tokens.clone()).unwrap()));
        for (compile, tol) in [(false, 1e-9), (true, 1e-5)] {
            let mut step = compile.then(|| CompiledStep::compile(&full).expect("the window compiles"));
            let whole = floats(&run(&full, &inputs, step.as_mut())["logits"]);
            let rows = stepwise(&dec.graph, &dec.caches, &base, &tokens, compile);
            for (p, row) in rows.iter().enumerate() {
                let want = &whole[p * VOCAB..][..VOCAB];
                let worst = row.iter().zip(want).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0, f64::max);
                assert!(worst <= tol, "T={context} position {p} compiled={compile}: off by {worst:e}");
            }
        }
    }
}

#[test]
fn positions_that_need_later_positions_are_refused() {
    let cases = [
        ("mean", "(x + x.mean(axis: 1, keepdim: true)) |> blocks |> ln |> head", "reduces over positions"),
        // Positions and features swapped, then read back as positions.
        ("scrambled", "x.permute([0, 2, 1]).reshape([B, 8, 16]) |> blocks |> ln |> head", "merges the sequence axis"),
    ];
    for (name, body, why) in cases {
        let full = inference(name, 8, body);
        let err = decoder(&full, "x").err().unwrap_or_else(|| panic!("{name} decoded")).to_string();
        assert!(err.contains(why), "{name}: {err}");
    }
}
