//! Misuse of the macros is a compile error that says what to write instead; the
//! compiler's messages are committed beside each case in `tests/ui/`.

#[test]
fn misuse_is_a_readable_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
