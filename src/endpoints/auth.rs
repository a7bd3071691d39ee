//! `--metrics-auth kubernetes`: who may read `/metrics` and `/cache`, asked of the API
//! server the way controller-runtime's `WithAuthenticationAndAuthorization` and
//! kube-rbac-proxy ask it.
//!
//! 1. The bearer token is confirmed with a TokenReview (`authentication.k8s.io/v1`): no
//!    token, or one the API server does not accept, is 401 with `WWW-Authenticate: Bearer`.
//! 2. The user it names (with groups, uid and extra) is authorized with a
//!    SubjectAccessReview (`authorization.k8s.io/v1`): `get` on the non-resource URL
//!    `/metrics`, or, for `/cache/{resource}`, `list` on that resource (in the namespace
//!    asked for, else cluster-wide), so nobody reads through kubebridge what they could
//!    not list themselves. Denied is 403.
//! 3. A review that fails (API server unreachable, an error status, no answer within
//!    [`REVIEW_TIMEOUT`]) is 503: closed, never open.
//!
//! Results are cached ([`TtlCache`], keyed by the token's SHA-256, never the token):
//! a positive answer for the `--metrics-auth-cache-ttl`, a negative one (token not
//! accepted, access denied) for a tenth of it (controller-runtime's ratio: 5 min
//! allowed, 30 s denied), so a revoked permission is honoured soon while a flood of bad
//! tokens still does not become a flood of reviews; a failed review is never cached.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

use super::auth_cache::{DEFAULT_CAPACITY, TtlCache};
use crate::log_throttle::LogThrottle;
use crate::metrics::Metrics;

/// The longest a review may take before the request is answered 503. 5 s: half of
/// Prometheus' default scrape timeout (10 s), so a scraper gets a clear 503 rather than
/// its own timeout; controller-runtime allows 10 s.
pub(crate) const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// What a request asks to do, as a SubjectAccessReview names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    /// A non-resource URL (`/metrics`) with a verb (`get`).
    Path {
        /// The URL path.
        path: String,
        /// The verb.
        verb: &'static str,
    },
    /// A resource verb: `list` on `/cache/{resource}`.
    Resource {
        /// The verb.
        verb: &'static str,
        /// The API group ("" for the core group).
        group: String,
        /// The plural resource name.
        resource: String,
        /// The namespace asked for; `None` is every namespace (cluster-wide).
        namespace: Option<String>,
    },
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Path { path, verb } => write!(f, "{verb} path {path:?}"),
            Access::Resource {
                verb,
                group,
                resource,
                namespace,
            } => {
                let resource = if group.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}.{group}")
                };
                match namespace {
                    Some(ns) => write!(f, "{verb} {resource} in namespace {ns:?}"),
                    None => write!(f, "{verb} {resource} in all namespaces"),
                }
            }
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it.
    Allowed,
    /// 401: no usable bearer token, or one the API server did not accept; says which.
    Unauthenticated(&'static str),
    /// 403: the user may not; says who and what.
    Forbidden(String),
    /// 503: a review failed; the request is refused (the log says why).
    Unavailable(&'static str),
}

/// The user a token belongs to; `None` when the API server did not accept the token.
type Authenticated = Option<Arc<UserInfo>>;

/// Who asks what, as a decision's cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Question {
    user: String,
    uid: Option<String>,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
    access: Access,
}

/// Checks requests against the API server, with cached answers.
pub(crate) struct Authorizer {
    client: kube::Client,
    metrics: Metrics,
    ttl: Duration,
    tokens: TtlCache<[u8; 32], Authenticated>,
    decisions: TtlCache<Question, bool>,
    failures: Mutex<LogThrottle>,
}

/// A failed review, for the log only.
#[derive(Debug, thiserror::Error)]
enum ReviewError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("the answer had no status")]
    NoStatus,
}

impl Authorizer {
    /// Asks through `client` (kubebridge's own account, which needs `create` on
    /// tokenreviews and subjectaccessreviews); keeps positive answers for `ttl`.
    pub(crate) fn new(client: kube::Client, metrics: Metrics, ttl: Duration) -> Authorizer {
        Authorizer {
            client,
            metrics,
            ttl,
            tokens: TtlCache::new(DEFAULT_CAPACITY),
            decisions: TtlCache::new(DEFAULT_CAPACITY),
            failures: Mutex::new(LogThrottle::new(Duration::from_secs(10))),
        }
    }

    /// Decides whether the holder of `authorization` (the request's header) may `access`.
    pub(crate) async fn check(
        &self,
        authorization: Option<&HeaderValue>,
        access: &Access,
    ) -> Verdict {
        let verdict = self.decide(authorization, access).await;
        self.metrics.endpoint_auth(match verdict {
            Verdict::Allowed => "allowed",
            Verdict::Unauthenticated(_) => "unauthenticated",
            Verdict::Forbidden(_) => "forbidden",
            Verdict::Unavailable(_) => "error",
        });
        verdict
    }

    async fn decide(&self, authorization: Option<&HeaderValue>, access: &Access) -> Verdict {
        let Some(token) = bearer_token(authorization) else {
            return Verdict::Unauthenticated(
                "no bearer token: send the header Authorization: Bearer TOKEN",
            );
        };
        let user = match self.authenticate(token).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return Verdict::Unauthenticated("the API server did not accept the bearer token");
            }
            Err(e) => {
                self.log_failure("TokenReview", &e);
                return Verdict::Unavailable(
                    "authentication unavailable: kubebridge could not review the token with the API server (its log says why); retry later",
                );
            }
        };
        let name = user.username.clone().unwrap_or_default();
        match self.authorize(&user, access).await {
            Ok(true) => Verdict::Allowed,
            Ok(false) => Verdict::Forbidden(format!("user {name:?} may not {access}")),
            Err(e) => {
                self.log_failure("SubjectAccessReview", &e);
                Verdict::Unavailable(
                    "authorization unavailable: kubebridge could not review the access with the API server (its log says why); retry later",
                )
            }
        }
    }

    /// The user `token` belongs to, from the cache or a TokenReview.
    async fn authenticate(&self, token: &str) -> Result<Authenticated, ReviewError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.tokens.get(&key) {
            return Ok(known);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = within_timeout(api.create(&PostParams::default(), &review)).await?;
        let status = answer.status.ok_or(ReviewError::NoStatus)?;
        let user = status
            .user
            .filter(|_| status.authenticated == Some(true) && status.error.is_none())
            .map(Arc::new);
        let ttl = if user.is_some() {
            self.ttl
        } else {
            self.ttl / 10
        };
        self.tokens.insert(key, user.clone(), ttl);
        Ok(user)
    }

    /// Whether `user` may `access`, from the cache or a SubjectAccessReview.
    async fn authorize(&self, user: &UserInfo, access: &Access) -> Result<bool, ReviewError> {
        let question = Question {
            user: user.username.clone().unwrap_or_default(),
            uid: user.uid.clone(),
            groups: user.groups.clone().unwrap_or_default(),
            extra: user.extra.clone().unwrap_or_default(),
            access: access.clone(),
        };
        if let Some(known) = self.decisions.get(&question) {
            return Ok(known);
        }
        let review = SubjectAccessReview {
            spec: access_review_spec(&question),
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = within_timeout(api.create(&PostParams::default(), &review)).await?;
        let status = answer.status.ok_or(ReviewError::NoStatus)?;
        let allowed = status.allowed && status.denied != Some(true);
        let ttl = if allowed { self.ttl } else { self.ttl / 10 };
        self.decisions.insert(question, allowed, ttl);
        Ok(allowed)
    }

    fn log_failure(&self, review: &str, error: &ReviewError) {
        let mut log = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        warn_failed_review(&mut log, review, error);
    }
}

/// The spec of the SubjectAccessReview that asks `question`.
fn access_review_spec(question: &Question) -> SubjectAccessReviewSpec {
    let (non_resource_attributes, resource_attributes) = match &question.access {
        Access::Path { path, verb } => (
            Some(NonResourceAttributes {
                path: Some(path.clone()),
                verb: Some((*verb).to_owned()),
            }),
            None,
        ),
        Access::Resource {
            verb,
            group,
            resource,
            namespace,
        } => (
            None,
            Some(ResourceAttributes {
                verb: Some((*verb).to_owned()),
                group: Some(group.clone()),
                resource: Some(resource.clone()),
                namespace: namespace.clone(),
                ..ResourceAttributes::default()
            }),
        ),
    };
    SubjectAccessReviewSpec {
        user: Some(question.user.clone()),
        uid: question.uid.clone(),
        groups: Some(question.groups.clone()),
        extra: (!question.extra.is_empty()).then(|| question.extra.clone()),
        non_resource_attributes,
        resource_attributes,
    }
}

async fn within_timeout<T>(
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ReviewError> {
    match tokio::time::timeout(REVIEW_TIMEOUT, request).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(ReviewError::Timeout(REVIEW_TIMEOUT)),
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (scheme in any case, RFC 7235).
fn bearer_token(header: Option<&HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Logs a failed review, at most once per 10 s, so a scraper retrying against an API
/// server that is down cannot flood stderr.
fn warn_failed_review(throttle: &mut LogThrottle, review: &str, error: &ReviewError) {
    let Some(unlogged) = throttle.due() else {
        return;
    };
    tracing::warn!(
        error = %error,
        failures_since_last_log = unlogged,
        "metrics endpoint: a {review} failed, so the request was refused with 503; kubebridge's account needs create on tokenreviews.authentication.k8s.io and subjectaccessreviews.authorization.k8s.io (logged at most every 10 s)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    #[test]
    fn a_bearer_token_is_read_in_any_case_and_nothing_else_is() {
        let bearer = header("Bearer abc.def");
        assert_eq!(bearer_token(Some(&bearer)), Some("abc.def"));
        let lower = header("bearer  abc ");
        assert_eq!(bearer_token(Some(&lower)), Some("abc"));
        for wrong in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "abc"] {
            assert_eq!(bearer_token(Some(&header(wrong))), None, "{wrong}");
        }
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn the_review_asks_what_the_request_does() {
        let question = Question {
            user: "system:serviceaccount:monitoring:prometheus".into(),
            uid: Some("u1".into()),
            groups: vec!["system:serviceaccounts".into()],
            extra: BTreeMap::new(),
            access: Access::Resource {
                verb: "list",
                group: "apps".into(),
                resource: "deployments".into(),
                namespace: Some("shop".into()),
            },
        };
        let spec = serde_json::to_value(access_review_spec(&question)).unwrap_or_default();
        assert_eq!(
            spec,
            serde_json::json!({
                "user": "system:serviceaccount:monitoring:prometheus",
                "uid": "u1",
                "groups": ["system:serviceaccounts"],
                "resourceAttributes": {
                    "verb": "list", "group": "apps", "resource": "deployments", "namespace": "shop"
                }
            })
        );
        let metrics = Question {
            access: Access::Path {
                path: "/metrics".into(),
                verb: "get",
            },
            ..question
        };
        let spec = serde_json::to_value(access_review_spec(&metrics)).unwrap_or_default();
        assert_eq!(
            spec["nonResourceAttributes"],
            serde_json::json!({"path": "/metrics", "verb": "get"})
        );
        assert!(spec.get("resourceAttributes").is_none());
    }
}
