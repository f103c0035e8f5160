//! The shipped binary is linked at a fixed address (`build.rs`): the dynamic loader has no relative
//! relocations to apply at a cold start.

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
