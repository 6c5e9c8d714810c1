//! The management endpoint, the `granary` CLI and the dashboard in a real headless
//! Chromium, against a three-node cluster under load.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{start_cluster, wait_until, Load, Visit, Visits, WAIT};
use granary_admin::views::{Activations, ClusterInfo, Lookup, Overview};
use granary_admin::{get_json, AdminError};
use serde_json::Value;

const T: Duration = Duration::from_secs(5);

/// The value of the first sample of `family` whose labels contain every `label`.
fn sample(text: &str, family: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_text(endpoint: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // /metrics is text, not JSON: read it through a raw HTTP/1.0 exchange.
    let mut s = tokio::net::TcpStream::connect(endpoint).await.unwrap();
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {endpoint}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut body))
        .await
        .expect("metrics answered in time")
        .unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoint_serves_health_cluster_activations_metrics_and_the_cli_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let members = start_cluster(3, &dir).await;
    let load = Load::start(&members, 64);
    assert!(
        wait_until(WAIT, || load.answered.load(Ordering::Relaxed) > 2_000).await,
        "load made no progress"
    );
    load.stop().await;
    let endpoint = members[0].endpoint();

    // Health and readiness.
    let ready: Value = get_json(&endpoint, "/readyz", T).await.unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["store_reachable"], true, "{ready}");

    // The cluster: three Up members, the ring shared among them, endpoints known.
    let cluster: ClusterInfo = get_json(&endpoint, "/cluster", T).await.unwrap();
    assert_eq!(cluster.local, members[0].node.addr());
    assert_eq!(cluster.members.len(), 3);
    assert!(
        cluster.members.iter().all(|m| m.status == "Up"),
        "{cluster:?}"
    );
    let shares: f64 = cluster.members.iter().map(|m| m.ring_share).sum();
    assert!((shares - 1.0).abs() < 1e-6, "ring shares sum to {shares}");
    for m in &members {
        let info = cluster
            .members
            .iter()
            .find(|x| x.addr == m.node.addr())
            .unwrap();
        assert_eq!(info.admin.as_deref(), Some(m.endpoint().as_str()));
        assert_eq!(
            info.roles,
            vec![<Visits as granary_virtual::VirtualActor>::KIND]
        );
    }

    // Activations per kind on each node add up to the 64 keys.
    let mut total = 0;
    for m in &members {
        let a: Activations = get_json(&m.endpoint(), "/activations", T).await.unwrap();
        assert_eq!(a.node, m.node.addr());
        total += a.kinds["admin.Visits"];
    }
    assert_eq!(total, 64);

    // Where one key lives, asked of a node that neither owns nor hosts it (when
    // there is one): the answer is the host that handled the key.
    let (host, _) = members[0]
        .node
        .get::<Visits>("key-7")
        .ask(Visit)
        .await
        .unwrap();
    for m in &members {
        let found: Lookup = get_json(&m.endpoint(), "/activations?kind=admin.Visits&key=key-7", T)
            .await
            .unwrap();
        assert_eq!(found.host, Some(host), "asked {}", m.node.addr());
        assert!(found.directory_owner.is_some());
    }
    // An identity never activated has an owner but no host, and is not activated.
    let before: usize = members
        .iter()
        .map(|m| m.node.activations("admin.Visits"))
        .sum();
    let absent: Lookup = get_json(&endpoint, "/activations?kind=admin.Visits&key=nobody", T)
        .await
        .unwrap();
    assert_eq!(absent.host, None);
    assert!(absent.directory_owner.is_some());
    let after: usize = members
        .iter()
        .map(|m| m.node.activations("admin.Visits"))
        .sum();
    assert_eq!(before, after, "a lookup activated something");

    // Half a lookup is a typed 400, not a guess.
    match get_json::<Value>(&endpoint, "/activations?kind=admin.Visits", T).await {
        Err(AdminError::Status { status: 400, .. }) => {}
        other => panic!("expected 400, got {other:?}"),
    }

    // Prometheus: every family the collector exports, non-zero where load touched it.
    let node = members[0].node.addr().to_string();
    let node_label = format!("node=\"{node}\"");
    // The collector samples every 200 ms; wait for a sample taken after the load.
    let deadline = Instant::now() + WAIT;
    let mut text = metrics_text(&endpoint).await;
    while sample(&text, "granary_activations", &[&node_label]).is_none_or(|v| v == 0.0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = metrics_text(&endpoint).await;
    }
    for family in [
        "granary_transport_frames_in_total",
        "granary_transport_frames_out_total",
        "granary_transport_writes_total",
        "granary_transport_dials_total",
    ] {
        let v = sample(&text, family, &[&node_label]).unwrap_or(0.0);
        assert!(v > 0.0, "{family} for {node} is {v}:\n{text}");
    }
    let up = sample(
        &text,
        "granary_cluster_members",
        &[&node_label, "status=\"Up\""],
    );
    assert_eq!(up, Some(3.0), "{text}");
    let acts = sample(
        &text,
        "granary_activations",
        &[&node_label, "kind=\"admin.Visits\""],
    );
    assert!(acts.is_some_and(|v| v > 0.0), "{text}");
    assert!(
        sample(&text, "granary_lease_held", &[&node_label]) == Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "granary_directory_entries", &[&node_label]).is_some(),
        "{text}"
    );

    // The CLI prints the members and where the key lives.
    let printed = granary_cli(&endpoint, &["members"]).await.unwrap();
    for m in &members {
        assert!(printed.contains(&m.node.addr().to_string()), "{printed}");
    }
    assert_eq!(printed.matches(" Up ").count(), 3, "{printed}");
    let printed = granary_cli(&endpoint, &["where", "admin.Visits/key-7"])
        .await
        .unwrap();
    assert!(
        printed.contains(&format!("host             {host}")),
        "{printed}"
    );
    // A key with a slash, a space and a non-ASCII letter survives the trip.
    let odd = "odd key/é";
    let (odd_host, _) = members[1].node.get::<Visits>(odd).ask(Visit).await.unwrap();
    let printed = granary_cli(&endpoint, &["where", &format!("admin.Visits/{odd}")])
        .await
        .unwrap();
    assert!(
        printed.starts_with(&format!("admin.Visits/{odd}\n")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("host             {odd_host}")),
        "{printed}"
    );
    // A malformed identity is a usage error with a clear message.
    let error = granary_cli(&endpoint, &["where", "no-slash"])
        .await
        .unwrap_err();
    assert!(error.contains("kind/key"), "{error}");

    for m in members {
        m.kill().await;
    }
}

/// Runs the `granary` CLI against `endpoint`: its stdout on success, else its stderr.
async fn granary_cli(endpoint: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_granary"))
        .args(["--endpoint", endpoint])
        .args(args)
        .output()
        .await
        .expect("the granary binary runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The members as the dashboard shows them: address to (status, rate).
async fn shown_members(browser: &mut Browser) -> BTreeMap<String, (String, f64)> {
    let rows = browser
        .eval(
            "JSON.stringify([...document.querySelectorAll('#members tr[data-member]')]\
             .map(r => [r.dataset.member, r.dataset.status, Number(r.dataset.rate)]))",
        )
        .await
        .unwrap_or(Value::Null);
    let rows: Vec<(String, String, f64)> = rows
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    rows.into_iter().map(|(a, s, r)| (a, (s, r))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_in_headless_chromium_shows_members_rates_and_a_killed_node_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = start_cluster(3, &dir).await;
    let load = Load::start(&members, 64);
    let url = format!("http://{}/", members[0].endpoint());
    let mut browser = Browser::open(&url).await.expect("headless chromium starts");

    // Three members, all Up, each with a non-zero message rate.
    let deadline = Instant::now() + WAIT;
    let mut shown = BTreeMap::new();
    while Instant::now() < deadline {
        shown = shown_members(&mut browser).await;
        if shown.len() == 3 && shown.values().all(|(s, r)| s == "Up" && *r > 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(
        shown.values().all(|(s, r)| s == "Up" && *r > 0.0),
        "{shown:?}"
    );
    // The other panels are filled from the same data.
    let kinds = browser
        .eval("document.querySelector('#activations tbody').textContent")
        .await
        .unwrap();
    assert!(
        kinds.as_str().unwrap_or("").contains("admin.Visits"),
        "{kinds}"
    );
    let arcs = browser
        .eval("document.querySelectorAll('#ring path').length")
        .await
        .unwrap();
    assert_eq!(arcs, 3);

    // Kill the third node: the page shows it Down within 10 s.
    let victim = members.pop().unwrap();
    let victim_addr = victim.node.addr().to_string();
    let killed = Instant::now();
    victim.kill().await;
    let mut status = String::new();
    while killed.elapsed() < Duration::from_secs(10) {
        shown = shown_members(&mut browser).await;
        status = shown
            .get(&victim_addr)
            .map(|(s, _)| s.clone())
            .unwrap_or_default();
        if status == "Down" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "Down", "after {:?}: {shown:?}", killed.elapsed());
    println!("killed node shown Down after {:?}", killed.elapsed());
    // A screenshot of the page in this state (docs/admin-dashboard.png is one).
    let shot = browser.screenshot().await.unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "not a PNG");
    if let Ok(path) = std::env::var("GRANARY_DASHBOARD_SCREENSHOT") {
        std::fs::write(&path, &shot).unwrap();
    }

    // The overview the page reads agrees.
    let ov: Overview = get_json(&members[0].endpoint(), "/api/overview", T)
        .await
        .unwrap();
    let entry = ov
        .nodes
        .iter()
        .find(|n| n.addr.to_string() == victim_addr)
        .unwrap();
    assert!(entry.report.is_none());

    browser.close().await;
    load.stop().await;
    for m in members {
        m.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_of_other_parts_of_the_application_reach_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let node = granary_virtual::Node::builder()
        .data_dir(dir.path())
        .host(granary_virtual::Kind::<Visits>::new().handles::<Visit>())
        .start()
        .await
        .unwrap();
    let kept = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(41));
    let read = kept.clone();
    let admin = granary_admin::Admin::builder(node.probe())
        .sample_every(Duration::from_millis(50))
        .counters(move || vec![("granary_test_widgets_total", read.load(Ordering::Relaxed))])
        .start()
        .await
        .unwrap();
    let endpoint = admin.local_addr().to_string();
    let label = format!("node=\"{}\"", node.addr());
    for want in [41.0, 42.0] {
        if want == 42.0 {
            kept.store(42, Ordering::Relaxed);
        }
        let deadline = Instant::now() + WAIT;
        let mut seen = None;
        while Instant::now() < deadline {
            let text = metrics_text(&endpoint).await;
            seen = sample(&text, "granary_test_widgets_total", &[&label]);
            if seen == Some(want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(seen, Some(want));
    }
    admin.shutdown(T).await;
    node.kill().await;
}
