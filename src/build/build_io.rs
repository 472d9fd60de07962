//! Compiles the C that `nnc predict` shares with built executables: the
//! reader and printer of predictions (`src/build/io.c`, with the gzip
//! decoder it includes), the matrix products (`src/build/sgemm.c`) and the
//! convolution driver (`src/build/conv.c`), so
//! `nnc predict` runs the very code a built executable runs. sgemm.c gets
//! the flags `nnc build` gives it for the default target (`-march=native`),
//! so predict and a default build print the same digits.

fn main() {
    for f in ["io.c", "inflate.c", "sgemm.c", "conv.c"] {
        println!("cargo:rerun-if-changed=src/build/{f}");
    }
    cc::Build::new().file("src/build/io.c").include("src/build").opt_level(2).warnings(true).compile("nnc_io");
    cc::Build::new()
        .file("src/build/sgemm.c")
        .opt_level(3)
        .flag_if_supported("-march=native")
        .flag_if_supported("-ffp-contract=fast")
        .define("NNC_SGEMM_NAME", "nnc_c_sgemm")
        .define("NNC_SGEMM_PROBE", None)
        .warnings(true)
        .compile("nnc_sgemm");
    // The convolution driver twice: for the baseline target (training, on
    // any x86-64) and with a build's flags (`nnc predict`).
    cc::Build::new().file("src/build/conv.c").opt_level(3).warnings(true).compile("nnc_conv");
    cc::Build::new()
        .file("src/build/conv.c")
        .opt_level(3)
        .flag_if_supported("-march=native")
        .flag_if_supported("-ffp-contract=fast")
        .define("NNC_CONV_NAME", "nnc_c_conv_run")
        .warnings(true)
        .compile("nnc_c_conv");
}
