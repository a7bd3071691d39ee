//! Notifications for the sink tests to publish directly, and a retry loop like
//! kubebridge's for publishing them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kubebridge_sink_api::{EventType, Notification, Origin, PublishError, ResourceId, Sink};
use serde_json::value::RawValue;

/// A name unique to this test run, for topics, subjects and streams.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// A configmap notification (cluster-scoped `namespace: None` makes it look like a
/// namespace object).
pub fn note(
    namespace: Option<&str>,
    name: &str,
    uid: &str,
    rv: u64,
    event_type: EventType,
) -> Arc<Notification> {
    let object = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","uid":"{uid}","resourceVersion":"{rv}"}},"data":{{"n":"{rv}"}}}}"#
    );
    Arc::new(Notification {
        event_type,
        origin: Origin::Watch,
        time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + rv),
        cluster: Some("test-cluster".into()),
        resource: Arc::new(ResourceId {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            kind: "ConfigMap".into(),
        }),
        namespace: namespace.map(String::from),
        name: name.into(),
        uid: uid.into(),
        resource_version: rv.to_string(),
        object: Arc::from(RawValue::from_string(object).expect("valid json")),
        old_object: None,
        snapshot: None,
        tombstone: false,
        old_resource_version: None,
        patch: None,
    })
}

/// `count` modifications of each of `objects` objects, interleaved as a watch would
/// deliver them, resourceVersions increasing.
pub fn interleaved(objects: usize, count: usize, first_rv: u64) -> Vec<Arc<Notification>> {
    let mut out = Vec::new();
    let mut rv = first_rv;
    for _ in 0..count {
        for o in 0..objects {
            out.push(note(
                Some("ns"),
                &format!("obj-{o}"),
                &format!("uid-{o}"),
                rv,
                EventType::Modified,
            ));
            rv += 1;
        }
    }
    out
}

/// Publishes `batch` the way kubebridge does: on a retryable error, waits and retries
/// from the first unconfirmed notification, until all are confirmed or `limit` passes.
/// Returns the errors seen on the way; panics on a non-retryable one or on timeout.
pub async fn publish_until_done(
    sink: &mut dyn Sink,
    batch: &[Arc<Notification>],
    limit: Duration,
) -> Vec<PublishError> {
    let deadline = Instant::now() + limit;
    let mut start = 0;
    let mut errors = Vec::new();
    while start < batch.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not delivered within {limit:?}: {errors:?}"
        );
        match tokio::time::timeout(left, sink.publish(&batch[start..])).await {
            Ok(Ok(())) => start = batch.len(),
            Ok(Err(e)) => {
                assert!(e.error.is_retryable(), "non-retryable error: {e}");
                start += e.delivered;
                errors.push(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => panic!("publish did not return within {limit:?}"),
        }
    }
    errors
}
