//! What an operator sees: /metrics, /healthz and /readyz of the running binary,
//! checked against traffic the test itself causes.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use kubebridge_sim::Failure;
use kubebridge_testkit::brokers::{PrivateNats, free_port};
use kubebridge_testkit::harness::{Harness, Running, WAIT, brief, wait_until};
use kubebridge_testkit::http::{get_text as get, sample};
use serde_json::json;

async fn scrape(port: u16) -> String {
    get(port, "/metrics").await.expect("metrics answer").1
}

/// Waits until the scraped series satisfies `ok`, returning the last value.
async fn wait_for_sample(port: u16, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = sample(&scrape(port).await, series)
            && ok(v)
        {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never got there:\n{}",
            scrape(port).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_when_the_informers_have_synced() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    // A slow API server keeps the first LIST in flight for a while.
    h.sim.faults().set_delay(Duration::from_millis(1500));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut kb = h.spawn(&["pods", "-n", "shop", "--metrics-addr", &addr]);
    let mut first = None;
    while first.is_none() {
        first = get(port, "/readyz").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, body) = first.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not synced yet: pods@shop"), "{body}");
    assert_eq!(
        get(port, "/healthz").await.unwrap().0,
        200,
        "alive while not ready"
    );
    h.sim.faults().set_delay(Duration::ZERO);
    kb.next().await;
    wait_until_ready(port).await;
    let metrics = scrape(port).await;
    assert_eq!(
        sample(
            &metrics,
            r#"kubebridge_informer_synced{resource="pods@shop"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"kubebridge_cache_objects{resource="pods@shop"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"kubebridge_notifications_total{origin="list",resource="pods@shop",type="ADDED"}"#
        ),
        Some(1.0)
    );
    assert!(
        metrics.contains("kubebridge_build_info{version=\"0.1.0\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("process_resident_memory_bytes"),
        "process metrics are exported"
    );
    kb.terminate().await;
}

async fn wait_until_ready(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while get(port, "/readyz").await.map(|(c, _)| c) != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {:?}",
            get(port, "/readyz").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_rises_while_a_sink_is_blocked_and_falls_after() {
    let Some(nats) = PrivateNats::start().await else {
        return;
    };
    let broker = &nats.broker;

    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "p", json!({}));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let sink = nats.jetstream_sink("KB_OPS");
    let kb = Running::spawn(h.watch(&[
        "pods",
        "-n",
        "shop",
        "--sink",
        &sink,
        "--metrics-addr",
        &addr,
    ]));
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    wait_for_sample(
        port,
        r#"kubebridge_sink_sent_total{sink="jetstream"}"#,
        |v| v >= 1.0,
    )
    .await;
    assert_eq!(
        sample(
            &scrape(port).await,
            r#"kubebridge_queue_depth{sink="jetstream"}"#
        ),
        Some(0.0)
    );

    broker.signal("STOP");
    // The first change is taken into a batch that waits for its ack; the rest queue.
    for i in 0..20 {
        h.sim
            .patch(
                "pods",
                Some("shop"),
                "p",
                json!({"metadata": {"labels": {"i": i.to_string()}}}),
            )
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let depth = wait_for_sample(port, r#"kubebridge_queue_depth{sink="jetstream"}"#, |v| {
        v >= 10.0
    })
    .await;
    assert!(depth <= 20.0, "{depth}");
    let age = wait_for_sample(
        port,
        r#"kubebridge_sink_oldest_unconfirmed_age_seconds{sink="jetstream"}"#,
        |v| v > 0.5,
    )
    .await;
    assert!(age < 60.0, "{age}");
    broker.signal("CONT");
    wait_for_sample(port, r#"kubebridge_queue_depth{sink="jetstream"}"#, |v| {
        v == 0.0
    })
    .await;
    wait_for_sample(
        port,
        r#"kubebridge_sink_sent_total{sink="jetstream"}"#,
        |v| v >= 21.0,
    )
    .await;
    let (code, stderr) = kb.terminate().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_410_moves_the_relist_counter() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut kb = h.spawn(&["pods", "-n", "shop", "--metrics-addr", &addr]);
    kb.next().await;
    wait_until(|| h.sim.requests("watch", "pods") >= 1).await;
    let relists = r#"kubebridge_relists_total{reason="expired",resource="pods@shop"}"#;
    assert_eq!(sample(&scrape(port).await, relists), None, "no relist yet");

    h.sim.faults().fail_next(1, Failure::InternalError);
    h.sim.faults().drop_watches();
    h.sim.delete("pods", Some("shop"), "a").unwrap();
    h.sim.faults().compact();
    assert_eq!(brief(&kb.next().await), "DELETED relist shop/a");
    assert_eq!(sample(&scrape(port).await, relists), Some(1.0));
    let metrics = scrape(port).await;
    assert!(
        sample(
            &metrics,
            r#"kubebridge_watch_restarts_total{reason="closed",resource="pods@shop"}"#
        )
        .is_some()
            || sample(
                &metrics,
                r#"kubebridge_watch_restarts_total{reason="error",resource="pods@shop"}"#
            )
            .is_some(),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"kubebridge_cache_objects{resource="pods@shop"}"#
        ),
        Some(0.0)
    );
    kb.terminate().await;
}

#[tokio::test]
async fn a_metrics_port_in_use_is_a_usage_error() {
    let h = Harness::empty().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, stderr) = kubebridge_testkit::harness::run_to_end(h.watch(&[
        "pods",
        "-n",
        "shop",
        "--metrics-addr",
        &addr,
    ]))
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--metrics-addr") && stderr.contains("cannot listen"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_lister_answers_without_asking_the_api_server() {
    let h = Harness::empty().await;
    for ns in ["shop", "other"] {
        h.create_namespace(ns);
        h.create_pod(ns, "web", json!({"app": "web"}));
        h.create_pod(ns, "db", json!({"app": "db"}));
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut kb = h.spawn(&["pods", "-A", "--metrics-addr", &addr, "--serve-cache"]);
    kb.take(4).await;
    wait_until_ready(port).await;
    let before = h.sim.request_counts();

    let (code, body) = get(port, "/cache/pods?namespace=shop&labelSelector=app%3Dweb")
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["metadata"]["name"], "web");
    assert_eq!(items[0]["metadata"]["namespace"], "shop");
    assert_eq!(items[0]["kind"], "Pod");

    let (_, body) = get(port, "/cache/pods").await.unwrap();
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["other/db", "other/web", "shop/db", "shop/web"]);

    // A change reaches the cache; the lister shows it.
    h.sim.delete("pods", Some("other"), "db").unwrap();
    kb.next().await;
    let (_, body) = get(port, "/cache/pods?namespace=other").await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (code, body) = get(port, "/cache/secrets").await.unwrap();
    assert_eq!(code, 404);
    assert!(
        body.contains("no cache for \\\"secrets\\\"") && body.contains("pods"),
        "{body}"
    );
    let (code, _) = get(port, "/cache/pods?labelSelector=app%20in%20(")
        .await
        .unwrap();
    assert_eq!(code, 400);

    // Only the DELETE above reached the API server; the lister never did.
    let mut after = h.sim.request_counts();
    for ((verb, resource), n) in &before {
        if let Some(m) = after.get_mut(&(verb.clone(), resource.clone())) {
            *m -= n;
        }
    }
    after.retain(|_, n| *n > 0);
    assert!(
        after.is_empty(),
        "no API request while listing from the cache: {after:?}"
    );
    kb.terminate().await;
}

/// Collects what a child writes to stderr, draining it so the child never blocks.
fn collect_stderr(
    stderr: tokio::process::ChildStderr,
) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let text = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collected = text.clone();
    tokio::spawn(async move {
        let mut stderr = stderr;
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            collected.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    text
}

/// `prlimit --pid PID --nofile=SOFT:HARD`; false when prlimit is not installed.
fn set_nofile(pid: u32, soft: &str, hard: &str) -> bool {
    std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={soft}:{hard}"))
        .status()
        .is_ok_and(|s| s.success())
}

/// Out of file descriptors (EMFILE), the accept loop backs off and logs a few lines
/// instead of spinning (today: 1.9 GB of warnings in 10 s); once descriptors are free
/// again, /healthz answers the connection that waited in the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_back_off_and_healthz_answers_afterwards() {
    let h = Harness::empty().await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = h
        .watch(&["pods", "-A", "--metrics-addr", &addr])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = collect_stderr(child.stderr.take().unwrap());
    wait_until_ready(port).await;
    let pid = child.id().unwrap();
    let hard = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .unwrap();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    if std::env::var("KUBEBRIDGE_SKIP_PRLIMIT").as_deref() == Ok("1") {
        eprintln!("KUBEBRIDGE_SKIP_PRLIMIT=1: skipping");
        return;
    }
    assert!(
        set_nofile(pid, &open.to_string(), &hard),
        "prlimit (util-linux) failed; install it or set KUBEBRIDGE_SKIP_PRLIMIT=1"
    );
    let before = stderr.lock().unwrap().len();
    // Connections completed by the kernel into the backlog: the first few may take the
    // descriptors kubebridge closed since they were counted; after those, every accept
    // fails with EMFILE.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    let waiting = tokio::spawn(async move { get(port, "/healthz").await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let logged = String::from_utf8_lossy(&stderr.lock().unwrap()[before..]).into_owned();
    assert!(set_nofile(pid, &hard, &hard));
    drop(idle);
    let lines = logged.matches("accept failed").count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} lines about failed accepts in 2 s ({} bytes of stderr): {}",
        logged.len(),
        &logged[..logged.len().min(2000)]
    );
    let answer = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(answer.map(|a| a.0), Some(200));
    assert_eq!(get(port, "/healthz").await.map(|a| a.0), Some(200));
    let failed = sample(
        &scrape(port).await,
        "kubebridge_endpoint_accept_errors_total",
    );
    assert!(failed.is_some_and(|n| n >= 1.0), "{failed:?}");
}

/// Short lease timings so the tests take seconds, in client-go's proportions.
fn lease_args(identity: &'static str) -> Vec<&'static str> {
    vec![
        "--leader-elect",
        "--leader-elect-namespace",
        "default",
        "--leader-elect-identity",
        identity,
        "--leader-elect-lease-duration",
        "3s",
        "--leader-elect-renew-deadline",
        "2s",
        "--leader-elect-retry-period",
        "300ms",
    ]
}

fn lease_holder(h: &Harness) -> String {
    let lease = h
        .sim
        .get("leases.coordination.k8s.io", Some("default"), "kubebridge")
        .unwrap();
    lease["spec"]["holderIdentity"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_leads_and_a_standby_takes_over_when_it_dies() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    let mut args = vec!["pods", "-n", "shop"];
    args.extend(lease_args("first"));
    let mut first = h.spawn(&args);
    assert_eq!(brief(&first.next().await), "ADDED list shop/a");
    assert_eq!(lease_holder(&h), "first");

    let mut args = vec!["pods", "-n", "shop"];
    args.extend(lease_args("second"));
    let mut second = h.spawn(&args);
    h.create_pod("shop", "b", json!({}));
    assert_eq!(brief(&first.next().await), "ADDED watch shop/b");
    // The standby publishes nothing while the leader renews (several lease durations).
    second.expect_silence(Duration::from_secs(4)).await;
    assert_eq!(lease_holder(&h), "first");

    // The leader crashes; within the lease duration the standby leads and starts over.
    first.child.kill().await.unwrap();
    let took_over = second.take(2).await;
    assert_eq!(
        took_over.iter().map(brief).collect::<Vec<_>>(),
        ["ADDED list shop/a", "ADDED list shop/b"]
    );
    assert_eq!(lease_holder(&h), "second");
    let (code, stderr) = second.terminate().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_at_once() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    let mut args = vec!["pods", "-n", "shop"];
    args.extend(lease_args("only"));
    let mut kb = h.spawn(&args);
    kb.next().await;
    h.sim
        .faults()
        .forbid("leases.coordination.k8s.io", "update");
    let (code, stderr) = kb.wait().await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("lost the leader lease default/kubebridge"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_cleanly_hands_over_without_waiting_out_the_lease() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "a", json!({}));
    // A lease far longer than the test waits: only a released lease lets the standby in.
    let long_lease = |identity: &'static str| {
        let mut args = vec!["pods", "-n", "shop"];
        args.extend(lease_args(identity));
        let at = |flag: &str, args: &[&str]| args.iter().position(|a| *a == flag).unwrap() + 1;
        let (lease, renew) = (
            at("--leader-elect-lease-duration", &args),
            at("--leader-elect-renew-deadline", &args),
        );
        args[lease] = "60s";
        args[renew] = "40s";
        args
    };
    let mut first = h.spawn(&long_lease("first"));
    assert_eq!(brief(&first.next().await), "ADDED list shop/a");
    let mut second = h.spawn(&long_lease("second"));
    second.expect_silence(Duration::from_secs(2)).await;
    assert_eq!(lease_holder(&h), "first");

    let (code, stderr) = first.terminate().await;
    assert_eq!(code, 0, "{stderr}");
    let took_over = tokio::time::timeout(Duration::from_secs(15), second.next())
        .await
        .expect("the standby leads within seconds of a release, not after the 60s lease");
    assert_eq!(brief(&took_over), "ADDED list shop/a");
    assert_eq!(lease_holder(&h), "second");
    second.terminate().await;
}

#[tokio::test]
async fn an_invalid_lease_namespace_is_a_usage_error() {
    let h = Harness::empty().await;
    let mut args = vec!["pods", "-n", "shop"];
    args.extend(lease_args("only"));
    let at = args.iter().position(|a| *a == "default").unwrap();
    args[at] = "Not_A_Namespace";
    let (code, stderr) = h.spawn(&args).wait().await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("Not_A_Namespace"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
