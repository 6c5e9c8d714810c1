//! A client across hosts, on the test bed (issue 19's bar): three server hosts run the
//! `granary-virtual-node` program with mutual TLS, find each other by DNS SRV records
//! that dnsmasq serves from a fifth host (or, in the second test, through the
//! PostgreSQL membership table), and keep their state in PostgreSQL; a client on a
//! fourth host, whose inbound traffic nft drops (only packets of connections it opened
//! get in), asks 100 identities 1,000 times; then the host of some of them is killed
//! with `SIGKILL`, and every increment the client saw acknowledged survives.
//!
//! Layout: `h1..h3` nodes (`10.213.0.11..13:7100`), `h4` the client, `h5` dnsmasq.
//! PostgreSQL listens on 127.0.0.1 in the root namespace, which the hosts cannot reach:
//! each node host gets a relay, a socket listening on its own `127.0.0.1:15432` (created
//! inside the namespace) whose connections this test process forwards to the root
//! namespace's `127.0.0.1:5432`. Everything goes with the test bed's namespaces and this
//! process; the run's tables and membership rows are removed at the end.
//!
//! Needs root, the test bed's tools, dnsmasq, PostgreSQL on 127.0.0.1:5432 and the
//! `granary-virtual-node` program built next to this test (`cargo build -p
//! granary-virtual --bin granary-virtual-node`, which `cargo test --workspace` does);
//! without one of them it skips with the reason, and with `CI=true` it fails instead.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use granary::prelude::*;
use granary::virtual_actors::{ClientBuilder, ClientConfig, Secret, TlsSettings};
use granary::Message;
use granary_testbed::process::Launch;
use granary_testbed::{available_or_skip, HostId, Testbed};
use serde::{Deserialize, Serialize};

/// How the nodes find each other.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Discovery {
    /// SRV records served by dnsmasq on `h5`.
    DnsSrv,
    /// The PostgreSQL membership table.
    Postgres,
}
const NODES: usize = 3;
const CLIENT: HostId = HostId(3);
const DNS: HostId = HostId(4);
const PORT: u16 = 7100;
const SECRET: &str = "cross-host-bed-secret";
const SRV_NAME: &str = "_granary._tcp.bed.test.";
const PG_RELAY: &str = "127.0.0.1:15432";
const IDENTITIES: usize = 100;
/// Increments per identity before the kill (100 × 10 = 1,000 asks).
const BEFORE_KILL: u64 = 10;
/// Increments per identity after the kill.
const AFTER_KILL: u64 = 3;
/// Bound on one node becoming ready.
const READY: Duration = Duration::from_secs(30);
/// Bound on one ask, retries across the kill included.
const ASK: Duration = Duration::from_secs(25);

// The wire contract of the node program's demo kind (its `demo_counter.rs`): the same
// kind and message names, so this client talks to it without linking the program.

#[derive(Serialize, Deserialize, Default)]
struct Count {
    n: u64,
}

struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "demo.Counter";
    type Key = String;
    type State = Count;
    fn activate(_: &String) -> Self {
        Counter
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Increment(u64);
impl Message for Increment {
    type Reply = Result<(SocketAddr, u64), String>;
}
granary::register_message!(Increment, "demo.Increment");
granary::register_message!(Result<(SocketAddr, u64), String>, "demo.IncrementReply");

/// Only the nodes handle it; a client needs the impl to send it.
impl VirtualHandler<Increment> for Counter {
    async fn handle(
        &mut self,
        msg: Increment,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<(SocketAddr, u64), String> {
        ctx.state_mut().n += msg.0;
        ctx.write_state().await.map_err(|e| e.to_string())?;
        Ok((ctx.node_addr(), ctx.state().n))
    }
}

/// `Err(reason)` when something this test needs is missing.
fn prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let dnsmasq = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("dnsmasq is not installed (apt-get install -y dnsmasq-base)")?;
    let node = match std::env::var_os("GRANARY_VIRTUAL_NODE") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .and_then(Path::parent)
            .map(|dir| dir.join("granary-virtual-node"))
            .ok_or("no target directory")?,
    };
    if !node.exists() {
        return Err(format!(
            "{} is not built (cargo build -p granary-virtual --bin granary-virtual-node)",
            node.display()
        ));
    }
    TcpStream::connect_timeout(&"127.0.0.1:5432".parse().unwrap(), Duration::from_secs(2))
        .map_err(|e| format!("PostgreSQL is not listening on 127.0.0.1:5432: {e}"))?;
    Ok((dnsmasq, node))
}

/// A CA, and one certificate issued by it for every host address (the nodes' and the
/// client's: mutual TLS), as PEM files in `dir`.
fn certificates(dir: &Path, bed: &Testbed) -> TlsSettings {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "bed cluster CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    let names: Vec<String> = bed.hosts().iter().map(|h| h.addr.to_string()).collect();
    let leaf = CertificateParams::new(names).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    TlsSettings {
        ca_file: Some(write("ca.pem", ca.pem())),
        cert_file: Some(write("cert.pem", cert.pem())),
        key_file: Some(write("key.pem", key.serialize_pem())),
        ..Default::default()
    }
}

/// Runs `nft -f -` with `rules` in `namespace`.
fn nft(namespace: &str, rules: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", namespace, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft in {namespace}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The client host drops every packet that arrives unless it belongs to a connection
/// it opened (or is loopback); dropped packets are counted.
const CLIENT_INBOUND: &str = "table inet granary_client_inbound {
    chain input {
        type filter hook input priority 0; policy accept;
        iif \"lo\" accept
        ct state established,related accept
        counter drop
    }
}
";

/// Packets the client host dropped so far.
fn dropped_inbound(namespace: &str) -> u64 {
    let out = nft(namespace, "list table inet granary_client_inbound\n");
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("the drop counter")
}

/// Removes the run's tables and membership rows when dropped (also when the test
/// fails; the namespaces and relays go with the test bed and the relay runtime).
struct PgCleanup(String);

impl Drop for PgCleanup {
    fn drop(&mut self) {
        let run = &self.0;
        let cleanup = format!(
            "DROP TABLE IF EXISTS {run}_state, {run}_reminders; \
             DO $$ BEGIN IF to_regclass('granary_membership') IS NOT NULL THEN \
             DELETE FROM granary_membership WHERE cluster = '{run}'; END IF; END $$;"
        );
        let args = [
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-q",
            "-c",
        ];
        if let Err(e) = Command::new("psql").args(args).arg(&cleanup).output() {
            eprintln!("tables {run}_*: not removed ({e})");
        }
    }
}

/// Forwards every connection accepted on `listener` (a socket of a host's namespace)
/// to PostgreSQL in the root namespace (this process's other threads are there).
async fn relay(listener: std::net::TcpListener) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Ok(mut pg) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut pg).await;
            }
        });
    }
}

/// Starts the node program on host `index`, configured by environment alone; `run`
/// names the run's cluster and store namespace.
fn node_launch(
    node: &Path,
    bed: &Testbed,
    index: usize,
    tls: &TlsSettings,
    run: &str,
    discovery: Discovery,
) -> Launch {
    let addr = bed.hosts()[index].addr;
    let dns = bed.hosts()[DNS.0].addr;
    let path = |p: &Option<PathBuf>| p.as_ref().unwrap().display().to_string();
    let pg = format!("postgres://postgres@{PG_RELAY}/test");
    let mut args = vec![
        format!("GRANARY_BIND={addr}:{PORT}"),
        format!("GRANARY_CLUSTER_NAME={run}"),
        format!("GRANARY_CLUSTER_SECRET={SECRET}"),
        format!("GRANARY_TLS_CA_FILE={}", path(&tls.ca_file)),
        format!("GRANARY_TLS_CERT_FILE={}", path(&tls.cert_file)),
        format!("GRANARY_TLS_KEY_FILE={}", path(&tls.key_file)),
        format!("GRANARY_STORE_URL={pg}"),
        format!("GRANARY_STORE_NAMESPACE={run}"),
    ];
    match discovery {
        Discovery::DnsSrv => args.extend([
            "GRANARY_MEMBERSHIP=dns".into(),
            format!("GRANARY_DNS_NAME={SRV_NAME}"),
            "GRANARY_DNS_RECORD=srv".into(),
            format!("GRANARY_DNS_SERVER={dns}:53"),
        ]),
        Discovery::Postgres => args.extend([
            "GRANARY_MEMBERSHIP=postgres".into(),
            format!("GRANARY_MEMBERSHIP_POSTGRES={pg}"),
        ]),
    }
    args.push(node.display().to_string());
    Launch::new(format!("n{}", index + 1), "env", args)
}

/// dnsmasq on the DNS host: an A record per node and the SRV records naming them.
fn dns_launch(dnsmasq: &Path, bed: &Testbed) -> Launch {
    let hosts_file = bed.run_dir().join("bed.hosts");
    let mut hosts = String::new();
    let mut args = vec![
        "-c".to_owned(),
        // Its log on stdout, where the test bed reads lines, without the date in front
        // (so the "started" line can be waited for by its prefix).
        "\"$0\" \"$@\" 2>&1 | sed -u 's/^.*dnsmasq\\[[0-9]*\\]: /dnsmasq: /'".to_owned(),
        dnsmasq.display().to_string(),
        "--no-daemon".into(),
        "--log-facility=-".into(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        format!("--addn-hosts={}", hosts_file.display()),
        format!("--listen-address={}", bed.hosts()[DNS.0].addr),
        "--bind-interfaces".into(),
        "--port=53".into(),
        "--user=root".into(),
        "--pid-file=".into(),
    ];
    for i in 0..NODES {
        hosts.push_str(&format!("{} n{}.bed.test\n", bed.hosts()[i].addr, i + 1));
        args.push(format!(
            "--srv-host={},n{}.bed.test,{PORT}",
            SRV_NAME.trim_end_matches('.'),
            i + 1
        ));
    }
    std::fs::write(&hosts_file, hosts).unwrap();
    Launch::new("dns", "sh", args)
}

/// Whether a connection from host `from` to a listener on the client host gets
/// through within `wait` (it must not: nft drops it).
fn reaches_client(bed: &Testbed, from: HostId, wait: Duration) -> bool {
    let target = SocketAddr::from((bed.hosts()[CLIENT.0].addr, 7999));
    let listener = bed
        .in_host(CLIENT, || std::net::TcpListener::bind(target).unwrap())
        .unwrap();
    let connected = bed
        .in_host(from, || TcpStream::connect_timeout(&target, wait).is_ok())
        .unwrap();
    drop(listener);
    connected
}

/// What the client saw.
struct Seen {
    /// Acknowledged increments per identity.
    acked: HashMap<String, u64>,
    /// The final value each identity reported (an `Increment(0)` at the end).
    finals: HashMap<String, u64>,
    /// The hosts that answered before the kill.
    hosts: HashMap<String, SocketAddr>,
    killed: SocketAddr,
    asks_before_kill: usize,
    first_phase: Duration,
    after_kill: Duration,
    gateways: Vec<SocketAddr>,
    dropped_while_served: u64,
}

async fn increments(
    client: &Arc<granary::virtual_actors::Client>,
    key: String,
    times: u64,
) -> Result<(u64, SocketAddr), String> {
    let r = client.get::<Counter>(key.clone());
    let mut last = (0, SocketAddr::from(([0, 0, 0, 0], 0)));
    for _ in 0..times {
        let (host, n) = r
            .ask_timeout(Increment(1), ASK)
            .await
            .map_err(|e| format!("{key}: {e}"))?
            .map_err(|e| format!("{key}: {e}"))?;
        last = (n, host);
    }
    Ok(last)
}

/// The client's whole run, on the client host: 1,000 asks, the kill, more asks, the
/// final reads.
async fn client_run(
    test: &str,
    run: String,
    bed_client_ns: String,
    seeds: Vec<SocketAddr>,
    tls: TlsSettings,
    pids: Vec<(SocketAddr, i32)>,
) -> Seen {
    let config = ClientConfig {
        seeds: seeds.iter().map(|s| s.to_string()).collect(),
        cluster_name: run,
        cluster_secret: Secret::new(SECRET),
        tls,
        gateways: 2,
        ..ClientConfig::default()
    };
    let client = Arc::new(
        ClientBuilder::from_config(config)
            .connect()
            .await
            .expect("client connects"),
    );
    let keys: Vec<String> = (0..IDENTITIES).map(|i| format!("bed-{i}")).collect();
    let dropped_before = dropped_inbound(&bed_client_ns);

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for key in keys.clone() {
        let client = client.clone();
        tasks.spawn(async move { (key.clone(), increments(&client, key, BEFORE_KILL).await) });
    }
    let mut acked = HashMap::new();
    let mut hosts = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (key, result) = done.unwrap();
        let (n, host) = result.unwrap_or_else(|e| panic!("{test}: before the kill: {e}"));
        assert_eq!(n, BEFORE_KILL, "{key}");
        acked.insert(key.clone(), n);
        hosts.insert(key, host);
    }
    let first_phase = started.elapsed();
    let gateways = client.gateways();

    // SIGKILL to the host of the first identity (whichever node that is).
    let killed = hosts["bed-0"];
    let pid = pids.iter().find(|(a, _)| *a == killed).unwrap().1;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();

    let started = Instant::now();
    for key in keys.clone() {
        let client = client.clone();
        tasks.spawn(async move { (key.clone(), increments(&client, key, AFTER_KILL).await) });
    }
    while let Some(done) = tasks.join_next().await {
        let (key, result) = done.unwrap();
        let (n, host) = result.unwrap_or_else(|e| panic!("{test}: after the kill: {e}"));
        assert_ne!(host, killed, "{key} answered by the killed node");
        *acked.get_mut(&key).unwrap() += AFTER_KILL;
        assert!(
            n >= acked[&key],
            "{key}: {n} after {} acknowledged",
            acked[&key]
        );
    }
    let after_kill = started.elapsed();
    let mut finals = HashMap::new();
    for key in &keys {
        let (_, n) = client
            .get::<Counter>(key.clone())
            .ask_timeout(Increment(0), ASK)
            .await
            .unwrap()
            .unwrap();
        finals.insert(key.clone(), n);
    }
    let dropped_while_served = dropped_inbound(&bed_client_ns) - dropped_before;
    if let Ok(client) = Arc::try_unwrap(client) {
        client.close().await;
    }
    Seen {
        acked,
        finals,
        hosts,
        killed,
        asks_before_kill: IDENTITIES * BEFORE_KILL as usize,
        first_phase,
        after_kill,
        gateways,
        dropped_while_served,
    }
}

#[test]
fn a_dial_out_client_behind_a_firewall_reaches_tls_nodes_found_by_dns_across_a_kill() {
    run("cross_host_client_on_bed (dns srv)", Discovery::DnsSrv);
}

#[test]
fn the_same_with_nodes_found_through_the_postgres_membership_table() {
    run(
        "cross_host_client_on_bed (postgres membership)",
        Discovery::Postgres,
    );
}

fn run(test: &str, discovery: Discovery) {
    if !available_or_skip(test) {
        return;
    }
    let (dnsmasq, node) = match prerequisites() {
        Ok(found) => found,
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: required with CI=true: {reason}")
        }
        Err(reason) => {
            eprintln!("{test}: skipped: {reason}");
            return;
        }
    };
    let whole = Instant::now();
    let bed = Testbed::new(NODES + 2).unwrap();
    let tls = certificates(bed.run_dir(), &bed);
    // Names this run's cluster, tables and membership rows (`[a-z][a-z0-9_]*`).
    let run = bed.prefix().trim_end_matches('-').to_ascii_lowercase();
    let _cleanup = PgCleanup(run.clone());

    // PostgreSQL relays, one per node host.
    let relays = tokio::runtime::Runtime::new().unwrap();
    for i in 0..NODES {
        let listener = bed
            .in_host(HostId(i), || std::net::TcpListener::bind(PG_RELAY))
            .unwrap()
            .unwrap();
        relays.spawn(relay(listener));
    }

    // The client host takes nothing it did not ask for.
    let client_ns = bed.hosts()[CLIENT.0].namespace.clone();
    nft(&client_ns, CLIENT_INBOUND);
    assert!(
        !reaches_client(&bed, HostId(0), Duration::from_millis(500)),
        "nft lets a new connection in"
    );

    let dns = match discovery {
        Discovery::DnsSrv => {
            let mut dns = bed.spawn(DNS, &dns_launch(&dnsmasq, &bed)).unwrap();
            dns.wait_for_line("dnsmasq: started", READY).unwrap();
            Some(dns)
        }
        Discovery::Postgres => None,
    };

    // The first node forms the cluster; the others find it (SRV records, or its row).
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let launch = node_launch(&node, &bed, i, &tls, &run, discovery);
        let mut process = bed.spawn(HostId(i), &launch).unwrap();
        if i == 0 {
            process.wait_for_line("ready", READY).unwrap();
        }
        nodes.push(process);
    }
    for process in nodes.iter_mut().skip(1) {
        process.wait_for_line("ready", READY).unwrap();
    }
    let addrs: Vec<SocketAddr> = (0..NODES)
        .map(|i| SocketAddr::from((bed.hosts()[i].addr, PORT)))
        .collect();
    let pids: Vec<(SocketAddr, i32)> = addrs
        .iter()
        .copied()
        .zip(nodes.iter().map(|p| p.pid()))
        .collect();
    let ready_after = whole.elapsed();

    let seeds = addrs[..2].to_vec();
    let seen = bed
        .in_host(CLIENT, {
            let (ns, tls, run) = (client_ns.clone(), tls.clone(), run.clone());
            move || {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(client_run(test, run, ns, seeds, tls, pids))
            }
        })
        .unwrap();

    let mut hosted: HashMap<SocketAddr, usize> = HashMap::new();
    for host in seen.hosts.values() {
        *hosted.entry(*host).or_default() += 1;
    }
    eprintln!(
        "{test}: nodes ready after {ready_after:?}; {} asks to {IDENTITIES} identities in {:?} \
         (identities per host {hosted:?}, gateways {:?}); killed {} ({} identities), \
         {} more asks in {:?}; {} increments applied beyond those acknowledged; \
         whole test {:?}",
        seen.asks_before_kill,
        seen.first_phase,
        seen.gateways,
        seen.killed,
        hosted[&seen.killed],
        IDENTITIES * AFTER_KILL as usize,
        seen.after_kill,
        (seen.acked.iter())
            .map(|(key, acked)| seen.finals[key].saturating_sub(*acked))
            .sum::<u64>(),
        whole.elapsed()
    );
    assert_eq!(hosted.len(), NODES, "identities on every node: {hosted:?}");
    for (key, acked) in &seen.acked {
        let last = seen.finals[key];
        assert!(
            last >= *acked,
            "{key}: {acked} increments acknowledged, {last} kept"
        );
    }
    assert_eq!(
        seen.dropped_while_served, 0,
        "a node tried to open a connection to the client"
    );
    assert_eq!(seen.gateways.len(), 2);

    drop(nodes);
    drop(dns);
    relays.shutdown_background();
}
