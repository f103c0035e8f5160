//! How the shipped binaries are built: linked at a fixed address (`build.rs`), so the dynamic loader
//! has no relative relocations to apply at a cold start; and aws-lc built without CPU Jitter Entropy
//! (`.cargo/config.toml`), so the first TLS handshake does not spend time collecting it.

const BINARIES: [&str; 2] =
    [env!("CARGO_BIN_EXE_opportunity-disassociator"), env!("CARGO_BIN_EXE_opportunity-disassociator-webhook")];

#[cfg(target_os = "linux")]
#[test]
fn the_function_binaries_are_position_dependent_executables() {
    for path in BINARIES {
        let binary = std::fs::read(path).expect("the function's binary");
        assert_eq!(&binary[..4], b"\x7fELF", "an ELF file");
        let little_endian = binary[5] == 1;
        let e_type = [binary[16], binary[17]];
        let e_type = if little_endian { u16::from_le_bytes(e_type) } else { u16::from_be_bytes(e_type) };
        // ET_EXEC (2), where a position-independent executable is ET_DYN (3).
        assert_eq!(e_type, 2, "{path}: linked with -no-pie");
    }
}

/// The debug binaries keep their symbols: aws-lc's jitter entropy collector (`jent_*`) is not in them.
#[test]
fn aws_lc_is_built_without_cpu_jitter_entropy() {
    for path in BINARIES {
        let binary = std::fs::read(path).expect("the function's binary");
        let has = |needle: &[u8]| binary.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"aws_lc_0_"), "{path}: aws-lc's symbols are there to look at (the binary is not stripped)");
        assert!(
            !has(b"jent_measure_jitter"),
            "{path}: aws-lc was built with CPU Jitter Entropy: see .cargo/config.toml"
        );
    }
}
