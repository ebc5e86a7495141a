//! Just enough of the Dockerfile and `.dockerignore` formats to check what an image build
//! would do without a Docker engine: stages, their instructions with line continuations
//! and build arguments resolved, and the ignore rules of the build context.

use std::collections::BTreeMap;

/// One instruction: its keyword upper-cased, and its arguments on one line.
#[derive(Debug, Clone)]
pub struct Instruction {
    /// `FROM`, `COPY`, `RUN`, ...
    pub keyword: String,
    /// Everything after the keyword, continuation lines joined.
    pub args: String,
}

/// A build stage.
#[derive(Debug)]
pub struct Stage {
    /// The base image, build arguments substituted.
    pub image: String,
    /// The `AS` name, if any.
    pub name: Option<String>,
    /// The instructions after `FROM`.
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// The arguments of every instruction with this keyword.
    pub fn all(&self, keyword: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|instruction| instruction.keyword == keyword)
            .map(|instruction| instruction.args.as_str())
            .collect()
    }

    /// The arguments of the last instruction with this keyword (the one that counts for
    /// USER, ENTRYPOINT, ...).
    pub fn last(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).last().copied()
    }

    /// The variables set by `ENV KEY=VALUE ...` lines.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for args in self.all("ENV") {
            for pair in args.split_whitespace() {
                if let Some((key, value)) = pair.split_once('=') {
                    env.insert(key.to_owned(), value.trim_matches('"').to_owned());
                }
            }
        }
        env
    }
}

/// Parses a Dockerfile into its stages, substituting the global `ARG` defaults into the
/// `FROM` lines.
pub fn parse(text: &str) -> Vec<Stage> {
    let mut global_args = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions(text) {
        match instruction.keyword.as_str() {
            "ARG" if stages.is_empty() => {
                if let Some((key, value)) = instruction.args.split_once('=') {
                    global_args.insert(key.trim().to_owned(), value.trim().to_owned());
                }
            }
            "FROM" => {
                let words: Vec<&str> = instruction
                    .args
                    .split_whitespace()
                    .filter(|word| !word.starts_with("--"))
                    .collect();
                let mut image = words[0].to_owned();
                for (key, value) in &global_args {
                    image = image.replace(&format!("${{{key}}}"), value);
                    image = image.replace(&format!("${key}"), value);
                }
                let name = match words.as_slice() {
                    [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                    _ => None,
                };
                stages.push(Stage {
                    image,
                    name,
                    instructions: Vec::new(),
                });
            }
            _ => {
                let stage = stages
                    .last_mut()
                    .expect("an instruction before the first FROM");
                stage.instructions.push(instruction);
            }
        }
    }
    stages
}

/// The instructions of a Dockerfile: comments dropped, `\` continuations joined.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                pending.push_str(start);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, args) = pending
                    .split_once(char::is_whitespace)
                    .unwrap_or((&pending, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.split_whitespace().collect::<Vec<_>>().join(" "),
                });
                pending.clear();
            }
        }
    }
    out
}

/// The rules of a `.dockerignore` file, in order; later rules win.
#[derive(Debug)]
pub struct Ignore {
    rules: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    /// Parses the rules: one pattern a line, `!` re-includes, `#` comments.
    pub fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (include, pattern) = match line.strip_prefix('!') {
                    Some(pattern) => (true, pattern),
                    None => (false, line),
                };
                let segments = pattern
                    .trim_matches('/')
                    .split('/')
                    .filter(|segment| !segment.is_empty() && *segment != ".")
                    .map(str::to_owned)
                    .collect();
                (include, segments)
            })
            .collect();
        Self { rules }
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out of the
    /// build context. As in Docker, a rule that matches a parent directory matches the path.
    pub fn excludes(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (include, pattern) in &self.rules {
            let matches = (1..=segments.len()).any(|end| matches(pattern, &segments[..end]));
            if matches {
                excluded = !include;
            }
        }
        excluded
    }
}

/// Whether the pattern's segments match the path's: `**` any number of segments, `*` and
/// `?` within one.
fn matches(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| matches(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                wildcard(first.as_bytes(), segment.as_bytes()) && matches(rest, path_rest)
            }
            None => false,
        },
    }
}

/// Glob matching of one segment.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| wildcard(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && wildcard(rest, &text[1..]),
        Some((byte, rest)) => text.first() == Some(byte) && wildcard(rest, &text[1..]),
    }
}
