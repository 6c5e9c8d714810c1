//! Bad input becomes a typed error, quickly: unreachable servers, corrupted bytes,
//! malformed URLs, locked files.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::time::{Duration, Instant, UNIX_EPOCH};

use granary_storage::{open, open_with, Identity, Reminder, StorageError, StoreOptions, UrlPart};
use tokio::net::TcpListener;

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A server on 127.0.0.1 that accepts connections and never says a word.
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

/// Opening `url` must fail with `Unavailable` within the connect timeout (+ slack).
async fn assert_unavailable_quickly(url: &str) {
    let connect_timeout = Duration::from_millis(500);
    let options = StoreOptions::default()
        .with_connect_timeout(connect_timeout)
        .with_op_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), open_with(url, options))
        .await
        .unwrap_or_else(|_| panic!("opening {url} hung for 10 s"));
    let took = started.elapsed();
    match result {
        Err(StorageError::Unavailable { reason }) => {
            assert!(
                took < connect_timeout + Duration::from_millis(1500),
                "{url}: Unavailable only after {took:?} (connect timeout {connect_timeout:?}): {reason}"
            );
        }
        other => panic!("{url}: expected Unavailable, got {other:?} after {took:?}"),
    }
}

#[tokio::test]
async fn postgres_on_a_closed_port_is_unavailable_within_the_connect_timeout() {
    assert_unavailable_quickly(&format!(
        "postgres://postgres@127.0.0.1:{}/test",
        closed_port()
    ))
    .await;
}

#[tokio::test]
async fn postgres_that_never_answers_is_unavailable_within_the_connect_timeout() {
    let (port, server) = silent_server().await;
    assert_unavailable_quickly(&format!("postgres://postgres@127.0.0.1:{port}/test")).await;
    server.abort();
}

#[tokio::test]
async fn redis_on_a_closed_port_is_unavailable_within_the_connect_timeout() {
    assert_unavailable_quickly(&format!("redis://127.0.0.1:{}/0", closed_port())).await;
}

#[tokio::test]
async fn redis_that_never_answers_is_unavailable_within_the_connect_timeout() {
    let (port, server) = silent_server().await;
    assert_unavailable_quickly(&format!("redis://127.0.0.1:{port}/0")).await;
    server.abort();
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0xA5u8; 16 * 1024]).unwrap();
    match open(&format!("file:{}", path.display())).await {
        Err(StorageError::Corrupt { reason }) => assert!(reason.contains("garbage.db"), "{reason}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_directory_given_as_the_file_store_is_an_invalid_path_that_names_a_file_to_use() {
    let dir = tempfile::tempdir().unwrap();
    match open(&format!("file:{}", dir.path().display())).await {
        Err(StorageError::InvalidUrl {
            part: UrlPart::Path,
            reason,
        }) => assert!(
            reason.contains("is a directory") && reason.contains("state.db"),
            "{reason}"
        ),
        other => panic!("expected InvalidUrl(Path), got {other:?}"),
    }
}

#[tokio::test]
async fn a_corrupted_version_in_the_file_store_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let url = format!("file:{}", path.display());
    let store = open(&url).await.unwrap();
    let id = Identity::new("Counter", "a");
    store.write(&id, "1".into(), None).await.unwrap();

    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE granary_state SET version = 'not a number'", [])
        .unwrap();
    drop(raw);

    assert!(
        matches!(store.read(&id).await, Err(StorageError::Corrupt { .. })),
        "read"
    );
    assert!(
        matches!(
            store.write(&id, "2".into(), None).await,
            Err(StorageError::Corrupt { .. })
        ),
        "write"
    );
}

#[tokio::test]
async fn a_corrupted_version_in_postgres_is_corrupt() {
    let Some(fixture) = fixtures::postgres().await else {
        return;
    };
    let id = Identity::new("Counter", "a");
    fixture.store.write(&id, "1".into(), None).await.unwrap();
    {
        use deadpool_postgres::tokio_postgres::{connect, NoTls};
        let (client, conn) = connect(&fixture.url, NoTls).await.unwrap();
        tokio::spawn(conn);
        let ns = fixture.options.namespace();
        client
            .batch_execute(&format!("UPDATE {ns}_state SET version = -3"))
            .await
            .unwrap();
    }
    let read = fixture.store.read(&id).await;
    fixture.cleanup().await;
    assert!(
        matches!(read, Err(StorageError::Corrupt { .. })),
        "got {read:?}"
    );
}

#[tokio::test]
async fn a_corrupted_version_in_redis_is_corrupt() {
    let Some(fixture) = fixtures::redis().await else {
        return;
    };
    let id = Identity::new("Counter", "a");
    fixture.store.write(&id, "1".into(), None).await.unwrap();
    {
        let client = redis::Client::open(fixture.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        // The documented layout: <namespace>:state:<kind length>:<kind><key>.
        let key = format!("{}:state:7:Countera", fixture.options.namespace());
        let _: () = redis::cmd("HSET")
            .arg(&key)
            .arg("v")
            .arg("garbage")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let read = fixture.store.read(&id).await;
    let write = fixture.store.write(&id, "2".into(), None).await;
    fixture.cleanup().await;
    assert!(
        matches!(read, Err(StorageError::Corrupt { .. })),
        "read: {read:?}"
    );
    assert!(
        matches!(write, Err(StorageError::Corrupt { .. })),
        "write: {write:?}"
    );
}

#[tokio::test]
async fn a_write_blocked_by_another_process_lock_fails_within_the_op_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let op_timeout = Duration::from_millis(300);
    let store = open_with(
        &format!("file:{}", path.display()),
        StoreOptions::default().with_op_timeout(op_timeout),
    )
    .await
    .unwrap();
    // Another connection (as another process would) takes the write lock and keeps it.
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        store.write(&Identity::new("Counter", "a"), "1".into(), None),
    )
    .await
    .expect("a blocked write must not hang");
    let took = started.elapsed();
    assert!(
        matches!(
            result,
            Err(StorageError::Timeout { .. } | StorageError::Unavailable { .. })
        ),
        "got {result:?}"
    );
    assert!(took < op_timeout + Duration::from_secs(2), "took {took:?}");

    // Once the lock is gone the store works again.
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    let id = Identity::new("Counter", "b");
    store.write(&id, "1".into(), None).await.unwrap();
}

#[tokio::test]
async fn malformed_urls_name_the_wrong_part() {
    for (url, part) in [
        ("", UrlPart::Scheme),
        ("sqlite:/tmp/x.db", UrlPart::Scheme),
        ("file:", UrlPart::Path),
        ("postgres://127.0.0.1:99999/test", UrlPart::Port),
        ("postgres:///test", UrlPart::Host),
        ("postgres://127.0.0.1/test?sslmode=require", UrlPart::Query),
        ("redis://127.0.0.1:6379/zero", UrlPart::Path),
    ] {
        match open(url).await {
            Err(StorageError::InvalidUrl { part: got, reason }) => {
                assert_eq!(got, part, "{url:?}: {reason}");
                let message = StorageError::InvalidUrl { part: got, reason }.to_string();
                assert!(message.contains(&part.to_string()), "{message}");
            }
            other => panic!("{url:?}: expected InvalidUrl naming the {part}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_namespace_that_is_not_an_identifier_is_refused() {
    let options = StoreOptions::default().with_namespace("x; DROP TABLE users");
    match open_with("memory:", options).await {
        Err(StorageError::InvalidInput {
            what: "namespace", ..
        }) => {}
        other => panic!("expected InvalidInput for the namespace, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reminder_before_1970_is_invalid_input() {
    let store = open("memory:").await.unwrap();
    let r = Reminder::new(
        Identity::new("C", "a"),
        "r",
        1,
        UNIX_EPOCH - Duration::from_secs(1),
    );
    assert!(matches!(
        store.upsert_reminder(&r).await,
        Err(StorageError::InvalidInput { what: "time", .. })
    ));
}
