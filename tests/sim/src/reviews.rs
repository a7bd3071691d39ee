//! The authentication and authorization review APIs, with their real shapes:
//! `POST /apis/authentication.k8s.io/v1/tokenreviews` (TokenReview) and
//! `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` (SubjectAccessReview),
//! answered 201 from a table a test fills through [`Reviews`]: which tokens exist, whose
//! they are, and what each user may do. An unknown token is `authenticated: false`; a
//! question no registered permission answers is `allowed: false`.
//!
//! Like every other API request they are counted (`create` on
//! `tokenreviews.authentication.k8s.io` and `subjectaccessreviews.authorization.k8s.io`)
//! and subject to the fault hooks ([`crate::Faults::set_rule`] to hang them or answer an
//! error status, [`crate::Faults::forbid`], [`crate::Faults::fail_next`]).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};

use crate::error::ApiError;

/// The resource key of TokenReviews, for the request counters and fault hooks.
pub const TOKEN_REVIEWS: &str = "tokenreviews.authentication.k8s.io";
/// The resource key of SubjectAccessReviews, for the request counters and fault hooks.
pub const ACCESS_REVIEWS: &str = "subjectaccessreviews.authorization.k8s.io";

/// Something a user may do, as an RBAC rule grants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// `verb` on the non-resource URL `path` (a trailing `*` matches any rest, as in
    /// RBAC's `nonResourceURLs`).
    Path {
        /// `get`, ...
        verb: String,
        /// `/metrics`, `/debug/*`, ...
        path: String,
    },
    /// `verb` on `resource` (`pods`, `deployments.apps`): in `namespace`, or in every
    /// namespace and at the cluster scope when `None` (a ClusterRoleBinding).
    Resource {
        /// `list`, `watch`, `*`, ...
        verb: String,
        /// `plural[.group]`.
        resource: String,
        /// Where; `None` everywhere.
        namespace: Option<String>,
    },
}

impl Permission {
    /// `verb` on the non-resource URL `path`.
    pub fn path(verb: &str, path: &str) -> Permission {
        Permission::Path {
            verb: verb.into(),
            path: path.into(),
        }
    }

    /// `verb` on `resource` (`plural[.group]`) everywhere.
    pub fn resource(verb: &str, resource: &str) -> Permission {
        Permission::Resource {
            verb: verb.into(),
            resource: resource.into(),
            namespace: None,
        }
    }

    /// `verb` on `resource` (`plural[.group]`) in `namespace` only.
    pub fn resource_in(verb: &str, resource: &str, namespace: &str) -> Permission {
        Permission::Resource {
            verb: verb.into(),
            resource: resource.into(),
            namespace: Some(namespace.into()),
        }
    }

    /// Whether this permission allows the SubjectAccessReview `spec`.
    fn allows(&self, spec: &Value) -> bool {
        let verb_matches = |verb: &str, asked: &Value| verb == "*" || asked.as_str() == Some(verb);
        match self {
            Permission::Path { verb, path } => {
                let asked = &spec["nonResourceAttributes"];
                let asked_path = asked["path"].as_str().unwrap_or_default();
                let path_matches = match path.strip_suffix('*') {
                    Some(prefix) => asked_path.starts_with(prefix),
                    None => asked_path == path,
                };
                asked.is_object() && verb_matches(verb, &asked["verb"]) && path_matches
            }
            Permission::Resource {
                verb,
                resource,
                namespace,
            } => {
                let asked = &spec["resourceAttributes"];
                let plural = asked["resource"].as_str().unwrap_or_default();
                let key = match asked["group"].as_str().unwrap_or_default() {
                    "" => plural.to_owned(),
                    group => format!("{plural}.{group}"),
                };
                let asked_ns = asked["namespace"].as_str().unwrap_or_default();
                let in_scope = match namespace {
                    None => true,
                    Some(ns) => asked_ns == ns,
                };
                asked.is_object()
                    && verb_matches(verb, &asked["verb"])
                    && (resource == "*" || *resource == key)
                    && in_scope
            }
        }
    }
}

/// A user a token stands for.
#[derive(Debug, Clone)]
struct Identity {
    user: String,
    uid: String,
    groups: Vec<String>,
}

#[derive(Debug, Default)]
struct Table {
    tokens: BTreeMap<String, Identity>,
    permissions: BTreeMap<String, Vec<Permission>>,
}

/// The simulator's users, their tokens and what they may do; every method acts at once.
#[derive(Debug, Default)]
pub struct Reviews {
    table: Mutex<Table>,
}

impl Reviews {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `token` as `user` in `groups` (a TokenReview of it answers
    /// `authenticated: true` with them), who may do what `may` says (added to what the
    /// user may already do).
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str], may: &[Permission]) {
        let mut table = self.table();
        let uid = format!("uid-{user}");
        table.tokens.insert(
            token.to_owned(),
            Identity {
                user: user.to_owned(),
                uid,
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            },
        );
        table
            .permissions
            .entry(user.to_owned())
            .or_default()
            .extend(may.iter().cloned());
    }

    /// Forgets `token`: a TokenReview of it answers `authenticated: false` from now on.
    pub fn revoke_token(&self, token: &str) {
        self.table().tokens.remove(token);
    }

    /// Takes every permission from `user`.
    pub fn revoke_permissions(&self, user: &str) {
        self.table().permissions.remove(user);
    }

    /// Answers a TokenReview `body`, as the API server's authenticators would.
    pub(crate) fn token_review(&self, body: &Value) -> Result<Value, ApiError> {
        expect_kind(body, "authentication.k8s.io/v1", "TokenReview")?;
        let token = body["spec"]["token"].as_str().unwrap_or_default();
        if token.is_empty() {
            return Err(invalid(
                "spec.token",
                "Required value: token must not be empty",
            ));
        }
        let status = match self.table().tokens.get(token) {
            Some(id) => json!({
                "authenticated": true,
                "user": {"username": id.user, "uid": id.uid, "groups": id.groups},
                "audiences": ["https://kubernetes.default.svc"],
            }),
            None => json!({
                "authenticated": false,
                "user": {},
                "error": "[invalid bearer token, token lookup failed]",
            }),
        };
        Ok(answer(body, status))
    }

    /// Answers a SubjectAccessReview `body`, as RBAC would with the registered
    /// permissions.
    pub(crate) fn access_review(&self, body: &Value) -> Result<Value, ApiError> {
        expect_kind(body, "authorization.k8s.io/v1", "SubjectAccessReview")?;
        let spec = &body["spec"];
        let resource = spec["resourceAttributes"].is_object();
        let non_resource = spec["nonResourceAttributes"].is_object();
        if resource == non_resource {
            return Err(invalid(
                "spec.resourceAttributes",
                "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
        let user = spec["user"].as_str().unwrap_or_default();
        if user.is_empty() && spec["groups"].as_array().is_none_or(Vec::is_empty) {
            return Err(invalid(
                "spec.user",
                "Invalid value: at least one of user or group must be specified",
            ));
        }
        let allowed = self
            .table()
            .permissions
            .get(user)
            .is_some_and(|may| may.iter().any(|p| p.allows(spec)));
        let status = if allowed {
            json!({"allowed": true, "reason": format!("RBAC: allowed for User \"{user}\"")})
        } else {
            json!({"allowed": false})
        };
        Ok(answer(body, status))
    }
}

/// The review sent, with its `status`, as the API server returns it.
fn answer(body: &Value, status: Value) -> Value {
    json!({
        "kind": body["kind"],
        "apiVersion": body["apiVersion"],
        "metadata": {"creationTimestamp": null},
        "spec": body["spec"],
        "status": status,
    })
}

fn expect_kind(body: &Value, api_version: &str, kind: &str) -> Result<(), ApiError> {
    if body["apiVersion"] != api_version || body["kind"] != kind {
        return Err(ApiError::bad_request(format!(
            "the body must be a {kind} of {api_version}, not {} {}",
            body["apiVersion"], body["kind"]
        )));
    }
    if !body["spec"].is_object() {
        return Err(invalid("spec", "Required value"));
    }
    Ok(())
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::new(422, "Invalid", format!("{field}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(kind: &str, spec: Value) -> Value {
        let group = if kind == "TokenReview" {
            "authentication.k8s.io/v1"
        } else {
            "authorization.k8s.io/v1"
        };
        json!({"apiVersion": group, "kind": kind, "spec": spec})
    }

    #[test]
    fn a_registered_token_is_its_user_and_any_other_is_not_authenticated() {
        let reviews = Reviews::default();
        reviews.add_token("t1", "alice", &["devs"], &[]);
        let known = reviews
            .token_review(&review("TokenReview", json!({"token": "t1"})))
            .unwrap_or_default();
        assert_eq!(known["status"]["authenticated"], true);
        assert_eq!(known["status"]["user"]["username"], "alice");
        assert_eq!(known["status"]["user"]["groups"], json!(["devs"]));
        let unknown = reviews
            .token_review(&review("TokenReview", json!({"token": "t2"})))
            .unwrap_or_default();
        assert_eq!(unknown["status"]["authenticated"], false);
        assert!(
            reviews
                .token_review(&review("TokenReview", json!({})))
                .is_err()
        );
    }

    #[test]
    fn access_follows_the_registered_permissions() {
        let reviews = Reviews::default();
        reviews.add_token(
            "t",
            "bob",
            &[],
            &[
                Permission::path("get", "/metrics"),
                Permission::resource_in("list", "deployments.apps", "shop"),
            ],
        );
        let allowed = |spec: Value| {
            reviews
                .access_review(&review("SubjectAccessReview", spec))
                .map(|v| v["status"]["allowed"] == true)
                .unwrap_or_else(|e| panic!("{e:?}"))
        };
        assert!(allowed(
            json!({"user": "bob", "nonResourceAttributes": {"path": "/metrics", "verb": "get"}})
        ));
        assert!(!allowed(
            json!({"user": "eve", "nonResourceAttributes": {"path": "/metrics", "verb": "get"}})
        ));
        let list = |ns: Option<&str>, group: &str| {
            json!({"user": "bob", "resourceAttributes": {
                "verb": "list", "group": group, "resource": "deployments", "namespace": ns}})
        };
        assert!(allowed(list(Some("shop"), "apps")));
        assert!(!allowed(list(Some("other"), "apps")));
        assert!(
            !allowed(list(None, "apps")),
            "cluster-wide is more than one namespace"
        );
        assert!(!allowed(list(Some("shop"), "")), "another group");
        let both = json!({"user": "bob", "resourceAttributes": {}, "nonResourceAttributes": {}});
        assert!(
            reviews
                .access_review(&review("SubjectAccessReview", both))
                .is_err()
        );
    }
}
