//! The label selector: the equality map of c19 0.1 (`{app: c19}`), or a string in the
//! syntax of `kubectl -l` with set-based expressions
//! (`app=c19,tier in (a,b),env notin (dev),team,!legacy`).
//!
//! The string is parsed as Kubernetes parses label selectors (its `labels.Parse`):
//! comma-separated requirements, each `key=value`, `key==value`, `key!=value`,
//! `key in (v1,v2)`, `key notin (v1,v2)`, `key` (the label exists) or `!key` (it does
//! not); whitespace between tokens is ignored, a value may be empty (`key=`,
//! `key in (a,)`), a set may not (`key in ()`). Keys and values are checked as label
//! syntax. The API server does the matching: the selector travels as the list and watch
//! requests' `labelSelector`, rebuilt from what was parsed, so it is exactly what was
//! checked. (`key>N` and `key<N` of node affinity are refused: no pod selector uses them.)

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::{
    Error, Result,
    syntax::{check_label_key, check_label_value},
};

/// One requirement of a [`Selector`] on a pod's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` (or `key==value`): the label is there with this value.
    Equals {
        /// The label key.
        key: String,
        /// The value it must have.
        value: String,
    },
    /// `key!=value`: the label is absent or has another value.
    NotEquals {
        /// The label key.
        key: String,
        /// The value it must not have.
        value: String,
    },
    /// `key in (a,b)`: the label is there with one of these values.
    In {
        /// The label key.
        key: String,
        /// The values allowed (at least one).
        values: Vec<String>,
    },
    /// `key notin (a,b)`: the label is absent or has none of these values.
    NotIn {
        /// The label key.
        key: String,
        /// The values refused (at least one).
        values: Vec<String>,
    },
    /// `key`: the label is there, with any value.
    Exists {
        /// The label key.
        key: String,
    },
    /// `!key`: the label is absent.
    DoesNotExist {
        /// The label key.
        key: String,
    },
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equals { key, value } => write!(f, "{key}={value}"),
            Self::NotEquals { key, value } => write!(f, "{key}!={value}"),
            Self::In { key, values } => write!(f, "{key} in ({})", values.join(",")),
            Self::NotIn { key, values } => write!(f, "{key} notin ({})", values.join(",")),
            Self::Exists { key } => f.write_str(key),
            Self::DoesNotExist { key } => write!(f, "!{key}"),
        }
    }
}

/// How the selector was written, to print it back the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    /// As a map of labels that must all match.
    Labels(BTreeMap<String, String>),
    /// As a `kubectl -l` string (trimmed).
    Text(String),
}

/// Which pods may be peers, by their labels: every requirement must hold. Empty
/// selects every pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    written: Written,
}

impl Default for Selector {
    fn default() -> Self {
        Self {
            requirements: Vec::new(),
            written: Written::Labels(BTreeMap::new()),
        }
    }
}

impl Selector {
    /// A selector from label pairs that must all match, checking their syntax.
    pub fn new<K: Into<String>, V: Into<String>>(
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let labels: BTreeMap<String, String> = labels
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        for (key, value) in &labels {
            check_label_key(key)?;
            check_label_value(value)?;
        }
        let requirements = labels
            .iter()
            .map(|(key, value)| Requirement::Equals {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        Ok(Self {
            requirements,
            written: Written::Labels(labels),
        })
    }

    /// Parses a selector in `kubectl -l` syntax; empty selects every pod.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let requirements = Parser::new(text).selector()?;
        Ok(Self {
            requirements,
            written: Written::Text(text.to_owned()),
        })
    }

    /// The requirements, all of which a pod's labels must meet.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The selector in the API's syntax (`app=c19,tier in (a,b)`); empty when it selects
    /// every pod.
    pub fn to_query(&self) -> String {
        let terms: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        terms.join(",")
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.written {
            Written::Labels(labels) => labels.serialize(serializer),
            Written::Text(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // YAML and env overrides turn `version: 2` or `canary: true` into numbers and
        // booleans; as labels they are the strings the user wrote.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Value {
            Text(String),
            Bool(bool),
            Int(i64),
            Uint(u64),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Labels(BTreeMap<String, Value>),
        }
        let raw = Option::<Raw>::deserialize(deserializer).map_err(|_| {
            de::Error::custom(
                "`selector` expects a map of labels (`{app: c19}`) or a selector string \
                 (`app=c19,tier in (a,b)`)",
            )
        })?;
        let labels = match raw {
            None => return Ok(Self::default()),
            Some(Raw::Text(text)) => return Self::parse(&text).map_err(de::Error::custom),
            Some(Raw::Labels(labels)) => labels,
        };
        let labels = labels.into_iter().map(|(key, value)| {
            let value = match value {
                Value::Text(text) => text,
                Value::Bool(flag) => flag.to_string(),
                Value::Int(number) => number.to_string(),
                Value::Uint(number) => number.to_string(),
            };
            (key, value)
        });
        Self::new(labels).map_err(de::Error::custom)
    }
}

/// A token of the selector syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A key, a value or the words `in` and `notin`.
    Word(&'a str),
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
    /// `!`.
    Not,
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// `,`.
    Comma,
    /// `<` or `>`.
    Compare,
    /// The end of the selector.
    End,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Word(word) => write!(f, "`{word}`"),
            Self::Equals => f.write_str("`=`"),
            Self::NotEquals => f.write_str("`!=`"),
            Self::Not => f.write_str("`!`"),
            Self::Open => f.write_str("`(`"),
            Self::Close => f.write_str("`)`"),
            Self::Comma => f.write_str("`,`"),
            Self::Compare => f.write_str("`<` or `>`"),
            Self::End => f.write_str("the end"),
        }
    }
}

/// Characters that end a word (besides whitespace).
fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '<' | '>')
}

/// A recursive-descent parser of the selector syntax, as Kubernetes' `labels.Parse`.
struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next character to read.
    at: usize,
    /// Byte offset where the last token read began.
    last: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            at: 0,
            last: 0,
        }
    }

    /// The whole selector: requirements separated by commas; empty selects all.
    fn selector(mut self) -> Result<Vec<Requirement>> {
        let mut requirements = Vec::new();
        if self.peek() == Token::End {
            return Ok(requirements);
        }
        loop {
            requirements.push(self.requirement()?);
            match self.next() {
                Token::End => return Ok(requirements),
                Token::Comma => {}
                other => return Err(self.refuse(other, "`,` or the end")),
            }
        }
    }

    /// One requirement.
    fn requirement(&mut self) -> Result<Requirement> {
        if self.peek() == Token::Not {
            self.next();
            let key = self.key()?;
            return Ok(Requirement::DoesNotExist { key });
        }
        let key = self.key()?;
        match self.peek() {
            Token::End | Token::Comma => Ok(Requirement::Exists { key }),
            Token::Equals => {
                self.next();
                let value = self.value()?;
                Ok(Requirement::Equals { key, value })
            }
            Token::NotEquals => {
                self.next();
                let value = self.value()?;
                Ok(Requirement::NotEquals { key, value })
            }
            Token::Word("in") => {
                self.next();
                let values = self.set()?;
                Ok(Requirement::In { key, values })
            }
            Token::Word("notin") => {
                self.next();
                let values = self.set()?;
                Ok(Requirement::NotIn { key, values })
            }
            Token::Compare => {
                self.next();
                Err(self.problem(
                "`<` and `>` compare node labels in node affinity; a pod selector cannot use them"
                    .to_owned(),
                ))
            }
            other => {
                self.next();
                Err(self.refuse(other, "`=`, `==`, `!=`, `in`, `notin`, `,` or the end"))
            }
        }
    }

    /// A label key, checked.
    fn key(&mut self) -> Result<String> {
        match self.next() {
            Token::Word(word @ ("in" | "notin")) => Err(self.problem(format!(
                "`{word}` is an operator, expected a label key before it"
            ))),
            Token::Word(word) => {
                check_label_key(word)?;
                Ok(word.to_owned())
            }
            other => Err(self.refuse(other, "a label key")),
        }
    }

    /// The value after `=`, `==` or `!=`: a word, or empty.
    fn value(&mut self) -> Result<String> {
        let value = match self.peek() {
            Token::End | Token::Comma => "",
            Token::Word(word) => {
                self.next();
                word
            }
            other => {
                self.next();
                return Err(self.refuse(other, "a label value"));
            }
        };
        check_label_value(value)?;
        Ok(value.to_owned())
    }

    /// `(v1,v2,...)` after `in` or `notin`: at least one value, each possibly empty.
    fn set(&mut self) -> Result<Vec<String>> {
        match self.next() {
            Token::Open => {}
            other => return Err(self.refuse(other, "`(`")),
        }
        if self.peek() == Token::Close {
            self.next();
            return Err(self.problem(
                "the set of values of `in` or `notin` is empty; it needs at least one".to_owned(),
            ));
        }
        let mut values = Vec::new();
        loop {
            let value = match self.peek() {
                Token::Word(word) => {
                    self.next();
                    word
                }
                _ => "",
            };
            check_label_value(value)?;
            values.push(value.to_owned());
            match self.next() {
                Token::Comma => {}
                Token::Close => return Ok(values),
                other => return Err(self.refuse(other, "`,` or `)`")),
            }
        }
    }

    /// The next token, consumed.
    fn next(&mut self) -> Token<'a> {
        let (token, end) = self.scan();
        self.last = self.at + self.skipped();
        self.at = end;
        token
    }

    /// The next token, not consumed.
    fn peek(&self) -> Token<'a> {
        self.scan().0
    }

    /// Bytes of whitespace before the next token.
    fn skipped(&self) -> usize {
        let rest = &self.text[self.at..];
        rest.len() - rest.trim_start().len()
    }

    /// The next token and the offset just after it.
    fn scan(&self) -> (Token<'a>, usize) {
        let start = self.at + self.skipped();
        let rest = &self.text[start..];
        let mut chars = rest.chars();
        let Some(first) = chars.next() else {
            return (Token::End, start);
        };
        let second = chars.next();
        let (token, len) = match (first, second) {
            ('=', Some('=')) => (Token::Equals, 2),
            ('=', _) => (Token::Equals, 1),
            ('!', Some('=')) => (Token::NotEquals, 2),
            ('!', _) => (Token::Not, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            (',', _) => (Token::Comma, 1),
            ('<' | '>', _) => (Token::Compare, 1),
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || is_special(c))
                    .unwrap_or(rest.len());
                (Token::Word(&rest[..len]), len)
            }
        };
        (token, start + len)
    }

    /// The error for finding `found` where `expected` should be.
    fn refuse(&self, found: Token<'_>, expected: &str) -> Error {
        self.problem(format!("expected {expected}, found {found}"))
    }

    /// The error `reason`, at the last token read.
    fn problem(&self, reason: String) -> Error {
        let column = self.text[..self.last].chars().count() + 1;
        Error::Selector {
            selector: self.text.to_owned(),
            reason: format!("{reason} (at character {column})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> String {
        Selector::parse(text).unwrap().to_query()
    }

    fn refused(text: &str) -> String {
        Selector::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn set_based_expressions_parse_as_kubectl_reads_them() {
        let selector =
            Selector::parse("app=c19,tier in (a,b),env notin (dev),team,!legacy").unwrap();
        assert_eq!(
            selector.requirements(),
            [
                Requirement::Equals {
                    key: "app".into(),
                    value: "c19".into()
                },
                Requirement::In {
                    key: "tier".into(),
                    values: vec!["a".into(), "b".into()]
                },
                Requirement::NotIn {
                    key: "env".into(),
                    values: vec!["dev".into()]
                },
                Requirement::Exists { key: "team".into() },
                Requirement::DoesNotExist {
                    key: "legacy".into()
                },
            ]
        );
        assert_eq!(
            selector.to_query(),
            "app=c19,tier in (a,b),env notin (dev),team,!legacy"
        );
    }

    #[test]
    fn operators_spacing_and_empty_values() {
        assert_eq!(query("app==c19"), "app=c19");
        assert_eq!(query("app != c19"), "app!=c19");
        assert_eq!(
            query("  tier  in(a , b)  ,  ! legacy "),
            "tier in (a,b),!legacy"
        );
        assert_eq!(query("tier="), "tier=");
        assert_eq!(query("tier=,app=c19"), "tier=,app=c19");
        assert_eq!(query("tier in (a,)"), "tier in (a,)");
        assert_eq!(query("tier in (,)"), "tier in (,)");
        // `in` and `notin` are words like any other where a value is expected.
        assert_eq!(query("mode in (in,notin)"), "mode in (in,notin)");
        assert_eq!(query("mode=in"), "mode=in");
        assert_eq!(
            query("app.kubernetes.io/name=c19,example.com/Tier_2.x"),
            "app.kubernetes.io/name=c19,example.com/Tier_2.x"
        );
        assert_eq!(query(""), "");
        assert_eq!(query("   "), "");
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_problem() {
        for (text, problem) in [
            ("tier in a", "expected `(`, found `a`"),
            ("tier in (a", "expected `,` or `)`, found the end"),
            ("tier in (a b)", "expected `,` or `)`, found `b`"),
            (
                "tier in ()",
                "the set of values of `in` or `notin` is empty",
            ),
            ("tier notin ()", "is empty"),
            ("app=c19,", "expected a label key, found the end"),
            (",app=c19", "expected a label key, found `,`"),
            ("app=c19,,team", "expected a label key, found `,`"),
            (
                "app c19",
                "expected `=`, `==`, `!=`, `in`, `notin`, `,` or the end, found `c19`",
            ),
            ("app=c19 team", "expected `,` or the end, found `team`"),
            ("app=b=c", "expected `,` or the end, found `=`"),
            ("!app=c19", "expected `,` or the end, found `=`"),
            ("app=(c19)", "expected a label value, found `(`"),
            ("!", "expected a label key, found the end"),
            ("in (a)", "`in` is an operator"),
            ("app>1", "`<` and `>`"),
            ("app=c19)", "expected `,` or the end, found `)`"),
        ] {
            let error = refused(text);
            assert!(
                error.contains(&format!("invalid `selector` `{text}`")),
                "{text}: {error}"
            );
            assert!(error.contains(problem), "{text}: {error}");
        }
        assert!(refused("app=c19,  tier in a").ends_with("(at character 19)"));
    }

    #[test]
    fn keys_and_values_follow_the_label_syntax() {
        for (text, named) in [
            ("Bad.Prefix/name=x", "label key `Bad.Prefix/name`"),
            ("/name", "label key `/name`"),
            ("prefix/", "label key `prefix/`"),
            ("-app", "label key `-app`"),
            (&format!("{}=x", "a".repeat(64)), "label key `aaaa"),
            ("app=-c19", "label value `-c19`"),
            ("tier in (a,b_)", "label value `b_`"),
            (&format!("app={}", "v".repeat(64)), "label value `vvvv"),
        ] {
            let error = refused(text);
            assert!(error.contains(named), "{text}: {error}");
            assert!(error.contains("in `selector`"), "{text}: {error}");
        }
        // 63 characters is the longest name or value; a prefix may be 253.
        let label = "p".repeat(63);
        let prefix = format!("{label}.{label}.{label}.{}", "p".repeat(61));
        assert_eq!(prefix.len(), 253);
        let long = format!("{prefix}/{}={}", "n".repeat(63), "v".repeat(63));
        assert_eq!(query(&long), long);
        let error = refused(&format!("{prefix}p/name"));
        assert!(error.contains("prefix before `/`"), "{error}");
    }

    #[test]
    fn the_equality_map_is_still_a_selector() {
        let selector = Selector::new([("app.kubernetes.io/name", "c19"), ("tier", "")]).unwrap();
        assert_eq!(selector.to_query(), "app.kubernetes.io/name=c19,tier=");
        assert_eq!(Selector::default().to_query(), "");
        for (key, value, named) in [
            ("bad key", "x", "`bad key`"),
            ("Bad.Prefix/name", "x", "`Bad.Prefix/name`"),
            ("/name", "x", "`/name`"),
            ("prefix/", "x", "`prefix/`"),
            ("app", "-c19", "`-c19`"),
            ("app", "a=b", "`a=b`"),
        ] {
            let error = Selector::new([(key, value)]).unwrap_err().to_string();
            assert!(error.contains(named), "{error}");
        }
    }

    #[test]
    fn selectors_deserialize_from_maps_and_strings_and_print_back() {
        let selector: Selector =
            serde_json::from_str(r#"{"app": "c19", "version": 2, "canary": true}"#).unwrap();
        assert_eq!(selector.to_query(), "app=c19,canary=true,version=2");
        let selector: Selector = serde_json::from_str("null").unwrap();
        assert_eq!(selector, Selector::default());
        let selector: Selector = serde_json::from_str(r#"" app=c19,!legacy ""#).unwrap();
        assert_eq!(selector.to_query(), "app=c19,!legacy");
        assert_eq!(
            serde_json::to_string(&selector).unwrap(),
            r#""app=c19,!legacy""#
        );
        let error = serde_json::from_str::<Selector>("[1]")
            .unwrap_err()
            .to_string();
        assert!(error.contains("a map of labels"), "{error}");
        let error = serde_json::from_str::<Selector>(r#""tier in ()""#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid `selector` `tier in ()`"), "{error}");
    }
}
