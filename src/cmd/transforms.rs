//! The configured decode-time transforms (`Redaction`) turned into what the informers
//! run: `redact` rules resolved to resources like a route's, the key chosen, and the
//! start-up warnings; and how `check-config` shows them.

use std::fmt::Write;

use kubebridge_sinks::ResourceId;

use super::AppError;
use crate::config::{KeySource, Redaction, RedactionKey};
use crate::informer::{ResolvedRule, Transforms};
use crate::kube::Discovery;
use crate::plan::{PlannedResource, Resolver};

/// Resolves every `redact` rule through `discovery` (an unknown resource is a usage
/// error naming the rule: a typo there would publish what the user meant to hide) and
/// warns, once each: about `--reveal-secrets`, and about a random key when one of the
/// `watched` resources has values to hash (otherwise the key is never used, and a
/// `watch pods | jq` needs no warning).
pub(crate) fn build(
    redaction: &Redaction,
    discovery: &Discovery,
    watched: &[&ResourceId],
) -> Result<Transforms, AppError> {
    let mut rules = Vec::with_capacity(redaction.rules.len());
    for (i, rule) in redaction.rules.iter().enumerate() {
        let resource = discovery.resolve(&rule.resource).map_err(|e| {
            AppError::usage(format!(
                "redact rule {} (resource {:?}): {e}",
                i + 1,
                rule.resource
            ))
        })?;
        rules.push(ResolvedRule {
            group: resource.id.group.clone(),
            resource: resource.id.resource.clone(),
            paths: rule.paths.clone(),
        });
    }
    let transforms = Transforms::new(
        !redaction.keep_managed_fields,
        !redaction.reveal_secrets,
        redaction.key.clone().unwrap_or_else(RedactionKey::random),
        rules,
    );
    if redaction.reveal_secrets {
        tracing::warn!(
            "--reveal-secrets: Secrets' data, stringData and last-applied annotation are published, cached and served as they are"
        );
    }
    if redaction.key.is_none() && watched.iter().any(|r| transforms.redacts(r)) {
        tracing::warn!(
            "no redaction key (--redaction-key-file or KUBEBRIDGE_REDACTION_KEY): redacted values are hashed with a random key drawn for this process, so their hashes change across restarts"
        );
    }
    Ok(transforms)
}

/// What `check-config` prints about the transforms: whether Secrets are redacted and
/// with which key (its source, never its bytes), managedFields, and each rule with its
/// resource resolved as far as `resolver` can (a name that cannot be is an error, as in
/// `watch`).
pub(crate) fn describe(redaction: &Redaction, resolver: &Resolver<'_>) -> Result<String, String> {
    let mut out = String::new();
    let source = redaction
        .key
        .as_ref()
        .map_or(KeySource::Random, |k| k.source().clone());
    let secrets = if redaction.reveal_secrets {
        "REVEALED (--reveal-secrets): Secret values are published as they are".to_owned()
    } else {
        format!("redacted (hmac-sha256, key {source})")
    };
    let _ = writeln!(out, "secrets: {secrets}");
    let managed = if redaction.keep_managed_fields {
        "kept"
    } else {
        "stripped"
    };
    let _ = writeln!(out, "managedFields: {managed}");
    let _ = writeln!(out, "redact rules ({}):", redaction.rules.len());
    for (i, rule) in redaction.rules.iter().enumerate() {
        let resource = match resolver.resolve(&rule.resource) {
            Ok(PlannedResource::Resolved(r)) => r.id.to_string(),
            Ok(PlannedResource::AtStartup(name)) => format!("{name} (resolved at start-up)"),
            Err(e) => {
                return Err(format!(
                    "redact rule {} (resource {:?}): {e}",
                    i + 1,
                    rule.resource
                ));
            }
        };
        let paths: Vec<String> = rule.paths.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  {resource}: {}", paths.join(", "));
    }
    Ok(out)
}
