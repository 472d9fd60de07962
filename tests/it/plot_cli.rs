//! `nnc plot`: curves from run directories, as PNG and SVG, one run or a
//! sweep's several, and the errors a user can hit.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nnc() -> Command {
    Command::cargo_bin("nnc").unwrap()
}

/// A short logged run of the seed program: 2 epochs, a step event every 5.
fn train(out: &Path, extra: &[&str]) {
    let o = nnc()
        .args(["run", "examples/mnist.nn", "--train-samples", "640", "--eval-samples", "100", "--epochs", "2"])
        .args(["--log-every", "5", "--quiet", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn plot(args: &[&std::ffi::OsStr]) -> std::process::Output {
    nnc().arg("plot").args(args).output().unwrap()
}

/// Decoded RGB(A) pixels and the image's size.
fn pixels(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px = buf[..info.buffer_size()].chunks(channels).map(|c| [c[0], c[1], c[2]]).collect();
    (info.width, info.height, px)
}

#[test]
fn a_png_of_one_run_has_its_size_and_curves_in_each_panel() {
    let dir = scratch("plot_png");
    train(&dir.join("run"), &[]);
    let out = dir.join("curves.png");
    let o = plot(&[dir.join("run").as_os_str(), "-o".as_ref(), out.as_os_str(), "--size".as_ref(), "900x600".as_ref()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (w, h, px) = pixels(&out);
    assert_eq!((w, h), (900, 600));
    // Loss, accuracy and learning rate: a 2x2 grid. Curves are coloured;
    // the white background, grey grid and black text are not.
    let coloured = |x0: u32, y0: u32| {
        let mut n = 0;
        for y in y0 + 60..y0 + 240 {
            for x in x0 + 80..x0 + 430 {
                let [r, g, b] = px[(y * w + x) as usize];
                let spread = r.max(g).max(b) - r.min(g).min(b);
                n += usize::from(spread > 60);
            }
        }
        n
    };
    for (x0, y0, panel) in [(0, 0, "loss"), (450, 0, "accuracy"), (0, 300, "learning rate")] {
        assert!(coloured(x0, y0) > 200, "no curve drawn in the {panel} panel ({} pixels)", coloured(x0, y0));
    }
    assert_eq!(coloured(450, 300), 0, "the fourth cell is empty");
    assert!(!dir.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("partial")));
}

#[test]
fn a_sweep_directory_plots_its_runs_labelled_by_what_differs() {
    let dir = scratch("plot_sweep");
    train(&dir.join("sweep/a"), &["--set", "hidden=32"]);
    train(&dir.join("sweep/b"), &["--set", "hidden=64"]);
    let out = dir.join("curves.svg");
    let o = plot(&[dir.join("sweep").as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains(r#"width="1200""#), "{}", &svg[..200]);
    for text in ["loss", "accuracy", "learning rate", "hidden=32", "hidden=64"] {
        assert!(svg.contains(&format!(">{text}<")) || svg.contains(&format!(">\n{text}\n<")), "no `{text}` in the SVG");
    }
}

#[test]
fn plot_errors_name_what_is_wrong() {
    let dir = scratch("plot_errors");
    let err = |o: std::process::Output| {
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let msg = err(plot(&[dir.as_os_str(), "-o".as_ref(), dir.join("x.svg").as_os_str()]));
    assert!(msg.contains("holds no metrics.jsonl") && msg.contains("plot_errors"), "{msg}");
    std::fs::write(dir.join("metrics.jsonl"), "{\"event\":\"train\",\"step\":1,\"loss\":1}\nnot json\n{}\n").unwrap();
    let msg = err(plot(&[dir.as_os_str(), "-o".as_ref(), dir.join("x.svg").as_os_str()]));
    assert!(msg.contains("metrics.jsonl line 2"), "{msg}");
    // A partial last line (a run killed mid-write) is left out, not an error.
    std::fs::write(dir.join("metrics.jsonl"), "{\"event\":\"train\",\"step\":1,\"loss\":1}\n{\"event\":\"tr").unwrap();
    let msg = err(plot(&[dir.as_os_str(), "-o".as_ref(), dir.join("x.gif").as_os_str()]));
    assert!(msg.contains(".svg or .png"), "{msg}");
    let o = plot(&[dir.as_os_str(), "-o".as_ref(), dir.join("x.svg").as_os_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = plot(&[dir.as_os_str(), "--size".as_ref(), "big".as_ref()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("WIDTHxHEIGHT"));
}
