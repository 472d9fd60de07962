//! Sweeps: `let lr = sweep [1e-3, 3e-4]` declares a grid axis; a run of the
//! file trains every point of the grid (the product of all axes not pinned
//! by `--set`), one after the other in the process.

use super::checkpoint::write_atomic;
use super::{RunError, RunSummary};
use crate::check::spec::SweepAxis;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

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

/// Where a sweep's comparison goes: `DIR/sweep.{csv,json}` under `--out
/// DIR`, else `runs/<first run>.sweep.{csv,json}` beside the runs.
pub fn comparison_stem(out: Option<&Path>, first_run: &Path) -> PathBuf {
    match out {
        Some(dir) => dir.join("sweep"),
        None => {
            let name = first_run.file_name().map_or("sweep".into(), |n| format!("{}.sweep", n.to_string_lossy()));
            first_run.with_file_name(name)
        }
    }
}

/// The comparison table as CSV (one row per point: its axes, the last
/// epoch's train loss and metrics, the final eval metrics, samples/s, the
/// run directory) and as JSON, each written atomically.
pub fn save_comparison(stem: &Path, rows: &[(Point, RunSummary)]) -> Result<[PathBuf; 2], RunError> {
    let axes: Vec<&str> = rows.first().map(|(p, _)| p.iter().map(|(k, _)| k.as_str()).collect()).unwrap_or_default();
    let names = |f: fn(&RunSummary) -> &Vec<(String, f64)>| -> Vec<String> {
        rows.first().map(|(_, s)| f(s).iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default()
    };
    let (train, eval) = (names(|s| &s.train), names(|s| &s.eval));
    let mut header: Vec<String> = axes.iter().map(|a| a.to_string()).collect();
    header.extend(train.iter().map(|m| format!("train_{m}")));
    header.extend(eval.iter().map(|m| format!("eval_{m}")));
    header.extend(["samples_per_sec".into(), "run_dir".into()]);
    let mut csv = csv_line(&header);
    let value =
        |m: &[(String, f64)], k: &str| m.iter().find(|(n, _)| n == k).map_or(String::new(), |(_, v)| v.to_string());
    for (point, s) in rows {
        let mut cells: Vec<String> = point.iter().map(|(_, v)| v.clone()).collect();
        cells.extend(train.iter().map(|m| value(&s.train, m)));
        cells.extend(eval.iter().map(|m| value(&s.eval, m)));
        cells.extend([s.samples_per_sec.to_string(), s.run_dir.display().to_string()]);
        csv.push_str(&csv_line(&cells));
    }
    let object = |m: &[(String, f64)]| m.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>();
    let json: Vec<Value> = rows
        .iter()
        .map(|(point, s)| {
            json!({
                "point": point.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "train": object(&s.train),
                "eval": object(&s.eval),
                "samples_per_sec": s.samples_per_sec,
                "run_dir": s.run_dir.display().to_string(),
            })
        })
        .collect();
    let with = |ext: &str| {
        let mut p = stem.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let paths = [with(".csv"), with(".json")];
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| RunError::Io { path: dir.to_path_buf(), message: format!("cannot create: {e}") })?;
    }
    write_atomic(&paths[0], csv.as_bytes())?;
    let text = serde_json::to_string_pretty(&Value::Array(json)).unwrap_or_default();
    write_atomic(&paths[1], format!("{text}\n").as_bytes())?;
    Ok(paths)
}

/// One CSV record (RFC 4180): a field with a comma, quote or line break is
/// quoted, its quotes doubled.
fn csv_line(cells: &[String]) -> String {
    let quote = |c: &String| {
        if c.contains([',', '"', '\n', '\r']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() }
    };
    format!("{}\n", cells.iter().map(quote).collect::<Vec<_>>().join(","))
}
