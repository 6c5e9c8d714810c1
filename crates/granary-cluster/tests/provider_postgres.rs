//! The PostgreSQL membership table against the real server at 127.0.0.1:5432 (trust
//! auth, database `test`). Skipped with a reason when it is unreachable, unless CI=true.

use std::sync::Arc;
use std::time::Duration;

use granary_cluster::provider::{MembershipProvider, PostgresProvider};
use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::{Cluster, ClusterConfig, MemberStatus};

const CONN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn cluster_name(tag: &str) -> String {
    format!("test-{tag}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn provider(name: &str) -> Option<PostgresProvider> {
    match PostgresProvider::connect(CONN, name, Duration::from_secs(30)).await {
        Ok(p) => Some(p),
        Err(e) if !ci() => {
            eprintln!("SKIPPED: PostgreSQL at 127.0.0.1:5432 unavailable: {e}");
            None
        }
        Err(e) => panic!("PostgreSQL is required when CI=true: {e}"),
    }
}

#[tokio::test]
async fn nodes_find_each_other_through_the_postgres_table() {
    let name = cluster_name("join");
    let net = MemoryNetwork::new(1);
    let mut nodes = Vec::new();
    for i in 0..3u16 {
        let Some(p) = provider(&name).await else {
            return;
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 7200 + i));
        let cfg = ClusterConfig {
            incarnation: Some(1),
            ..ClusterConfig::default()
        };
        let node = Cluster::start(cfg, net.bind(addr).unwrap(), Arc::new(p))
            .await
            .expect("start");
        nodes.push(node);
    }
    // Everyone joined the first node's cluster (not three clusters of one).
    for node in &nodes {
        let mut events = node.subscribe();
        let all_up = tokio::time::timeout(Duration::from_secs(10), async {
            while node.up_members().len() < 3 {
                if events.recv().await.is_none() {
                    break;
                }
            }
            node.up_members().len() == 3
        })
        .await;
        assert_eq!(all_up, Ok(true));
    }
    let view = provider(&name).await.unwrap();
    let rows = view.rows().await.unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows
        .iter()
        .all(|(_, inc, status)| *inc == 1 && status == "Up"));
    assert_eq!(view.discover().await.unwrap().len(), 3);

    // A graceful leave removes the row.
    nodes[2].leave().await.unwrap();
    let rows = view.rows().await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for node in &nodes[..2] {
        node.stop().await;
    }
    assert!(view.rows().await.unwrap().is_empty());
}

#[tokio::test]
async fn stale_and_down_rows_are_not_offered_as_contacts() {
    let name = cluster_name("stale");
    let Some(p) = provider(&name).await else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(CONN, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO granary_membership (cluster, address, incarnation, status, heartbeat) VALUES
             ($1, '127.0.0.1:1', 1, 'Up', now() - interval '1 hour'),
             ($1, '127.0.0.1:2', 1, 'Down', now()),
             ($1, '127.0.0.1:3', 1, 'Up', now())",
            &[&name],
        )
        .await
        .unwrap();
    let found = p.discover().await.unwrap();
    assert_eq!(found, vec!["127.0.0.1:3".parse().unwrap()]);
    // An older incarnation never overwrites a newer row.
    let mut member = granary_cluster::Member::new(
        granary_cluster::NodeId::new("127.0.0.1:3".parse().unwrap(), 0),
        1,
    );
    member.status = MemberStatus::Down;
    p.register(&member).await.unwrap();
    assert_eq!(p.discover().await.unwrap().len(), 1);
    client
        .execute(
            "DELETE FROM granary_membership WHERE cluster = $1",
            &[&name],
        )
        .await
        .unwrap();
}
