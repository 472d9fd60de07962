//! `nnc plot`: training curves from run directories. Each run's
//! `metrics.jsonl` becomes curves against the global step (per-step
//! values, epoch means, evaluations), grouped into one panel per quantity
//! (loss first, then each metric, the learning rate last); several runs
//! share the panels, labelled by the constants they differ in.

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, naming the file.
#[derive(Debug)]
pub struct PlotError(String);

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlotError {}

fn fail(msg: impl Into<String>) -> PlotError {
    PlotError(msg.into())
}

/// One run directory as logged.
pub struct RunLog {
    pub dir: PathBuf,
    /// `config.json`'s constants, learning rate, batch and experiment.
    pub settings: BTreeMap<String, String>,
    pub events: Vec<Value>,
}

/// Where a point of a curve comes from.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Kind {
    /// `train_step` events (`--log-every`): one batch each.
    Step,
    /// `train` events: the epoch's mean.
    Epoch,
    /// `eval` events.
    Eval,
}

pub struct Curve {
    pub run: usize,
    pub kind: Kind,
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Panel {
    pub title: String,
    pub curves: Vec<Curve>,
}

/// The run directories named, a sweep's directory standing for the runs
/// inside it.
pub fn load(dirs: &[PathBuf]) -> Result<Vec<RunLog>, PlotError> {
    let mut runs = Vec::new();
    for dir in dirs {
        if dir.join("metrics.jsonl").is_file() {
            runs.push(load_run(dir)?);
            continue;
        }
        let inner = run_dirs_in(dir)?;
        if inner.is_empty() {
            return Err(fail(format!(
                "{} holds no metrics.jsonl, nor do the folders in it: give a run directory (`nnc run --out DIR`) or a sweep's",
                dir.display()
            )));
        }
        for d in inner {
            runs.push(load_run(&d)?);
        }
    }
    Ok(runs)
}

fn run_dirs_in(dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let entries = std::fs::read_dir(dir).map_err(|e| fail(format!("reading {}: {e}", dir.display())))?;
    let mut found: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.join("metrics.jsonl").is_file()).collect();
    found.sort();
    Ok(found)
}

fn load_run(dir: &Path) -> Result<RunLog, PlotError> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
    let mut events = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => events.push(v),
            // A run killed mid-write leaves a partial last line: the rest is good.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => return Err(fail(format!("{} line {}: not a JSON event: {e}", path.display(), i + 1))),
        }
    }
    Ok(RunLog { dir: dir.to_path_buf(), settings: settings(dir), events })
}

/// The settings a run's label can be made of; a run without a readable
/// `config.json` is labelled by its folder alone.
fn settings(dir: &Path) -> BTreeMap<String, String> {
    let config = std::fs::read_to_string(dir.join("config.json")).ok();
    let Some(c) = config.and_then(|t| serde_json::from_str::<Value>(&t).ok()) else {
        return BTreeMap::new();
    };
    let mut s: BTreeMap<String, String> = c["hyperparameters"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string))).collect())
        .unwrap_or_default();
    for key in ["lr", "batch", "experiment"] {
        if let Some(v) = c.get(key).filter(|v| !v.is_null()) {
            s.entry(key.to_string()).or_insert_with(|| v.as_str().map_or(v.to_string(), str::to_string));
        }
    }
    s
}

/// Each run's name in legends: the settings that differ between the runs
/// (`hidden=64, lr=0.01`), or the folder's name when none do.
pub fn labels(runs: &[RunLog]) -> Vec<String> {
    let keys: Vec<&String> = runs
        .first()
        .map(|r| r.settings.keys().filter(|k| runs.iter().any(|o| o.settings.get(*k) != r.settings.get(*k))).collect())
        .unwrap_or_default();
    runs.iter()
        .map(|r| {
            let parts: Vec<String> =
                keys.iter().filter_map(|k| r.settings.get(*k).map(|v| format!("{k}={v}"))).collect();
            if parts.is_empty() {
                r.dir.file_name().map_or_else(|| r.dir.display().to_string(), |n| n.to_string_lossy().into_owned())
            } else {
                parts.join(", ")
            }
        })
        .collect()
}

/// (panel title, run, kind, series name).
type CurveKey = (String, usize, Kind, String);

const NOT_PLOTTED: [&str; 4] = ["step", "epoch", "time", "samples_per_sec"];

/// The panels of the figure: one per quantity logged, each with a curve per
/// run and kind of event.
pub fn panels(runs: &[RunLog]) -> Vec<Panel> {
    let mut curves: BTreeMap<CurveKey, Vec<(f64, f64)>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (r, run) in runs.iter().enumerate() {
        for e in &run.events {
            let Some((kind, series)) = classify(e) else { continue };
            let (Some(step), Some(o)) = (e["step"].as_f64(), e.as_object()) else { continue };
            for (k, v) in o.iter().filter(|(k, _)| !NOT_PLOTTED.contains(&k.as_str())) {
                let Some(v) = v.as_f64().filter(|v| v.is_finite()) else { continue };
                let (title, series) = match (k.as_str(), kind) {
                    ("lr", Kind::Step) => ("learning rate".to_string(), "per step".to_string()),
                    ("lr", _) => ("learning rate".to_string(), "at epoch end".to_string()),
                    _ => (k.clone(), series.clone()),
                };
                if !order.contains(&title) {
                    order.push(title.clone());
                }
                curves.entry((title, r, kind, series)).or_default().push((step, v));
            }
        }
    }
    // The epoch events' learning rate repeats the per-step one where both exist.
    let stepped: Vec<usize> =
        curves.keys().filter(|(t, _, k, _)| t == "learning rate" && *k == Kind::Step).map(|c| c.1).collect();
    curves.retain(|(t, r, k, _), _| !(t == "learning rate" && *k == Kind::Epoch && stepped.contains(r)));
    order.sort_by_key(|t| match t.as_str() {
        "loss" => 0,
        "learning rate" => 2,
        _ => 1,
    });
    let mut panels: Vec<Panel> = order.into_iter().map(|title| Panel { title, curves: Vec::new() }).collect();
    for ((title, run, kind, label), points) in curves {
        if let Some(p) = panels.iter_mut().find(|p| p.title == title) {
            p.curves.push(Curve { run, kind, label, points });
        }
    }
    panels.retain(|p| !p.curves.is_empty());
    panels
}

/// An event's kind and series name; `None` for events that are not
/// measurements (reloads, restarts).
fn classify(e: &Value) -> Option<(Kind, String)> {
    match e["event"].as_str()? {
        "train_step" => Some((Kind::Step, "train (per step)".into())),
        "train" => Some((Kind::Epoch, "train (epoch mean)".into())),
        "eval" => match e["split"].as_str() {
            Some(s) if s != "test" => Some((Kind::Eval, format!("eval ({s})"))),
            _ => Some((Kind::Eval, "eval".into())),
        },
        _ => None,
    }
}

/// Draw `runs` into `out` (`.svg` or `.png`, by its extension), written
/// atomically: a reader never sees half an image.
pub fn plot(runs: &[RunLog], out: &Path, (w, h): (u32, u32)) -> Result<(), PlotError> {
    let panels = panels(runs);
    if panels.is_empty() {
        return Err(fail("the runs logged nothing to plot yet (no train, train_step or eval events)"));
    }
    fonts()?;
    let labels = labels(runs);
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let name = out.file_name().map_or("plot".into(), |n| n.to_string_lossy().into_owned());
    // The backend picks the image format by extension: keep it on the temporary file.
    let tmp = out.with_file_name(format!(".{name}.partial.{}", ext.as_deref().unwrap_or("")));
    let drawn = match ext.as_deref() {
        Some("svg") => draw(SVGBackend::new(&tmp, (w, h)).into_drawing_area(), &panels, &labels),
        Some("png") => draw(BitMapBackend::new(&tmp, (w, h)).into_drawing_area(), &panels, &labels),
        _ => {
            return Err(fail(format!(
                "{}: the plot is written as .svg or .png, by the file's extension",
                out.display()
            )));
        }
    };
    drawn
        .and_then(|()| std::fs::rename(&tmp, out).map_err(|e| fail(format!("writing {}: {e}", out.display()))))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// The embedded font, registered once: plots look the same on every machine
/// and need no system fonts.
fn fonts() -> Result<(), PlotError> {
    static FONT: &[u8] = include_bytes!("../data/fonts/DejaVuSans.ttf");
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(fail("the embedded font could not be read")) }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[Panel],
    labels: &[String],
) -> Result<(), PlotError> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| fail(format!("drawing the plot: {e}"));
    root.fill(&WHITE).map_err(err)?;
    let cols = if panels.len() > 1 { 2 } else { 1 };
    let rows = panels.len().div_ceil(cols);
    for (area, panel) in root.split_evenly((rows, cols)).iter().zip(panels) {
        draw_panel(area, panel, labels).map_err(err)?;
    }
    root.present().map_err(err)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    labels: &[String],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x, y) = extent(panel);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x.clone(), y.clone())?;
    let x_range = x;
    let several = labels.len() > 1;
    // Several runs: a legend entry per run, the kinds told apart by style alone.
    let x_desc = if several { "step   (thin: per step, thick: epoch mean, dashed with dots: eval)" } else { "step" };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&|v| tick(*v, &x_range))
        .y_label_formatter(&|v| tick(*v, &y))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let mut named = Vec::new();
    for c in &panel.curves {
        let color = if several { Palette99::pick(c.run).to_rgba() } else { kind_color(c.kind) };
        let name = match several {
            false => Some(c.label.clone()),
            true if !named.contains(&c.run) => Some(labels[c.run].clone()),
            true => None,
        };
        named.push(c.run);
        draw_curve(&mut chart, c, color, name)?;
    }
    chart
        .configure_series_labels()
        .position(legend_corner(panel, &y))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 13))
        .draw()
}

type Chart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// Per-step values thin and pale, epoch means solid, evaluations dashed
/// with a marker at each.
fn draw_curve<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    c: &Curve,
    color: RGBAColor,
    name: Option<String>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let segments = segments(&c.points);
    match c.kind {
        Kind::Step => {
            let style = color.mix(0.45).stroke_width(1);
            let legend = move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 20, y)], style);
            for (i, s) in segments.iter().enumerate() {
                let drawn = chart.draw_series(LineSeries::new(s.iter().copied(), style))?;
                if let Some(name) = name.as_ref().filter(|_| i == 0) {
                    drawn.label(name).legend(legend);
                }
            }
        }
        Kind::Epoch => {
            let legend = move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2));
            for (i, s) in segments.iter().enumerate() {
                let drawn = chart.draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))?;
                if let Some(name) = name.as_ref().filter(|_| i == 0) {
                    drawn.label(name).legend(legend);
                }
            }
        }
        Kind::Eval => {
            for s in &segments {
                chart.draw_series(DashedLineSeries::new(s.iter().copied(), 6, 4, color.stroke_width(2)))?;
            }
            let dots = chart.draw_series(c.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            if let Some(name) = name {
                dots.label(name).legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
            }
        }
    }
    Ok(())
}

/// Curves that end high (accuracy) keep the legend low, and the other way
/// round (loss), so it covers their start rather than where they go.
fn legend_corner(panel: &Panel, y: &std::ops::Range<f64>) -> SeriesLabelPosition {
    let ends: Vec<f64> = panel.curves.iter().filter_map(|c| c.points.last().map(|p| p.1)).collect();
    let end = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
    if end > (y.start + y.end) / 2.0 { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight }
}

fn kind_color(kind: Kind) -> RGBAColor {
    match kind {
        Kind::Step | Kind::Epoch => RGBColor(31, 119, 180).to_rgba(),
        Kind::Eval => RGBColor(255, 127, 14).to_rgba(),
    }
}

/// A curve cut where the step goes back (a watched run restarted), so no
/// line is drawn backwards across the plot.
fn segments(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    for &p in points {
        match out.last_mut() {
            Some(s) if s.last().is_some_and(|l| l.0 <= p.0) => s.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}

/// The axes' ranges: every point of the panel with a margin, never empty.
fn extent(panel: &Panel) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let points = || panel.curves.iter().flat_map(|c| c.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let pad = |lo: f64, hi: f64| {
        // A constant (a fixed learning rate) gets a band around it, at its own scale.
        let m = if hi > lo {
            (hi - lo) * 0.05
        } else if lo != 0.0 {
            lo.abs() * 0.1
        } else {
            1.0
        };
        (lo - m)..(hi + m)
    };
    (0f64.min(x0)..x1.max(x0 + 1.0), pad(y0, y1))
}

/// An axis label with as many digits as ticks about a tenth of `axis`
/// apart need to differ: `0.25`, `0.00095`, `2.5e-5`, `12000`.
fn tick(v: f64, axis: &std::ops::Range<f64>) -> String {
    let span = ((axis.end - axis.start) / 10.0).abs().max(f64::MIN_POSITIVE);
    let scale = axis.start.abs().max(axis.end.abs());
    if !(1e-2..1e6).contains(&scale) {
        let digits = (scale / span).log10().ceil().clamp(1.0, 6.0) as usize;
        return if v == 0.0 { "0".into() } else { format!("{v:.digits$e}", digits = digits - 1) };
    }
    let decimals = (-span.log10()).ceil().clamp(0.0, 10.0) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.25, &(0.0..0.5)), "0.25");
        assert_eq!(tick(0.3, &(0.0..1.0)), "0.3");
        assert_eq!(tick(1.2, &(0.2..2.2)), "1.2");
        assert_eq!(tick(12000.0, &(0.0..20000.0)), "12000");
        assert_eq!(tick(0.0, &(-1.0..1.0)), "0");
        // A fixed learning rate's band: neighbouring ticks still differ.
        let band = 0.0009..0.0011;
        assert_ne!(tick(0.00095, &band), tick(0.001, &band));
        assert_eq!(tick(2e-5, &(0.0..1e-4)), "2e-5");
    }

    #[test]
    fn a_restart_splits_the_curve() {
        let s = segments(&[(1.0, 1.0), (2.0, 0.5), (1.0, 0.9), (2.0, 0.4)]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn runs_are_labelled_by_what_differs() {
        let run = |dir: &str, hidden: &str| RunLog {
            dir: dir.into(),
            settings: [("hidden".to_string(), hidden.to_string()), ("lr".into(), "0.001".into())].into(),
            events: Vec::new(),
        };
        assert_eq!(labels(&[run("a", "64"), run("b", "128")]), ["hidden=64", "hidden=128"]);
        assert_eq!(labels(&[run("runs/a", "64")]), ["a"]);
    }
}
