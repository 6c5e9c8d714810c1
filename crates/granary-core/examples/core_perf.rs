//! A quick release-mode check of the runtime's hot paths (granary only; the
//! comparison with other frameworks is `granary-bench local`).
//!
//! `cargo run --release -p granary-actors --example core_perf`
use std::time::Instant;

use granary_core::prelude::*;
use tokio::sync::oneshot;

struct Count(u64);
impl Message for Count {
    type Reply = ();
}
struct Counter {
    n: u64,
    sum: u64,
    expected: u64,
    done: Option<oneshot::Sender<()>>,
}
impl Actor for Counter {}
impl Handler<Count> for Counter {
    async fn handle(&mut self, c: Count, _ctx: &mut Context<Self>) {
        self.n += 1;
        self.sum = self.sum.wrapping_add(c.0);
        if self.n == self.expected {
            if let Some(d) = self.done.take() {
                let _ = d.send(());
            }
        }
    }
}

struct Q(u64);
impl Message for Q {
    type Reply = u64;
}
struct Responder;
impl Actor for Responder {}
impl Handler<Q> for Responder {
    async fn handle(&mut self, q: Q, _ctx: &mut Context<Self>) -> u64 {
        q.0 + 1
    }
}

struct Ball(u64);
impl Message for Ball {
    type Reply = ();
}
struct Player {
    other: Option<ActorRef<Player>>,
    done: Option<oneshot::Sender<()>>,
}
impl Actor for Player {}
impl Handler<Ball> for Player {
    async fn handle(&mut self, b: Ball, _ctx: &mut Context<Self>) {
        if b.0 == 0 {
            if let Some(d) = self.done.take() {
                let _ = d.send(());
            }
        } else if let Some(o) = &self.other {
            let _ = o.tell(Ball(b.0 - 1));
        }
    }
}
struct SetOther(ActorRef<Player>);
impl Message for SetOther {
    type Reply = ();
}
impl Handler<SetOther> for Player {
    async fn handle(&mut self, m: SetOther, _ctx: &mut Context<Self>) {
        self.other = Some(m.0);
    }
}

fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.trim().strip_suffix("kB"))
        .and_then(|k| k.trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

async fn tell(n: u64, senders: u64) -> f64 {
    let system = ActorSystem::new();
    let (tx, rx) = oneshot::channel();
    let c = system.spawn(Counter {
        n: 0,
        sum: 0,
        expected: n,
        done: Some(tx),
    });
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / senders {
                let _ = c.tell(Count(i));
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let produced = t0.elapsed();
    let _ = rx.await;
    if std::env::var_os("CORE_PERF_DETAIL").is_some() {
        eprintln!(
            "  producers done after {produced:?}, consumer after {:?}",
            t0.elapsed()
        );
    }
    let r = n as f64 / t0.elapsed().as_secs_f64();
    system.shutdown().await;
    r
}

async fn pingpong(n: u64) -> f64 {
    let system = ActorSystem::new();
    let (tx, rx) = oneshot::channel();
    let a = system.spawn(Player {
        other: None,
        done: Some(tx),
    });
    let b = system.spawn(Player {
        other: Some(a.clone()),
        done: None,
    });
    let _ = a.ask(SetOther(b.clone())).await;
    let t0 = Instant::now();
    let _ = a.tell(Ball(2 * n));
    let _ = rx.await;
    let r = n as f64 / t0.elapsed().as_secs_f64();
    system.shutdown().await;
    r
}

async fn spawn(n: u64) -> (f64, f64) {
    let system = ActorSystem::new();
    let before = rss();
    let t0 = Instant::now();
    let refs: Vec<_> = (0..n).map(|_| system.spawn(Responder)).collect();
    let t_spawned = t0.elapsed();
    let mut set = futures::stream::FuturesUnordered::new();
    for (i, r) in refs.iter().enumerate() {
        set.push(async move { r.ask(Q(i as u64)).await });
    }
    use futures::StreamExt;
    while set.next().await.is_some() {}
    drop(set);
    let idle = rss();
    let t_asked = t0.elapsed();
    for r in &refs {
        r.stop();
    }
    for r in &refs {
        r.wait_stopped().await;
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    eprintln!(
        "spawned {t_spawned:?} asked {t_asked:?} stopped {:?}",
        t0.elapsed()
    );
    system.shutdown().await;
    (rate, (idle - before) as f64 / n as f64)
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).collect();
    for _ in 0..3 {
        let which = which.clone();
        let want = move |t: &str| which.is_empty() || which.iter().any(|w| w == t);
        let rt = if std::env::var_os("CORE_PERF_SINGLE").is_some() {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
        };
        rt.block_on(async {
            tokio::spawn(async move {
                if want("tell") {
                    println!("tell      {:>12.0} msgs/s", tell(2_000_000, 1).await);
                }
                if want("pingpong") {
                    println!("pingpong  {:>12.0} rt/s", pingpong(200_000).await);
                }
                if want("fanin") {
                    println!("fanin     {:>12.0} msgs/s", tell(2_000_000, 8).await);
                }
                if want("spawn") {
                    let (rate, bytes) = spawn(100_000).await;
                    println!("spawn     {rate:>12.0} actors/s {bytes:>8.0} bytes/actor");
                }
            })
            .await
            .expect("bench task");
        });
    }
}
