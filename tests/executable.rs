//! How the shipped binary is built: linked at a fixed address (`build.rs`), so the dynamic loader has
//! no relative relocations to apply at a cold start; and aws-lc built without CPU Jitter Entropy
//! (`.cargo/config.toml`), so the first TLS handshake does not spend ~30 ms collecting it.

#[cfg(target_os = "linux")]
#[test]
fn the_function_binary_is_a_position_dependent_executable() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_opportunity-disassociator")).expect("the function's binary");
    assert_eq!(&binary[..4], b"\x7fELF", "an ELF file");
    let little_endian = binary[5] == 1;
    let e_type = [binary[16], binary[17]];
    let e_type = if little_endian { u16::from_le_bytes(e_type) } else { u16::from_be_bytes(e_type) };
    // ET_EXEC (2), where a position-independent executable is ET_DYN (3).
    assert_eq!(e_type, 2, "linked with -no-pie");
}

/// The debug binary keeps its symbols: aws-lc's jitter entropy collector (`jent_*`) is not in it.
#[test]
fn aws_lc_is_built_without_cpu_jitter_entropy() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_opportunity-disassociator")).expect("the function's binary");
    let has = |needle: &[u8]| binary.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"aws_lc_0_"), "aws-lc's symbols are there to look at (the binary is not stripped)");
    assert!(!has(b"jent_measure_jitter"), "aws-lc was built with CPU Jitter Entropy: see .cargo/config.toml");
}
