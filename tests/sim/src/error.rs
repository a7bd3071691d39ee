//! API errors and the metav1.Status bodies that carry them.

use kubebridge_apimachinery::{Status, StatusCause, StatusDetails, failure_status, status_json};

/// An API failure as a Status body would describe it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct SimError {
    /// HTTP status code, e.g. 404.
    pub code: u16,
    /// Status reason, e.g. "NotFound".
    pub reason: String,
    /// Human-readable message, worded like the real apiserver's.
    pub message: String,
}

/// A failure as the HTTP layer sends it: the `Status` body (boxed: errors travel through
/// every handler's `Result`, and a Status is large), and the Retry-After header.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: Box<Status>,
    pub(crate) retry_after: Option<u32>,
}

impl From<ApiError> for SimError {
    fn from(e: ApiError) -> Self {
        let status = *e.status;
        SimError {
            code: status.code,
            reason: status.reason,
            message: status.message,
        }
    }
}

/// Status details naming the object (or only the resource, with an empty `name`).
fn details(name: &str, group: &str, kind: &str) -> StatusDetails {
    StatusDetails {
        name: name.to_owned(),
        group: group.to_owned(),
        kind: kind.to_owned(),
        uid: String::new(),
        causes: Vec::new(),
        retry_after_seconds: 0,
    }
}

impl ApiError {
    /// An error with no details.
    pub(crate) fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: Box::new(failure_status(code, reason, message)),
            retry_after: None,
        }
    }

    /// The HTTP status code.
    pub(crate) fn code(&self) -> u16 {
        self.status.code
    }

    /// Attaches Status details naming the object (`name` may be empty) and its resource.
    pub(crate) fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        self.status.details = Some(details(name, group, kind));
        self
    }

    /// 400 BadRequest.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 NotFound for a named object, worded `pods "x" not found`.
    pub(crate) fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{plural}{} \"{name}\" not found", group_suffix(group)),
        )
        .with_details(name, group, plural)
    }

    /// 404 for a path the server does not serve; the real server answers these with a bare "404 page not found".
    pub(crate) fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 405 for a verb a resource does not support.
    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 409 AlreadyExists.
    pub(crate) fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{plural}{} \"{name}\" already exists", group_suffix(group)),
        )
        .with_details(name, group, plural)
    }

    /// 409 Conflict on a stale resourceVersion (optimistic concurrency).
    pub(crate) fn conflict(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {plural}{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                group_suffix(group)
            ),
        )
        .with_details(name, group, plural)
    }

    /// 410 Expired (too old resourceVersion or continue token).
    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 422 Invalid with field causes, worded `Pod "x" is invalid: metadata.name: Required value: ...`.
    pub(crate) fn invalid(
        group: &str,
        kind: &str,
        name: &str,
        causes: &[(&str, &str, String)],
    ) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|(field, _, msg)| format!("{field}: {msg}"))
            .collect();
        let summary = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let causes = causes
            .iter()
            .map(|(field, reason, msg)| StatusCause {
                reason: (*reason).to_owned(),
                message: msg.clone(),
                field: (*field).to_owned(),
            })
            .collect();
        let mut error = Self::new(
            422,
            "Invalid",
            format!(
                "{kind}{} \"{name}\" is invalid: {summary}",
                group_suffix(group)
            ),
        )
        .with_details(name, group, kind);
        if let Some(d) = &mut error.status.details {
            d.causes = causes;
        }
        error
    }

    /// 500 InternalError.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// The metav1.Status body for this error; a Retry-After is repeated in its details.
    pub(crate) fn status_body(&self) -> String {
        let mut status = (*self.status).clone();
        if let Some(secs) = self.retry_after {
            status
                .details
                .get_or_insert_with(|| details("", "", ""))
                .retry_after_seconds = secs;
        }
        status_json(&status)
    }
}

/// Kubernetes qualifies resource names with their group in messages: `deployments.apps "x" not found`.
fn group_suffix(group: &str) -> String {
    if group.is_empty() {
        String::new()
    } else {
        format!(".{group}")
    }
}
