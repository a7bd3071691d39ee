//! The `Status` body the API server sends with a failure, built and read the same way everywhere.

use serde::Serialize;

pub use kube_core::Status;
use kube_core::response::StatusSummary;
pub use kube_core::response::{StatusCause, StatusDetails};

/// A `Failure` Status with an HTTP `code` (e.g. 404), a `reason` (e.g. `NotFound`) and
/// a human-readable `message`.
pub fn failure_status(code: u16, reason: &str, message: impl Into<String>) -> Status {
    Status {
        status: Some(StatusSummary::Failure),
        code,
        message: message.into(),
        metadata: Some(Default::default()),
        reason: reason.to_owned(),
        details: None,
    }
}

/// What is on the wire: the Status with its `kind` and `apiVersion`, which
/// [`kube_core::Status`] leaves out but clients such as kubectl read.
#[derive(Serialize)]
struct Wire<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    #[serde(flatten)]
    status: &'a Status,
}

/// The JSON body of `status` as the API server writes it (`"kind":"Status","apiVersion":"v1"`).
pub fn status_json(status: &Status) -> String {
    let wire = Wire {
        kind: "Status",
        api_version: "v1",
        status,
    };
    // A Status is strings, numbers and nested structs of them: serializing cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Reads a Status from an error response's body or a watch `ERROR` event's object;
/// a body that is not a Status gives an empty one (code 0, no message).
pub fn parse_status(body: &[u8]) -> Status {
    serde_json::from_slice(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_type_meta() {
        let mut status = failure_status(429, "TooManyRequests", "slow down");
        status.details = Some(StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: "pods".into(),
            uid: String::new(),
            causes: vec![],
            retry_after_seconds: 3,
        });
        let json = status_json(&status);
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["code"], 429);
        assert_eq!(v["reason"], "TooManyRequests");
        assert_eq!(v["message"], "slow down");
        assert_eq!(v["metadata"], serde_json::json!({}));
        assert_eq!(v["details"]["retryAfterSeconds"], 3);
        assert_eq!(parse_status(json.as_bytes()), status);
    }

    #[test]
    fn unreadable_bodies_give_an_empty_status() {
        let s = parse_status(b"404 page not found");
        assert_eq!((s.code, s.message.as_str()), (0, ""));
    }
}
