//! The election against a fake lease API behind kube's Client, with kube's own retry
//! layer in the stack as in production, and paused time: requests can be made to hang or
//! to fail, and the test checks when leadership is had, lost and handed over.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;

/// How the fake API server answers lease requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// As the API server does.
    None,
    /// Never answers.
    Hang,
    /// Answers this status (with no `Retry-After`).
    Status(u16),
}

/// One namespace's leases, kept as the API server keeps them: writes conditional on the
/// resourceVersion.
struct LeaseApi {
    lease: Mutex<Option<Lease>>,
    version: Mutex<u64>,
    fault: Mutex<Fault>,
    requests: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LeaseApi {
    fn new() -> Arc<LeaseApi> {
        Arc::new(LeaseApi {
            lease: Mutex::new(None),
            version: Mutex::new(0),
            fault: Mutex::new(Fault::None),
            requests: Mutex::default(),
        })
    }

    fn set_fault(&self, fault: Fault) {
        *lock(&self.fault) = fault;
    }

    fn requests(&self) -> Vec<String> {
        lock(&self.requests).clone()
    }

    fn holder(&self) -> Option<String> {
        lock(&self.lease)
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.clone())
    }

    fn spec(&self) -> Option<LeaseSpec> {
        lock(&self.lease).as_ref().and_then(|l| l.spec.clone())
    }

    /// Stores `lease` when `expected` (its resourceVersion) is the stored one.
    fn store(&self, mut lease: Lease, create: bool) -> (u16, String) {
        let mut stored = lock(&self.lease);
        let current = stored
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone());
        match (create, &current) {
            (true, Some(_)) => return (409, status(409, "AlreadyExists")),
            (false, None) => return (404, status(404, "NotFound")),
            (false, Some(rv)) if lease.metadata.resource_version.as_ref() != Some(rv) => {
                return (409, status(409, "Conflict"));
            }
            _ => {}
        }
        let mut version = lock(&self.version);
        *version += 1;
        lease.metadata.resource_version = Some(version.to_string());
        let body = serde_json::to_string(&lease).expect("encodes");
        *stored = Some(lease);
        (if create { 201 } else { 200 }, body)
    }

    async fn answer(
        &self,
        request: http::Request<kube::client::Body>,
    ) -> http::Response<Full<Bytes>> {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        lock(&self.requests).push(format!("{method} {path}"));
        let fault = *lock(&self.fault);
        let (code, body) = match fault {
            Fault::Hang => std::future::pending().await,
            Fault::Status(code) => (code, status(code, "ServiceUnavailable")),
            Fault::None => {
                let body = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .unwrap_or_default();
                let collection = Lease::url_path(&(), Some("default"));
                let named = format!("{collection}/kubebridge");
                match (method.as_str(), path.as_str()) {
                    ("GET", p) if p == named => match lock(&self.lease).as_ref() {
                        Some(lease) => (200, serde_json::to_string(lease).expect("encodes")),
                        None => (404, status(404, "NotFound")),
                    },
                    ("POST", p) if p == collection => {
                        self.store(serde_json::from_slice(&body).expect("a lease"), true)
                    }
                    ("PUT", p) if p == named => {
                        self.store(serde_json::from_slice(&body).expect("a lease"), false)
                    }
                    _ => (404, status(404, "NotFound")),
                }
            }
        };
        http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    }

    /// A client over this API with kube's own retry layer, as `Client::try_from` builds it.
    fn client(self: &Arc<Self>) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.answer(request).await) }
        });
        let service = tower::ServiceBuilder::new()
            .layer(tower::retry::RetryLayer::new(
                kube::client::retry::RetryPolicy::server_retry(),
            ))
            .service(tower::util::MapErr::new(
                service,
                |e: Infallible| -> tower::BoxError { match e {} },
            ));
        kube::Client::new(service, "default")
    }
}

fn status(code: u16, reason: &str) -> String {
    format!(
        r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","code":{code},"reason":"{reason}","message":"{reason}"}}"#
    )
}

fn config_for(identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: "default".into(),
        name: "kubebridge".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

fn config() -> LeaseConfig {
    config_for("me")
}

/// An elector for `identity` that already holds the lease (acquired at the instant returned).
async fn leader(api: &Arc<LeaseApi>, identity: &str) -> (Elector, Instant) {
    let mut elector = Elector::new(api.client(), config_for(identity), Metrics::new());
    let at = Instant::now();
    let acquired = elector
        .acquire(&CancellationToken::new())
        .await
        .expect("acquires");
    assert!(acquired);
    assert_eq!(api.holder().as_deref(), Some(identity));
    (elector, at)
}

fn is_lost(error: &LeaderError) -> bool {
    matches!(error, LeaderError::Lost { .. })
}

#[tokio::test(start_paused = true)]
async fn a_leader_with_a_healthy_api_server_keeps_leading() {
    let api = LeaseApi::new();
    let (elector, _) = leader(&api, "me").await;
    let mut leadership = elector.lead();
    let lost = tokio::time::timeout(Duration::from_secs(120), leadership.lost()).await;
    assert!(lost.is_err(), "lost a healthy lease: {lost:?}");
    assert_eq!(api.holder().as_deref(), Some("me"));
    // One attempt (a GET and a PUT) per retry period.
    let sent = api.requests().len();
    assert!((100..=130).contains(&sent), "{sent} requests in 120s");
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_lease_requests_hang_steps_down_within_the_renew_deadline() {
    let api = LeaseApi::new();
    let (elector, acquired) = leader(&api, "me").await;
    api.set_fault(Fault::Hang);
    let config = config();
    let mut leadership = elector.lead();
    let bound = config.renew_deadline + config.retry_period;
    let lost = tokio::time::timeout(bound, leadership.lost()).await;
    assert!(
        lost.as_ref().is_ok_and(is_lost),
        "still leading {bound:?} after the last renewal: {lost:?}"
    );
    // By the clock: at the deadline, not at the end of the request in flight.
    assert!(acquired.elapsed() <= config.renew_deadline);
    let message = lost.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("lost the leader lease default/kubebridge")
            && message.contains("no answer within the retry period"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_lease_requests_fail_steps_down_within_the_renew_deadline() {
    let api = LeaseApi::new();
    let (elector, acquired) = leader(&api, "me").await;
    api.set_fault(Fault::Status(503));
    let config = config();
    let mut leadership = elector.lead();
    // A moment past the deadline, for the test to hear what happened at it.
    let heard = config.renew_deadline + Duration::from_millis(1);
    let lost = tokio::time::timeout(heard, leadership.lost()).await;
    assert!(
        lost.as_ref().is_ok_and(is_lost),
        "still leading {:?} after the last renewal: {lost:?}",
        config.renew_deadline
    );
    assert!(acquired.elapsed() <= config.renew_deadline);
}

#[tokio::test(start_paused = true)]
async fn a_leader_rides_out_failures_shorter_than_the_renew_deadline() {
    let api = LeaseApi::new();
    let metrics = Metrics::new();
    let mut elector = Elector::new(api.client(), config(), metrics.clone());
    assert!(matches!(
        elector.acquire(&CancellationToken::new()).await,
        Ok(true)
    ));
    assert!(metrics.render().contains("kubebridge_lease_held 1"));
    let mut leadership = elector.lead();
    api.set_fault(Fault::Status(503));
    // Failing for 4 s of the 10 s renew deadline: failures plainly shorter than the
    // deadline, with room for an attempt caught in kube's retry backoff (bounded by the
    // 2 s retry period) and the next one before the deadline.
    let early = tokio::time::timeout(Duration::from_secs(4), leadership.lost()).await;
    assert!(
        early.is_err(),
        "stepped down before the deadline: {early:?}"
    );
    api.set_fault(Fault::None);
    let later = tokio::time::timeout(Duration::from_secs(60), leadership.lost()).await;
    assert!(later.is_err(), "stepped down after recovering: {later:?}");
    let text = metrics.render();
    assert!(text.contains("kubebridge_lease_held 1"), "{text}");
    assert!(
        text.contains(r#"kubebridge_lease_attempt_failures_total{reason="error"}"#)
            || text.contains(r#"kubebridge_lease_attempt_failures_total{reason="timeout"}"#),
        "{text}"
    );
    leadership.release().await;
    assert!(metrics.render().contains("kubebridge_lease_held 0"));
}

#[tokio::test(start_paused = true)]
async fn a_leader_steps_down_at_once_when_another_holds_the_lease() {
    let api = LeaseApi::new();
    let (elector, _) = leader(&api, "me").await;
    let mut leadership = elector.lead();
    // Someone (an operator, a second instance after a network partition) takes it.
    {
        let mut stored = lock(&api.lease);
        let spec = stored.as_mut().and_then(|l| l.spec.as_mut()).expect("held");
        spec.holder_identity = Some("other".into());
    }
    // At its next attempt.
    let lost = tokio::time::timeout(config().retry_period * 2, leadership.lost()).await;
    let message = lost.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("other holds it now"), "{message:?}");
}

#[tokio::test(start_paused = true)]
async fn a_renewal_task_that_panics_is_lost_leadership() {
    let task = tokio::spawn(async {
        tokio::task::yield_now().await;
        panic!("renewal bug");
    });
    let mut leadership = Leadership::from_task("default/kubebridge", task);
    let lost = leadership.lost().await;
    assert!(is_lost(&lost), "{lost:?}");
    let message = lost.to_string();
    assert!(
        message.contains("lost the leader lease default/kubebridge")
            && message.contains("panicked: renewal bug"),
        "{message}"
    );
    // Asked again, it says the same at once rather than waiting forever.
    assert!(is_lost(&leadership.lost().await));
}

#[tokio::test(start_paused = true)]
async fn a_renewal_task_that_ends_without_an_error_is_lost_leadership() {
    let mut leadership =
        Leadership::from_task("default/kubebridge", tokio::spawn(async { Ok(()) }));
    assert!(is_lost(&leadership.lost().await));
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_by_a_standby_within_one_retry_period() {
    let api = LeaseApi::new();
    let (elector, _) = leader(&api, "first").await;
    let mut standby = Elector::new(api.client(), config_for("second"), Metrics::new());
    let stop_standby = CancellationToken::new();
    let leadership = elector.lead();
    // The standby sees the lease held and waits.
    let waiting =
        tokio::time::timeout(Duration::from_secs(3), standby.acquire(&stop_standby)).await;
    assert!(waiting.is_err(), "the standby took a held lease");
    leadership.release().await;
    let released = Instant::now();
    // As client-go leaves it: no holder, a duration of 1 s, the transitions kept.
    let spec = api.spec().expect("the lease");
    assert_eq!(spec.holder_identity.as_deref(), Some(""));
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, Some(0));
    let took = tokio::time::timeout(config().retry_period, standby.acquire(&stop_standby)).await;
    assert!(
        matches!(took, Ok(Ok(true))),
        "the standby did not take over within one retry period of the release: {took:?}"
    );
    assert!(released.elapsed() <= config().retry_period);
    assert_eq!(api.holder().as_deref(), Some("second"));
    assert_eq!(api.spec().and_then(|s| s.lease_transitions), Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_release_never_overwrites_another_holder() {
    let api = LeaseApi::new();
    let (elector, _) = leader(&api, "first").await;
    let leadership = elector.lead();
    // Another write lands after this process's last one: the release must conflict.
    {
        let mut stored = lock(&api.lease);
        let lease = stored.as_mut().expect("held");
        lease.metadata.resource_version = Some("999".into());
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = Some("second".into());
        }
    }
    leadership.release().await;
    assert_eq!(api.holder().as_deref(), Some("second"));
}

#[test]
fn a_lease_config_is_checked_before_anything_is_sent() {
    assert_eq!(config().validate(), Ok(()));
    // The namespace is filled in at start when no flag gives it.
    let unset = LeaseConfig {
        namespace: String::new(),
        ..config()
    };
    assert_eq!(unset.validate(), Ok(()));
    for bad in [
        "Default",
        "kube_system",
        "-shop",
        "shop-",
        "a/b",
        &"n".repeat(64),
    ] {
        let config = LeaseConfig {
            namespace: bad.to_owned(),
            ..config()
        };
        let error = config.validate().expect_err(bad);
        assert!(
            error.starts_with("--leader-elect-namespace")
                && error.contains(&format!("{bad:?}"))
                && error.contains("DNS-1123 label")
                && !error.contains('\n'),
            "{error}"
        );
    }
    for good in ["kubebridge", "kubebridge.example.com", "a-1.b-2"] {
        let config = LeaseConfig {
            name: good.to_owned(),
            ..config()
        };
        assert_eq!(config.validate(), Ok(()), "{good}");
    }
    for bad in [
        "",
        "KubeBridge",
        "kube bridge",
        "a..b",
        ".a",
        "a.",
        "a_b",
        &"n".repeat(254),
    ] {
        let config = LeaseConfig {
            name: bad.to_owned(),
            ..config()
        };
        let error = config.validate().expect_err(bad);
        assert!(
            error.starts_with("--leader-elect-name") && error.contains("DNS-1123 subdomain"),
            "{error}"
        );
    }
    let nobody = LeaseConfig {
        identity: " ".into(),
        ..config()
    };
    assert!(nobody.validate().is_err());
    let late = LeaseConfig {
        renew_deadline: Duration::from_secs(20),
        ..config()
    };
    assert!(late.validate().is_err());
}

/// kube's retry layer, on by default, re-sends a 503'd request many times within what
/// the election counts as one attempt; [`lease_client`] turns it off.
#[tokio::test]
async fn the_lease_client_sends_one_request_per_attempt() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let served = Arc::new(Mutex::new(0usize));
    let counting = served.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counting = counting.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        *lock(&counting) += 1;
                        let answer = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let config = kube::Config::new(url.parse().expect("a URL"));
    let path = Url::new(Lease::url_path(&(), Some("default")) + "/kubebridge");

    let client = lease_client(config.clone()).expect("a client");
    let answer = api::get_json::<Lease>(&client, path.clone()).await;
    assert_eq!(answer.map_err(|e| e.code()).err(), Some(Some(503)));
    assert_eq!(*lock(&served), 1, "one attempt, one request");

    // kube's default client, for comparison: several requests for one call.
    *lock(&served) = 0;
    let retrying = kube::Client::try_from(config).expect("a client");
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        api::get_json::<Lease>(&retrying, path),
    )
    .await;
    assert!(*lock(&served) > 1, "kube's retry layer is on by default");
    server.abort();
}

fn at(seconds: i64) -> Option<MicroTime> {
    Timestamp::from_second(seconds).ok().map(MicroTime)
}

#[test]
fn a_renewal_keeps_the_acquire_time_and_the_transition_count() {
    let mine = LeaseSpec {
        holder_identity: Some("me".into()),
        acquire_time: at(1_000),
        renew_time: at(1_010),
        lease_transitions: Some(3),
        preferred_holder: Some("me".into()),
        ..LeaseSpec::default()
    };
    let renewed = held_spec(&config(), mine, true);
    assert_eq!(renewed.acquire_time, at(1_000));
    assert_eq!(renewed.lease_transitions, Some(3));
    assert_eq!(renewed.lease_duration_seconds, Some(15));
    assert_eq!(renewed.preferred_holder.as_deref(), Some("me"));
    assert!(renewed.renew_time > at(1_010));
}

#[test]
fn a_takeover_counts_a_transition_and_acquires_now() {
    let theirs = LeaseSpec {
        holder_identity: Some("other".into()),
        acquire_time: at(1_000),
        renew_time: at(1_010),
        lease_transitions: Some(3),
        ..LeaseSpec::default()
    };
    let taken = held_spec(&config(), theirs, false);
    assert_eq!(taken.holder_identity.as_deref(), Some("me"));
    assert_eq!(taken.lease_transitions, Some(4));
    assert_eq!(taken.acquire_time, taken.renew_time);
}

#[test]
fn the_lease_is_encoded_as_the_api_expects() {
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("kubebridge".into()),
            namespace: Some("default".into()),
            resource_version: Some("42".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            renew_time: at(0),
            ..LeaseSpec::default()
        }),
    };
    let body = serde_json::to_value(&lease).expect("encodes");
    assert_eq!(body["apiVersion"], "coordination.k8s.io/v1");
    assert_eq!(body["kind"], "Lease");
    assert_eq!(body["metadata"]["resourceVersion"], "42");
    assert_eq!(body["spec"]["renewTime"], "1970-01-01T00:00:00.000000Z");
    assert_eq!(
        Lease::url_path(&(), Some("default")),
        "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    );
}
