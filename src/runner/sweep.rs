//! Sweeps: `let lr = sweep [1e-3, 3e-4]` declares a grid axis; a run of the
//! file trains every point of the grid (the product of all axes not pinned
//! by `--set`), one after the other in the process.

use crate::span::FileId;
use crate::syntax::ast;
use std::path::Path;

/// One point of the grid: `(constant, value as written)` per swept axis.
pub type Point = Vec<(String, String)>;

/// The grid of the root file; empty when nothing is swept. Axes pinned by
/// `--set NAME=...` are left out. The file must already check.
pub fn points(file: &Path, pinned: &[String]) -> Vec<Point> {
    // Sweeps live in the root file only: parse it alone, not its imports.
    let Ok(text) = std::fs::read_to_string(file) else { return Vec::new() };
    let Ok(root) = crate::syntax::parse(FileId(0), &text) else { return Vec::new() };
    let pinned: Vec<&str> = pinned.iter().filter_map(|s| s.split_once('=').map(|(k, _)| k.trim())).collect();
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    for item in &root.items {
        if let ast::Item::Const(ast::Const { name, value: ast::ConstValue::Sweep(values, _), .. }) = item
            && !pinned.contains(&name.name.as_str())
        {
            let texts = values
                .iter()
                .map(|e| text.get(e.span.start as usize..e.span.end as usize).unwrap_or("").to_string())
                .collect();
            axes.push((name.name.clone(), texts));
        }
    }
    if axes.is_empty() {
        return Vec::new();
    }
    let mut grid: Vec<Point> = vec![Vec::new()];
    for (name, values) in &axes {
        grid = grid
            .into_iter()
            .flat_map(|p| values.iter().map(move |v| [p.clone(), vec![(name.clone(), v.clone())]].concat()))
            .collect();
    }
    grid
}

/// `lr=3e-4,hidden=128`: a point as `--set` values and as a folder name.
pub fn label(p: &Point) -> String {
    p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}
