//! Compiles the C reader and printer of predictions (`src/build/io.c`, with
//! the gzip decoder it includes) into nnc, so `nnc predict` runs the very
//! code a built executable runs.

fn main() {
    println!("cargo:rerun-if-changed=src/build/io.c");
    println!("cargo:rerun-if-changed=src/build/inflate.c");
    cc::Build::new().file("src/build/io.c").include("src/build").opt_level(2).warnings(true).compile("nnc_io");
}
