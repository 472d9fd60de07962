//! Linking with the system C compiler: the shim's sources are carried in
//! nnc (so an installed `nnc` builds anywhere `cc` is), written to a
//! temporary directory with the generated object and plan, and compiled
//! for the same CPU as the generated code.

use super::{BuildError, BuildOptions, Emit, io_err};
use std::path::{Path, PathBuf};
use std::process::Command;

const HEADER: &str = include_str!("nnc_model.h");
const RUNTIME: &str = include_str!("rt.c");
const MAIN: &str = include_str!("main.c");
const INFLATE: &str = include_str!("inflate.c");
const IO: &str = include_str!("io.c");
const SGEMM: &str = include_str!("sgemm.c");
const CONV: &str = include_str!("conv.c");
const KERNELS: &str = include_str!("kernels.c");
const GENERATOR: &str = include_str!("gen.c");
const DIE: &str = include_str!("die.c");

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, BuildError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("nnc-build-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The C compiler: `$CC`, else `cc`.
pub fn compiler() -> String {
    std::env::var("CC").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| "cc".into())
}

fn cc(dir: &Path, args: &[&str]) -> Result<(), BuildError> {
    let cc = compiler();
    let out = Command::new(&cc).args(args).current_dir(dir).output().map_err(|e| BuildError::Tool {
        what: format!("cannot run the C compiler `{cc}`"),
        message: format!("{e}; `nnc build` links with the system C compiler: install gcc or clang, or set CC"),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(BuildError::Tool {
        what: format!("`{cc} {}` failed", args.join(" ")),
        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// `path` made absolute, so it survives running `cc` in the temp directory.
fn absolute(path: &Path) -> Result<PathBuf, BuildError> {
    std::path::absolute(path).map_err(|e| io_err(path, e))
}

/// A temporary directory holding the shim's sources, the generated `plan`
/// header (named `plan_name`) and the object.
fn staged(obj: &[u8], plan_name: &str, plan: &str, sources: &[(&str, &str)]) -> Result<TempDir, BuildError> {
    let tmp = TempDir::new()?;
    let shared = [("kernels.c", KERNELS), ("sgemm.c", SGEMM), ("conv.c", CONV), ("die.c", DIE), (plan_name, plan)];
    let texts = sources.iter().chain(&shared).map(|&(n, t)| (n, t.as_bytes()));
    for (name, bytes) in texts.chain([("model.o", obj)]) {
        let path = tmp.0.join(name);
        std::fs::write(&path, bytes).map_err(|e| io_err(&path, e))?;
    }
    Ok(tmp)
}

fn march(o: &BuildOptions) -> String {
    format!("-march={}", o.target_cpu.as_deref().unwrap_or("native"))
}

/// Writes what `o.emit` asks for from the object bytes and the plan
/// header; returns the files written.
pub fn link(obj: &[u8], plan: &str, o: &BuildOptions) -> Result<Vec<PathBuf>, BuildError> {
    let sources = [("nnc_model.h", HEADER), ("rt.c", RUNTIME), ("main.c", MAIN), ("inflate.c", INFLATE), ("io.c", IO)];
    let tmp = staged(obj, "nnc_plan.h", plan, &sources)?;
    let march = march(o);
    cc(&tmp.0, &["-O3", &march, "-ffp-contract=fast", "-fPIC", "-pthread", "-c", "rt.c", "-o", "rt.o"])?;
    match o.emit {
        Emit::Exe | Emit::Predictor => {
            let exe = absolute(&o.output)?;
            let exe_s = exe.to_string_lossy();
            // libgcc statically: the executable needs only libc and libm.
            cc(
                &tmp.0,
                &["-O2", &march, "main.c", "rt.o", "model.o", "-o", &exe_s, "-lm", "-pthread", "-static-libgcc", "-s"],
            )?;
            Ok(vec![exe])
        }
        Emit::Obj => {
            let (obj_path, header) = obj_paths(&absolute(&o.output)?);
            // A partial link: one relocatable object holding the model and the runtime.
            cc(&tmp.0, &["-r", "-nostdlib", "rt.o", "model.o", "-o", &obj_path.to_string_lossy()])?;
            std::fs::write(&header, HEADER).map_err(|e| io_err(&header, e))?;
            Ok(vec![obj_path, header])
        }
    }
}

/// Links a text generator (`gen.c` with its plan `nnc_gen_plan.h`) into
/// the executable `o.output`. The sampling arithmetic is compiled without
/// contraction, so that it rounds as `nnc sample`'s does.
pub fn link_generator(obj: &[u8], plan: &str, o: &BuildOptions) -> Result<PathBuf, BuildError> {
    let tmp = staged(obj, "nnc_gen_plan.h", plan, &[("gen.c", GENERATOR)])?;
    let march = march(o);
    cc(&tmp.0, &["-O3", &march, "-ffp-contract=fast", "-c", "kernels.c", "-o", "kernels.o"])?;
    let exe = absolute(&o.output)?;
    let exe_s = exe.to_string_lossy();
    let args = ["-O2", &march, "-ffp-contract=off", "gen.c", "kernels.o", "model.o", "-o", &exe_s, "-lm"];
    cc(&tmp.0, &[&args[..], &["-static-libgcc", "-s"]].concat())?;
    Ok(exe)
}

/// `NAME.o` and `NAME.h` for `-o NAME` (or `-o NAME.o`).
fn obj_paths(out: &Path) -> (PathBuf, PathBuf) {
    let base = if out.extension().is_some_and(|e| e == "o") { out.with_extension("") } else { out.to_path_buf() };
    let with = |ext: &str| {
        let mut s = base.clone().into_os_string();
        s.push(ext);
        PathBuf::from(s)
    };
    (with(".o"), with(".h"))
}
