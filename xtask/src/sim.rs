//! `cargo xtask sim [options]`: builds the simulator (`c19-sim`) in release and runs it;
//! it prints one JSON line per run. The options are `c19-sim`'s (`cargo xtask sim --help`).

use crate::util::{cargo, run as step};

pub fn run(args: &[String]) -> Result<(), String> {
    step(
        "simulate (c19-sim, release)",
        cargo()
            .args(["run", "--quiet", "--release", "-p", "c19-sim", "--"])
            .args(args),
    )
}
