//! `${NAME}` substitution from the environment, applied to each string value of a parsed
//! `--config` file (never to its YAML text, so a value containing `#` or `: ` stays one
//! value and cannot change the document's structure).

/// Replaces `${NAME}` with the variable's value, so credentials can come from the
/// environment or a mounted Secret; `$${` writes a literal `${`. An unset variable is an
/// error, never an empty string.
pub(crate) fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "an unclosed ${ (write ${NAME})".to_owned())?;
        let name = &after[..end];
        let value = lookup(name).ok_or_else(|| {
            format!("${{{name}}} is used but the environment variable {name} is not set")
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands `value` in place; `field` names it in the error.
pub(crate) fn expand_in(
    field: &str,
    value: &mut String,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    if value.contains("${") {
        *value = expand(value, lookup).map_err(|e| format!("{field}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_environment_variables() {
        let env = |n: &str| (n == "PASS").then(|| "s3cret".to_owned());
        assert_eq!(
            expand("a: ${PASS}\nb: $${PASS}", &env).expect("ok"),
            "a: s3cret\nb: ${PASS}"
        );
        assert!(
            expand("a: ${NOPE}", &env)
                .expect_err("unset")
                .contains("NOPE is not set")
        );
        assert!(expand("a: ${PASS", &env).is_err());
    }
}
