//! Sweeps: `let lr = sweep [1e-3, 3e-4]` declares a grid axis; a run of the
//! file trains every point of the grid (the product of all axes not pinned
//! by `--set`), one after the other in the process.

use crate::check::spec::SweepAxis;

/// One point of the grid: `(constant, value as written)` per swept axis.
pub type Point = Vec<(String, String)>;

/// The grid of the sweep axes the checker found (see [`crate::sweep_axes`]);
/// empty when nothing is swept.
pub fn points(axes: &[SweepAxis]) -> Vec<Point> {
    if axes.is_empty() {
        return Vec::new();
    }
    let mut grid: Vec<Point> = vec![Vec::new()];
    for SweepAxis { name, values } in axes {
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
