//! `nnc build` end to end: a short training run, a standalone executable
//! that keeps working alone in another directory, its agreement with
//! `nnc predict` (the JIT) and `nnc run`'s evaluation, bad inputs, object
//! files linked into a C program, a portable target CPU, checkpoints that
//! do not fit, and the CNN example built the same way. Every test that needs `cc` passes (saying why) without it.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Test images used throughout (the evaluation's first images).
const SAMPLES: usize = 500;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("build_cli").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nnc() -> Command {
    Command::cargo_bin("nnc").unwrap()
}

fn have_cc() -> bool {
    let found = std::process::Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: no C compiler `cc` on this machine (nnc build needs one)");
    }
    found
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit 1 and the message on stderr.
fn err(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One short training run shared by every test: (run dir, checkpoint).
fn trained() -> &'static (PathBuf, PathBuf) {
    static RUN: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("run");
        let out = nnc()
            .args(["run", "examples/mnist.nn", "--train-samples", "2000", "--epochs", "1", "--quiet"])
            .args(["--eval-samples", &SAMPLES.to_string(), "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        ok(&out);
        let ckpt = dir.join("checkpoints/final.safetensors");
        (dir, ckpt)
    })
}

/// The first `n` MNIST test images as an uncompressed IDX file.
fn idx_images(path: &Path, n: usize) -> Vec<u8> {
    let gz = std::fs::read("data/mnist/t10k-images-idx3-ubyte.gz").unwrap();
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut all).unwrap();
    let pixels = all[16..16 + n * 784].to_vec();
    write_idx(path, &pixels);
    pixels
}

/// 28x28 `u8` images as an uncompressed IDX file.
fn write_idx(path: &Path, pixels: &[u8]) {
    let mut file = vec![0, 0, 8, 3];
    for d in [(pixels.len() / 784) as u32, 28, 28] {
        file.extend(d.to_be_bytes());
    }
    file.extend(pixels);
    std::fs::write(path, &file).unwrap();
}

fn build(dir: &Path, name: &str, extra: &[&str]) -> std::process::Output {
    build_from(&trained().1, dir, name, extra)
}

fn build_from(ckpt: &Path, dir: &Path, name: &str, extra: &[&str]) -> std::process::Output {
    nnc()
        .args(["build", "examples/mnist.nn", "--checkpoint"])
        .arg(ckpt)
        .arg("-o")
        .arg(dir.join(name))
        .args(extra)
        .output()
        .unwrap()
}

/// `(class, probs)` per line of `class p0 p1 ...`.
fn parse(text: &str) -> Vec<(usize, Vec<f64>)> {
    text.lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let class = it.next().unwrap().parse().unwrap();
            (class, it.map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

fn assert_close(a: &[(usize, Vec<f64>)], b: &[(usize, Vec<f64>)]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.0, y.0, "sample {i}: classes differ");
        assert_eq!(x.1.len(), 10);
        for (p, q) in x.1.iter().zip(&y.1) {
            assert!((p - q).abs() <= 1e-5, "sample {i}: probabilities {p} vs {q}");
        }
    }
}

fn accuracy(predicted: &[(usize, Vec<f64>)]) -> f64 {
    let gz = std::fs::read("data/mnist/t10k-labels-idx1-ubyte.gz").unwrap();
    let mut labels = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut labels).unwrap();
    let right = predicted.iter().zip(&labels[8..]).filter(|(p, l)| p.0 == usize::from(**l)).count();
    right as f64 / predicted.len() as f64
}

#[test]
fn a_built_executable_runs_alone_and_agrees_with_the_jit_and_the_run() {
    if !have_cc() {
        return;
    }
    let dir = scratch("alone");
    let ckpt = dir.join("weights.safetensors");
    std::fs::copy(&trained().1, &ckpt).unwrap();
    ok(&build_from(&ckpt, &dir, "mnist_mlp", &[]));
    let ldd = std::process::Command::new("ldd").arg(dir.join("mnist_mlp")).output();
    if let Ok(ldd) = ldd {
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let allowed = ["linux-vdso", "libc.so", "libm.so", "ld-linux"];
            assert!(allowed.iter().any(|a| line.contains(a)), "unexpected dependency: {line}");
        }
    }
    // Alone: another directory, no checkpoint, no sources.
    let alone = scratch("alone_elsewhere");
    std::fs::copy(dir.join("mnist_mlp"), alone.join("mnist_mlp")).unwrap();
    let pixels = idx_images(&alone.join("images.idx"), SAMPLES);
    let jit = ok(&nnc()
        .args(["predict", "examples/mnist.nn", "--checkpoint"])
        .arg(&trained().1)
        .arg(alone.join("images.idx"))
        .output()
        .unwrap());
    std::fs::remove_file(&ckpt).unwrap();
    let exe = ok(&Command::new(alone.join("mnist_mlp")).arg("images.idx").current_dir(&alone).output().unwrap());
    // The shipped gzip file as it is: the same predictions for its first samples.
    let gz = std::path::absolute("data/mnist/t10k-images-idx3-ubyte.gz").unwrap();
    let from_gz = ok(&Command::new(alone.join("mnist_mlp")).arg(&gz).output().unwrap());
    assert_eq!(from_gz.lines().take(SAMPLES).collect::<Vec<_>>(), exe.lines().collect::<Vec<_>>());
    // 500 samples split across threads give what one thread gives, bit for bit.
    let threads = |n: &str| {
        let mut run = Command::new(alone.join("mnist_mlp"));
        ok(&run.arg("images.idx").env("NNC_THREADS", n).current_dir(&alone).output().unwrap())
    };
    assert_eq!(threads("1"), exe);
    assert_eq!(threads("3"), exe);
    let (exe, jit) = (parse(&exe), parse(&jit));
    assert_eq!(exe.len(), SAMPLES);
    assert_close(&exe, &jit);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(trained().0.join("summary.json")).unwrap()).unwrap();
    let run_accuracy = summary["eval"]["accuracy"].as_f64().unwrap();
    assert!((accuracy(&exe) - run_accuracy).abs() < 1e-6, "{} vs {run_accuracy}", accuracy(&exe));
    // CSV from stdin, and raw f32, give the same predictions.
    let csv: String = pixels[..20 * 784]
        .chunks(784)
        .map(|s| s.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let from_csv = ok(&Command::new(alone.join("mnist_mlp")).arg("-").write_stdin(csv).output().unwrap());
    assert_close(&parse(&from_csv), &exe[..20]);
    let raw: Vec<u8> = pixels[..20 * 784].iter().flat_map(|&p| f32::from(p).to_le_bytes()).collect();
    std::fs::write(alone.join("images.f32"), raw).unwrap();
    let from_raw =
        ok(&Command::new(alone.join("mnist_mlp")).args(["--raw", "images.f32"]).current_dir(&alone).output().unwrap());
    assert_close(&parse(&from_raw), &exe[..20]);
    let json = ok(&Command::new(alone.join("mnist_mlp"))
        .args(["--json", "images.f32", "--raw"])
        .current_dir(&alone)
        .output()
        .unwrap());
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["class"].as_u64(), Some(exe[0].0 as u64));
}

#[test]
fn bad_inputs_get_a_message_and_exit_1() {
    if !have_cc() {
        return;
    }
    let dir = scratch("bad_inputs");
    ok(&build(&dir, "m", &[]));
    idx_images(&dir.join("good.idx"), 3);
    let good = std::fs::read(dir.join("good.idx")).unwrap();
    let run = |name: &str, bytes: &[u8], extra: &[&str]| {
        std::fs::write(dir.join(name), bytes).unwrap();
        err(&Command::new(dir.join("m")).args(extra).arg(name).current_dir(&dir).output().unwrap())
    };
    let truncated = run("truncated.idx", &good[..good.len() - 100], &[]);
    assert!(truncated.contains("header promises 3 samples"), "{truncated}");
    let mut magic = good.clone();
    magic[2] = 0x42;
    assert!(run("magic.idx", &magic, &[]).contains("bad magic number"));
    let mut dims = good.clone();
    dims[11] = 27;
    assert!(run("dims.idx", &dims, &[]).contains("dimension 1 is 27; the model needs 28"));
    let mut nan = vec!["1"; 784];
    nan[5] = "nan";
    let nan = run("nan.csv", format!("{}\n", nan.join(",")).as_bytes(), &[]);
    assert!(nan.contains("sample 1, value 6 is NaN"), "{nan}");
    let short = run("short.csv", b"1,2,3\n", &[]);
    assert!(short.contains("line 1 has 3 values; a sample has 784"), "{short}");
    let frac = run("frac.csv", format!("{}\n", vec!["0.5"; 784].join(",")).as_bytes(), &[]);
    assert!(frac.contains("not a whole number in 0..255"), "{frac}");
    assert!(run("odd.f32", &[0; 10], &["--raw"]).contains("not a whole number of samples"));
    assert!(run("gz.idx", &[0x1f, 0x8b, 8, 0], &[]).contains("truncated gzip header"));
    // The shipped labels file, cut short, and with one bit flipped.
    let labels = std::fs::read("data/mnist/t10k-labels-idx1-ubyte.gz").unwrap();
    let cut = run("cut.gz", &labels[..labels.len() / 2], &[]);
    assert!(cut.contains("cut.gz: truncated compressed data"), "{cut}");
    let mut flipped = labels.clone();
    flipped[labels.len() / 2] ^= 0x10;
    let flipped = run("flipped.gz", &flipped, &[]);
    assert!(flipped.contains("flipped.gz: "), "{flipped}");
    let missing = err(&Command::new(dir.join("m")).arg("nope.idx").current_dir(&dir).output().unwrap());
    assert!(missing.contains("cannot open nope.idx"));
}

#[test]
fn an_object_file_links_into_the_embed_example() {
    if !have_cc() {
        return;
    }
    let dir = scratch("embed");
    ok(&build(&dir, "model", &["--emit", "obj"]));
    assert!(dir.join("model.o").exists() && dir.join("model.h").exists());
    let example = std::path::absolute("examples/embed/classify.c").unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-I."])
        .arg(&example)
        .args(["model.o", "-lm", "-pthread", "-o", "classify"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(cc.status.success(), "cc: {}", String::from_utf8_lossy(&cc.stderr));
    let pixels = idx_images(&dir.join("images.idx"), 8);
    let raw: Vec<u8> = pixels.iter().flat_map(|&p| f32::from(p).to_le_bytes()).collect();
    let out = ok(&Command::new(dir.join("classify")).write_stdin(raw).output().unwrap());
    ok(&build(&dir, "exe", &[]));
    let exe = parse(&ok(&Command::new(dir.join("exe")).arg("images.idx").current_dir(&dir).output().unwrap()));
    let classes: Vec<usize> = out.lines().map(|l| l.split(' ').next().unwrap().parse().unwrap()).collect();
    assert_eq!(classes, exe.iter().map(|e| e.0).collect::<Vec<_>>());
}

#[test]
fn a_portable_target_cpu_builds_and_runs() {
    if !have_cc() {
        return;
    }
    let dir = scratch("portable");
    idx_images(&dir.join("images.idx"), 50);
    ok(&build(&dir, "native", &[]));
    ok(&build(&dir, "v3", &["--target-cpu", "x86-64-v3"]));
    ok(&build(&dir, "base", &["--target-cpu", "x86-64"]));
    let run =
        |name: &str| parse(&ok(&Command::new(dir.join(name)).arg("images.idx").current_dir(&dir).output().unwrap()));
    let native = run("native");
    assert_close(&run("v3"), &native);
    assert_close(&run("base"), &native);
    let bad = err(&build(&dir, "x", &["--target-cpu", "no-such-cpu"]));
    assert!(bad.contains("unknown target CPU `no-such-cpu`"), "{bad}");
}

#[test]
fn a_checkpoint_that_does_not_fit_is_refused() {
    let dir = scratch("mismatch");
    let out = nnc()
        .args(["build", "examples/mnist.nn", "--set", "hidden=64", "--checkpoint"])
        .arg(&trained().1)
        .arg("-o")
        .arg(dir.join("m"))
        .output()
        .unwrap();
    let msg = err(&out);
    assert!(msg.contains("does not fit this model"), "{msg}");
    assert!(msg.contains("`l1.w`: the model needs [784, 64], the checkpoint has [784, 128]"), "{msg}");
    assert!(!dir.join("m").exists());
}

/// Nothing in a build is specific to the MLP: the CNN example (convolutions,
/// pooling, two dense layers) builds and agrees with the JIT.
#[test]
fn the_cnn_example_builds_and_agrees_with_the_jit() {
    if have_cc() {
        build_example_and_compare("cnn", "examples/mnist_cnn.nn");
    }
}

/// The ResNet's BatchNorm layers read their running statistics in a build:
/// an image's prediction is the same alone as in any batch.
#[test]
fn the_resnet_predicts_an_image_alone_as_in_a_batch() {
    if !have_cc() {
        return;
    }
    let (dir, batched) = build_example_and_compare("resnet", "examples/resnet.nn");
    let pixels = idx_images(&dir.join("images.idx"), 75);
    for i in [0, 7, 64, 74] {
        let file = format!("image-{i}.idx");
        write_idx(&dir.join(&file), &pixels[i * 784..(i + 1) * 784]);
        let alone = ok(&Command::new(dir.join("resnet")).arg(&file).current_dir(&dir).output().unwrap());
        assert_close(&parse(&alone), &batched[i..=i]);
    }
}

/// Train `example` briefly, build it, and compare the executable's answers
/// on 75 test images (one batch of 64, the rest in batches of 8 and 1) with
/// `nnc predict`'s. Returns the directory (holding `images.idx` and the
/// executable `name`) and the executable's answers.
fn build_example_and_compare(name: &str, example: &str) -> (PathBuf, Vec<(usize, Vec<f64>)>) {
    let dir = scratch(name);
    let run = dir.join("run");
    let out = nnc()
        .args(["run", example, "--train-samples", "256", "--epochs", "1", "--eval-samples", "100"])
        .args(["--quiet", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    ok(&out);
    let ckpt = run.join("checkpoints/final.safetensors");
    let built = nnc().args(["build", example, "--checkpoint"]).arg(&ckpt).arg("-o").arg(dir.join(name)).output();
    ok(&built.unwrap());
    idx_images(&dir.join("images.idx"), 75);
    let exe = ok(&Command::new(dir.join(name)).arg("images.idx").current_dir(&dir).output().unwrap());
    let jit =
        ok(&nnc().args(["predict", example, "--checkpoint"]).arg(&ckpt).arg(dir.join("images.idx")).output().unwrap());
    let (exe, jit) = (parse(&exe), parse(&jit));
    assert_eq!(exe.len(), 75);
    assert_close(&exe, &jit);
    (dir, exe)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, bytes).unwrap();
    e.finish().unwrap()
}

/// `nnc predict` and the built executable share one reader, one printer
/// (src/build/io.c) and the matrix products (src/build/sgemm.c): every input
/// either both accept, printing the same bytes, or both refuse, with the
/// same message.
#[test]
fn predict_and_the_executable_accept_and_refuse_the_same_inputs() {
    if !have_cc() {
        return;
    }
    let dir = scratch("same_inputs");
    ok(&build(&dir, "m", &[]));
    let pixels = idx_images(&dir.join("plain.idx"), 4);
    let idx = std::fs::read(dir.join("plain.idx")).unwrap();
    let rows: Vec<String> =
        pixels.chunks(784).map(|r| r.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")).collect();
    let csv = format!("{}\n", rows.join("\n"));
    let raw: Vec<u8> = pixels.iter().flat_map(|&p| f32::from(p).to_le_bytes()).collect();
    let hex = format!("{}\n", vec!["0x1p3"; 784].join(","));
    let halves = [gzip(&csv.as_bytes()[..csv.len() / 2]), gzip(&csv.as_bytes()[csv.len() / 2..])].concat();
    let mut after_nul = csv.clone().into_bytes();
    after_nul.extend(b"\0trailing text");
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("a.idx", idx.clone(), false),
        ("a.idx.gz", gzip(&idx), false),
        ("a.csv", csv.clone().into_bytes(), false),
        ("a.csv.gz", gzip(csv.as_bytes()), false),
        ("bom.csv", [b"\xEF\xBB\xBF".as_slice(), csv.as_bytes()].concat(), false),
        ("hex.csv", hex.into_bytes(), false),
        ("members.csv.gz", halves, false),
        ("nul.csv", after_nul, false),
        ("a.f32", raw.clone(), true),
        ("a.f32.gz", gzip(&raw), true),
        ("short.csv", b"1,2,3\n".to_vec(), false),
        ("frac.csv", format!("{}\n", vec!["0.5"; 784].join(",")).into_bytes(), false),
        ("empty.csv", Vec::new(), false),
    ];
    for (name, bytes, raw) in cases {
        std::fs::write(dir.join(name), &bytes).unwrap();
        let flag: &[&str] = if raw { &["--raw"] } else { &[] };
        let exe = Command::new(dir.join("m")).args(flag).arg(name).current_dir(&dir).output().unwrap();
        let jit = nnc()
            .args(["predict", "examples/mnist.nn", "--checkpoint"])
            .arg(&trained().1)
            .args(flag)
            .arg(dir.join(name))
            .output()
            .unwrap();
        assert_eq!(exe.status.code(), jit.status.code(), "{name}: exit codes differ\n{exe:?}\n{jit:?}");
        if exe.status.success() {
            // A default build (-march=native) runs the products predict runs:
            // the same bytes, not only the same classes.
            let (e, j) = (String::from_utf8_lossy(&exe.stdout), String::from_utf8_lossy(&jit.stdout));
            assert_eq!(e, j, "{name}: predict and the executable print different text");
            assert!(!parse(&e).is_empty(), "{name}");
        } else {
            let tail = |o: &std::process::Output| {
                let s = String::from_utf8_lossy(&o.stderr).into_owned();
                s.split(&format!("{name}: ")).nth(1).unwrap_or(&s).trim().to_string()
            };
            assert_eq!(tail(&exe), tail(&jit), "{name}: the messages differ");
        }
    }
}

/// A diverged run's weights predict NaN for everything: refused.
#[test]
fn build_and_predict_refuse_non_finite_weights() {
    let dir = scratch("nan_weights");
    let bytes = std::fs::read(&trained().1).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> =
        st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec(), v.shape().to_vec())).collect();
    let w = tensors.iter_mut().find(|t| t.0 == "l2.w").unwrap();
    w.1[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    let ckpt = dir.join("nan.safetensors");
    std::fs::write(&ckpt, safetensors::serialize(views, None).unwrap()).unwrap();
    idx_images(&dir.join("x.idx"), 2);
    let e = err(&nnc()
        .args(["predict", "examples/mnist.nn", "--checkpoint"])
        .arg(&ckpt)
        .arg(dir.join("x.idx"))
        .output()
        .unwrap());
    assert!(e.contains("`l2.w` holds NaN at element 0"), "{e}");
    let e = err(&build_from(&ckpt, &dir, "m", &[]));
    assert!(e.contains("`l2.w` holds NaN"), "{e}");
}
