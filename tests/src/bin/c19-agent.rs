//! The `c19` command line, built inside the tests package so that its integration tests
//! can run it through `CARGO_BIN_EXE_c19-agent` (cargo builds it before the tests).

fn main() -> std::process::ExitCode {
    c19_bin::main()
}
