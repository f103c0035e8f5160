//! Links the function's binary as a position-dependent executable (`-no-pie`).
//!
//! A position-independent executable is relocated by the dynamic loader at every start: tens of
//! thousands of relative relocations, which write (and so copy) every page of `.data.rel.ro`, a
//! visible share of the cold start (bench/README.md). Linked at a fixed address, it has none. The
//! cost: the executable's own code and data are not randomised by ASLR (the libraries, heap and
//! stack still are), as with Go's default on Linux.
//! Only the shipped binaries are linked so; tests and the benches' binaries are left as the target makes them.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        for bin in ["opportunity-disassociator", "opportunity-disassociator-webhook"] {
            println!("cargo:rustc-link-arg-bin={bin}=-no-pie");
        }
    }
}
