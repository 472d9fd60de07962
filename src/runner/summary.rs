//! The model summary: what Keras' `model.summary()` prints (each layer
//! call with its path, output shape and parameters; the totals), and what
//! the compiled training step costs. `nnc summary` prints it, and `nnc run`
//! starts with it unless `--quiet`.

use crate::lower::{LayerCall, Lowered, ParamKind};
use crate::schedule::{Schedule, elem_size};
use std::fmt::Write;

/// The layer table, the parameter totals and, given the compiled step's
/// schedule, its FLOPs, kernels and memory.
pub fn summary(l: &Lowered, step: Option<&Schedule>) -> String {
    let mut text = layer_table(l);
    text += &param_totals(l);
    if let Some(s) = step {
        text += &step_totals(s);
    }
    text
}

/// Parameters of the instance at `path` and everything inside it.
fn params_under(l: &Lowered, path: &str) -> usize {
    let inside = |name: &str| path.is_empty() || name == path || name.starts_with(&format!("{path}."));
    l.params.iter().filter(|p| inside(&p.name)).map(|p| p.shape.iter().product::<usize>()).sum()
}

fn layer_table(l: &Lowered) -> String {
    let rows: Vec<[String; 4]> = l
        .layers
        .iter()
        .map(|c: &LayerCall| {
            let name = if c.path.is_empty() { "(model)" } else { &c.path };
            let output = c.output.as_ref().map_or("-".to_string(), |t| t.to_string());
            [format!("{}{name}", "  ".repeat(c.depth)), c.model.clone(), output, grouped(params_under(l, &c.path))]
        })
        .collect();
    let head = ["layer".to_string(), "model".into(), "output".into(), "params".into()];
    let width = |i: usize| rows.iter().chain([&head]).map(|r| r[i].chars().count()).max().unwrap_or(0);
    let w = [width(0), width(1), width(2), width(3)];
    let mut out = format!("experiment {}: batch {}\n\n", l.name, l.data.train.batch);
    for r in std::iter::once(&head).chain(&rows) {
        let _ = writeln!(
            out,
            "{:<a$}  {:<b$}  {:<c$}  {:>d$}",
            r[0],
            r[1],
            r[2],
            r[3],
            a = w[0],
            b = w[1],
            c = w[2],
            d = w[3]
        );
    }
    out
}

fn param_totals(l: &Lowered) -> String {
    let count = |k: ParamKind| -> usize {
        l.params.iter().filter(|p| p.kind == k).map(|p| p.shape.iter().product::<usize>()).sum()
    };
    let (trained, frozen, buffers) = (count(ParamKind::Trained), count(ParamKind::Frozen), count(ParamKind::Buffer));
    format!(
        "\nparameters: {} trained, {} frozen, {} in buffers ({:.1} MB of f32)\n",
        grouped(trained),
        grouped(frozen),
        grouped(buffers),
        mb((trained + frozen + buffers) * 4)
    )
}

fn step_totals(s: &Schedule) -> String {
    let flops: usize = s.kernels.iter().map(|k| k.flops()).sum();
    let slots: usize = s.slots.iter().map(|x| x.shape.iter().product::<usize>() * elem_size(x.dtype)).sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "training step: {:.3} GFLOP in matrix products and convolutions (forward, backward, update), {} kernels",
        flops as f64 / 1e9,
        s.kernels.len()
    );
    let _ = writeln!(
        out,
        "memory: {:.1} MB of intermediate values at peak (the arena), {:.1} MB in inputs, parameters and states",
        mb(s.arena_bytes),
        mb(slots)
    );
    out
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// `1234567` as `1,234,567`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
