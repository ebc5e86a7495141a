//! The syntax Kubernetes requires of label keys and values, namespace names and
//! container port names, checked when the configuration loads.

use crate::{Error, Result};

/// Checks a label key: an optional DNS-subdomain prefix and `/`, then a name.
pub(crate) fn check_label_key(key: &str) -> Result<()> {
    let refuse = |reason| Error::Label {
        part: "key",
        text: key.to_owned(),
        reason,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|prefix| !is_dns_subdomain(prefix)) {
        return Err(refuse(
            "the prefix before `/` must be a DNS subdomain (at most 253 lowercase letters, digits, '-' or '.')",
        ));
    }
    if name.is_empty() || !is_label_name(name) {
        return Err(refuse(
            "a label name is 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or a label name.
pub(crate) fn check_label_value(value: &str) -> Result<()> {
    if value.is_empty() || is_label_name(value) {
        return Ok(());
    }
    Err(Error::Label {
        part: "value",
        text: value.to_owned(),
        reason: "a label value is at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    })
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
pub(crate) fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// An RFC 1123 label: lowercase letters, digits and `-`, at most 63 characters.
pub(crate) fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && (last.is_ascii_lowercase() || last.is_ascii_digit())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        }
        _ => false,
    }
}

/// An RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// An IANA service name as Kubernetes checks container port names: at most 15
/// lowercase letters, digits and `-`, with a letter, no leading, trailing or double `-`.
pub(crate) fn is_port_name(name: &str) -> bool {
    name.len() <= 15
        && is_dns_label(name)
        && !name.contains("--")
        && name.bytes().any(|b| b.is_ascii_lowercase())
}
