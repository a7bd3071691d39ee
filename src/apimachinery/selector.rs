//! Label and field selectors: the query-string syntax, parsed here and matched with
//! kube-core's `Selector` (which has no string parser). The simulator applies them
//! server-side; the `/cache` lister applies them to the local cache.

use std::collections::{BTreeMap, BTreeSet};

use kube_core::{Expression, Selector, SelectorExt};

use crate::names::{label_key_error, label_value_error};

/// A selector that could not be parsed, or a field the server cannot select on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// A parsed label selector: a conjunction of requirements (empty = everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Selector);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub fn parse(input: &str) -> Result<LabelSelector, SelectorError> {
        let mut selector = Selector::default();
        for part in split_top_level(input)? {
            let part = part.trim();
            if part.is_empty() {
                if input.trim().is_empty() {
                    continue;
                }
                return Err(SelectorError(format!(
                    "unable to parse requirement: found '', expected: identifier in {input:?}"
                )));
            }
            selector.extend(parse_requirement(part)?);
        }
        Ok(LabelSelector(selector))
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.selects_all()
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.matches(labels)
    }
}

/// Splits on commas that are not inside a parenthesised value set.
fn split_top_level(input: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(SelectorError(format!(
                        "unable to parse requirement: unexpected ')' in {input:?}"
                    )));
                }
            }
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!(
            "unable to parse requirement: unclosed '(' in {input:?}"
        )));
    }
    parts.push(&input[start..]);
    Ok(parts)
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn validate_key(key: &str) -> Result<(), SelectorError> {
    label_key_error(key).map_or(Ok(()), |e| Err(SelectorError(e)))
}

fn validate_value(value: &str) -> Result<(), SelectorError> {
    label_value_error(value).map_or(Ok(()), |e| Err(SelectorError(e)))
}

fn parse_requirement(part: &str) -> Result<Expression, SelectorError> {
    if let Some(rest) = part.strip_prefix('!') {
        let key = rest.trim();
        validate_key(key)?;
        return Ok(Expression::DoesNotExist(key.to_string()));
    }
    let key_end = part.find(|c: char| !is_key_char(c)).unwrap_or(part.len());
    let key = &part[..key_end];
    if key.is_empty() {
        return Err(SelectorError(format!(
            "unable to parse requirement: found '{part}', expected: identifier"
        )));
    }
    validate_key(key)?;
    let key = key.to_string();
    let rest = part[key_end..].trim_start();
    let expression = if rest.is_empty() {
        Expression::Exists(key)
    } else if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        let v = v.trim();
        validate_value(v)?;
        Expression::Equal(key, v.to_string())
    } else if let Some(v) = rest.strip_prefix("!=") {
        let v = v.trim();
        validate_value(v)?;
        Expression::NotEqual(key, v.to_string())
    } else if let Some(v) = rest.strip_prefix("notin") {
        Expression::NotIn(key, parse_set(v, part)?)
    } else if let Some(v) = rest.strip_prefix("in") {
        Expression::In(key, parse_set(v, part)?)
    } else {
        return Err(SelectorError(format!(
            "unable to parse requirement: found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
        )));
    };
    Ok(expression)
}

fn parse_set(v: &str, part: &str) -> Result<BTreeSet<String>, SelectorError> {
    let v = v.trim();
    let inner = v
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| {
            SelectorError(format!(
                "unable to parse requirement: found '{part}', expected: '('"
            ))
        })?;
    let values: BTreeSet<String> = inner.split(',').map(|s| s.trim().to_string()).collect();
    for value in &values {
        validate_value(value)?;
    }
    Ok(values)
}

/// A parsed field selector: a conjunction of `field=value` / `field!=value` requirements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses `metadata.name=x,spec.nodeName!=y` (`=`, `==`, `!=`); which fields a resource supports is
    /// checked separately by [`FieldSelector::check_supported`].
    pub fn parse(input: &str) -> Result<FieldSelector, SelectorError> {
        let mut requirements = Vec::new();
        for part in input.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                )));
            };
            requirements.push((field.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { requirements })
    }

    /// Fails with the apiserver's `field label not supported: X` for a field outside `supported`.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), SelectorError> {
        match self
            .requirements
            .iter()
            .find(|(f, _, _)| !supported.contains(&f.as_str()))
        {
            Some((f, _, _)) => Err(SelectorError(format!("field label not supported: {f}"))),
            None => Ok(()),
        }
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object is selected; `field` returns a field's value (a missing field counts as "").
    pub fn matches<'a>(&self, field: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements
            .iter()
            .all(|(name, equal, value)| (field(name).unwrap_or_default() == value) == *equal)
    }
}
