//! `c19`: runs a c19 agent. See `c19 --help`.

fn main() -> std::process::ExitCode {
    c19_bin::main()
}
