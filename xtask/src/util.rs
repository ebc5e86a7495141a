//! Small helpers shared by the tasks.

use std::{path::PathBuf, process::Command, time::Instant};

/// The repository root (the parent of this crate).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `cargo` as invoked by the user (respects `$CARGO`), run from the repository root.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs `command`, echoing it and timing it; fails with its description.
pub fn run(what: &str, command: &mut Command) -> Result<(), String> {
    eprintln!("\n==> {what}\n    $ {}", describe(command));
    let start = Instant::now();
    let status = command
        .status()
        .map_err(|error| format!("{what}: cannot run {}: {error}", describe(command)))?;
    eprintln!("    ({what}: {:.1}s)", start.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Runs `command` and returns its standard output.
pub fn output(what: &str, command: &mut Command) -> Result<String, String> {
    let out = command
        .output()
        .map_err(|error| format!("{what}: cannot run {}: {error}", describe(command)))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command line of `command`, for logs.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value after `--name` in `args`, parsed.
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>, String> {
    match args.iter().position(|arg| arg == name) {
        None => Ok(None),
        Some(i) => {
            let value = args
                .get(i + 1)
                .ok_or_else(|| format!("{name} needs a value"))?;
            value
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}: `{value}` is not valid"))
        }
    }
}
