//! `--metrics-auth kubernetes` and HTTPS, end to end: the real binary against the
//! simulator's TokenReview and SubjectAccessReview APIs, read with an HTTPS client that
//! either trusts the served certificate files or records the generated certificate.
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kubebridge_sim::{ACCESS_REVIEWS, Permission, Rule, TOKEN_REVIEWS};
use kubebridge_testkit::brokers::free_port;
use kubebridge_testkit::harness::{Harness, WAIT, output};
use kubebridge_testkit::http::{
    Resp, Tls, get_tls, local, sample, try_get, try_request, try_request_tls,
};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Waits until `/readyz` answers 200 over TLS, without a token.
async fn wait_until_ready_tls(addr: SocketAddr, tls: &Tls) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(r) = try_request_tls(addr, tls, "GET", "/readyz", &[]).await
            && r.status == 200
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never 200 over TLS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_status(r: &Resp, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
}

/// A certificate for `localhost` and its key, written as PEM files in `dir`.
fn cert_files(dir: &Path) -> (String, String, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    (
        cert.display().to_string(),
        key.display().to_string(),
        generated.cert.pem(),
    )
}

fn fingerprint(der: &[u8]) -> String {
    let hex: Vec<String> = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    hex.join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_an_accepted_token_and_a_permission_and_answers_are_cached() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    let reviews = h.sim.reviews();
    reviews.add_token(
        "scraper-token",
        "system:serviceaccount:monitoring:prometheus",
        &["system:serviceaccounts"],
        &[Permission::path("get", "/metrics")],
    );
    reviews.add_token(
        "reader-token",
        "reader",
        &[],
        &[Permission::resource("list", "pods")],
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // At the default log level (warn): the fingerprint must show without asking.
    let kb = h.spawn(&[
        "pods",
        "-A",
        "--metrics-addr",
        &addr,
        "--metrics-auth",
        "kubernetes",
    ]);
    let addr = local(port);
    let tls = Tls::any_certificate();
    wait_until_ready_tls(addr, &tls).await;

    // The probes stay anonymous.
    assert_status(
        &get_tls(addr, &tls, "/healthz", None).await,
        200,
        "/healthz",
    );
    assert_status(&get_tls(addr, &tls, "/readyz", None).await, 200, "/readyz");

    let none = get_tls(addr, &tls, "/metrics", None).await;
    assert_status(&none, 401, "no token");
    assert!(
        none.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "a Bearer challenge: {:?}",
        none.headers
    );
    let bad = get_tls(addr, &tls, "/metrics", Some("stolen-token")).await;
    assert_status(&bad, 401, "unknown token");
    assert!(bad.header("www-authenticate").is_some());
    let denied = get_tls(addr, &tls, "/metrics", Some("reader-token")).await;
    assert_status(&denied, 403, "a user who may not get /metrics");
    assert!(denied.text().contains("reader"), "{}", denied.text());

    let allowed = get_tls(addr, &tls, "/metrics", Some("scraper-token")).await;
    assert_status(&allowed, 200, "the scraper");
    let metrics = allowed.text();
    assert!(metrics.contains("kubebridge_"), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "kubebridge_endpoint_auth_total{result=\"unauthenticated\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "kubebridge_endpoint_auth_total{result=\"forbidden\"}"
        ),
        Some(1.0)
    );

    // Within the cache TTL (1 min by default), a second scrape asks the API server nothing.
    let token_reviews = h.sim.requests("create", TOKEN_REVIEWS);
    let access_reviews = h.sim.requests("create", ACCESS_REVIEWS);
    assert_eq!(
        (token_reviews, access_reviews),
        (3, 2),
        "one TokenReview per distinct token, one SubjectAccessReview per authenticated user"
    );
    let again = get_tls(addr, &tls, "/metrics", Some("scraper-token")).await;
    assert_status(&again, 200, "the scraper again");
    assert_eq!(h.sim.requests("create", TOKEN_REVIEWS), token_reviews);
    assert_eq!(h.sim.requests("create", ACCESS_REVIEWS), access_reviews);

    // Plain HTTP to the HTTPS port gets no HTTP answer, not even with a valid token
    // (without one, a plain-HTTP server with auth would answer 401 and pass).
    let plain = try_request(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer scraper-token")],
        None,
    )
    .await;
    assert!(
        !matches!(plain, Ok(ref r) if r.status == 200),
        "plain HTTP was served"
    );

    let (_, stderr) = kb.terminate().await;
    let seen = tls.seen_certificate().expect("a certificate was presented");
    let logged = fingerprint(&seen);
    assert!(
        stderr.contains(&logged) && stderr.contains("self-signed"),
        "the served certificate's fingerprint {logged} is logged: {stderr}"
    );
    assert!(
        !stderr.contains("scraper-token") && !stderr.contains("stolen-token"),
        "no token in the log: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_read_only_by_who_may_list_it_over_https_from_files() {
    let h = Harness::empty().await;
    for ns in ["shop", "other"] {
        h.create_namespace(ns);
        h.create_pod(ns, "web", json!({"app": "web"}));
    }
    let reviews = h.sim.reviews();
    reviews.add_token(
        "pods",
        "pod-reader",
        &[],
        &[Permission::resource("list", "pods")],
    );
    reviews.add_token(
        "configmaps",
        "cm-reader",
        &[],
        &[Permission::resource("list", "configmaps")],
    );
    reviews.add_token(
        "shop",
        "shop-reader",
        &[],
        &[Permission::resource_in("list", "pods", "shop")],
    );
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = cert_files(dir.path());
    let port = free_port();
    // Every interface: allowed, because /cache is behind authentication.
    let any = format!("0.0.0.0:{port}");
    let mut kb = h.spawn(&[
        "pods",
        "-A",
        "--metrics-addr",
        &any,
        "--serve-cache",
        "--metrics-auth",
        "kubernetes",
        "--metrics-tls-cert",
        &cert,
        "--metrics-tls-key",
        &key,
    ]);
    kb.take(2).await;
    let addr = local(port);
    let tls = Tls::trusting(&pem);
    wait_until_ready_tls(addr, &tls).await;

    let all = get_tls(addr, &tls, "/cache/pods", Some("pods")).await;
    assert_status(&all, 200, "who may list pods everywhere");
    assert_eq!(all.json()["items"].as_array().unwrap().len(), 2);
    let cm = get_tls(addr, &tls, "/cache/pods", Some("configmaps")).await;
    assert_status(&cm, 403, "who may list only configmaps");
    assert!(cm.text().contains("cm-reader") && cm.text().contains("list pods"));
    assert_status(
        &get_tls(addr, &tls, "/cache/pods", None).await,
        401,
        "no token",
    );

    let shop = get_tls(addr, &tls, "/cache/pods?namespace=shop", Some("shop")).await;
    assert_status(&shop, 200, "who may list pods in shop, in shop");
    assert_eq!(shop.json()["items"].as_array().unwrap().len(), 1);
    let other = get_tls(addr, &tls, "/cache/pods?namespace=other", Some("shop")).await;
    assert_status(&other, 403, "who may list pods in shop, in other");
    let everywhere = get_tls(addr, &tls, "/cache/pods", Some("shop")).await;
    assert_status(&everywhere, 403, "who may list pods in shop, everywhere");

    // A resource kubebridge does not cache is asked as written: who may not list it
    // learns nothing, not even that there is no cache for it.
    let secrets = get_tls(addr, &tls, "/cache/secrets", Some("pods")).await;
    assert_status(&secrets, 403, "secrets, for who may list pods");
    assert_status(
        &get_tls(addr, &tls, "/metrics", Some("pods")).await,
        403,
        "/metrics for who may list pods",
    );
    kb.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_api_that_fails_or_hangs_refuses_the_request() {
    let h = Harness::empty().await;
    // A token per case: answers are cached (the default TTL), failures must not be.
    let tokens = [
        "t-healthy",
        "t-500",
        "t-503",
        "t-hang",
        "t-sar",
        "t-forbidden",
    ];
    for token in tokens {
        // A user per token too: access reviews are cached per user.
        h.sim.reviews().add_token(
            token,
            &format!("user-{token}"),
            &[],
            &[Permission::path("get", "/metrics")],
        );
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let kb = h.spawn(&[
        "pods",
        "-A",
        "--metrics-addr",
        &addr,
        "--metrics-auth",
        "kubernetes",
        "--log-level",
        "trace",
    ]);
    let addr = local(port);
    let tls = Tls::any_certificate();
    wait_until_ready_tls(addr, &tls).await;
    let scrape = |token: &'static str| get_tls(addr, &tls, "/metrics", Some(token));
    assert_status(&scrape("t-healthy").await, 200, "healthy");

    for (rule, token, what) in [
        (Rule::Status(500), "t-500", "TokenReview 500"),
        (Rule::Status(503), "t-503", "TokenReview 503"),
        (Rule::Hang, "t-hang", "TokenReview hangs"),
    ] {
        h.sim.faults().set_rule(TOKEN_REVIEWS, Some(rule));
        let r = scrape(token).await;
        assert_status(&r, 503, what);
        assert!(
            r.text().contains("authentication unavailable"),
            "{}",
            r.text()
        );
        assert!(r.header("retry-after").is_some());
        // The probes do not depend on the review APIs.
        assert_status(&get_tls(addr, &tls, "/healthz", None).await, 200, what);
        h.sim.faults().set_rule(TOKEN_REVIEWS, None);
        // The failure was not cached: the same token is asked about again.
        assert_status(&scrape(token).await, 200, what);
    }
    h.sim
        .faults()
        .set_rule(ACCESS_REVIEWS, Some(Rule::Status(500)));
    let r = scrape("t-sar").await;
    assert_status(&r, 503, "SubjectAccessReview 500");
    assert!(
        r.text().contains("authorization unavailable"),
        "{}",
        r.text()
    );
    h.sim.faults().set_rule(ACCESS_REVIEWS, None);
    assert_status(&scrape("t-sar").await, 200, "SubjectAccessReview again");

    // kubebridge's own account may not create TokenReviews: closed, too.
    h.sim.faults().forbid(TOKEN_REVIEWS, "create");
    assert_status(
        &scrape("t-forbidden").await,
        503,
        "TokenReview forbidden to kubebridge",
    );

    let (_, stderr) = kb.terminate().await;
    assert!(
        stderr.contains("tokenreviews.authentication.k8s.io"),
        "the log names the permission: {stderr}"
    );
    // No token, even at trace level.
    for token in tokens {
        assert!(!stderr.contains(token), "{token} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_on_a_public_address_without_auth_is_refused_unless_insecure() {
    let h = Harness::empty().await;
    h.create_namespace("shop");
    h.create_pod("shop", "web", json!({}));
    let port = free_port();
    let any = format!("0.0.0.0:{port}");
    let (code, _, stderr) =
        output(h.watch(&["pods", "-A", "--metrics-addr", &any, "--serve-cache"])).await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("--metrics-auth kubernetes") && stderr.contains("--insecure-endpoints"),
        "{stderr}"
    );

    let mut kb = h.spawn(&[
        "pods",
        "-A",
        "--metrics-addr",
        &any,
        "--serve-cache",
        "--insecure-endpoints",
    ]);
    kb.take(1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let list = loop {
        if let Ok(r) = try_get(local(port), "/cache/pods").await
            && r.status == 200
        {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "/cache never 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 1);
    kb.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_serve_https_without_auth_and_bad_ones_exit_2() {
    let h = Harness::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = cert_files(dir.path());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");

    let missing = dir.path().join("nowhere.crt").display().to_string();
    let (code, _, stderr) = output(h.watch(&[
        "pods",
        "--metrics-addr",
        &addr,
        "--metrics-tls-cert",
        &missing,
        "--metrics-tls-key",
        &key,
    ]))
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("--metrics-tls-cert") && stderr.contains("nowhere.crt"),
        "{stderr}"
    );
    let (code, _, stderr) = output(h.watch(&[
        "pods",
        "--metrics-addr",
        &addr,
        "--metrics-tls-cert",
        &cert,
        "--metrics-tls-key",
        &cert,
    ]))
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--metrics-tls-key"), "{stderr}");

    // HTTPS without authentication: allowed, and served to anyone.
    let kb = h.spawn(&[
        "pods",
        "-A",
        "--metrics-addr",
        &addr,
        "--metrics-auth",
        "none",
        "--metrics-tls-cert",
        &cert,
        "--metrics-tls-key",
        &key,
    ]);
    let addr = local(port);
    let tls = Tls::trusting(&pem);
    wait_until_ready_tls(addr, &tls).await;
    let metrics = get_tls(addr, &tls, "/metrics", None).await;
    assert_status(&metrics, 200, "HTTPS without auth");
    assert_eq!(h.sim.requests("create", TOKEN_REVIEWS), 0);
    kb.terminate().await;
}
