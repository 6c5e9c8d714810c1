//! The physical limit: plain tokio TCP between the two processes, no actors.
//!
//! Frames are a little-endian `u32` length and that many bytes, the same sizes
//! granary's payloads have. A connection opens with one mode byte: `E` echoes
//! every frame back at once (pingpong), `O` counts frames and prints `done` when
//! the count the parent expects is reached (oneway).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::latency::Latencies;

use super::node::Expected;
use super::peer::Peer;
use super::{Job, Measured, RemoteError, Sizes, Test, MAX_LATENCY};

const ECHO: u8 = b'E';
const ONEWAY: u8 = b'O';

/// Buffer size of the one-way stream's reader and writer.
const STREAM_BUFFER: usize = 256 * 1024;

fn io(operation: &'static str) -> impl Fn(std::io::Error) -> RemoteError {
    move |source| RemoteError::RawIo { operation, source }
}

/// The listener task; aborted on drop.
pub(crate) struct Server {
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on 127.0.0.1 and prints `listening ADDR`.
pub(crate) async fn serve(expected: Arc<Expected>) -> Result<Server, RemoteError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io("bind"))?;
    let addr = listener.local_addr().map_err(io("local address"))?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let expected = expected.clone();
            tokio::spawn(async move {
                if let Err(err) = serve_connection(stream, expected).await {
                    eprintln!("raw-tcp peer: connection failed: {err}");
                }
            });
        }
    });
    println!("listening {addr}");
    Ok(Server { task })
}

async fn serve_connection(stream: TcpStream, expected: Arc<Expected>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut read = BufReader::with_capacity(STREAM_BUFFER, read);
    let mut write = BufWriter::new(write);
    let mode = read.read_u8().await?;
    let mut body = Vec::new();
    let mut seen = 0u64;
    loop {
        let len = match read.read_u32_le().await {
            Ok(len) => len as usize,
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err),
        };
        body.resize(len, 0);
        read.read_exact(&mut body).await?;
        match mode {
            ECHO => {
                write.write_u32_le(len as u32).await?;
                write.write_all(&body).await?;
                write.flush().await?;
            }
            _ => {
                seen += 1;
                if seen == expected.get() {
                    seen = 0;
                    println!("done");
                }
            }
        }
    }
}

/// The measuring side: one raw peer process for all raw jobs.
pub(crate) struct Session {
    peer: Option<(Peer, SocketAddr)>,
    /// Start the peer on a current-thread runtime.
    current_thread: bool,
}

impl Session {
    /// No peer yet.
    pub(crate) fn idle() -> Self {
        Self::idle_with(false)
    }

    /// No peer yet; the peer will run on a current-thread runtime if asked.
    pub(crate) fn idle_with(current_thread: bool) -> Self {
        Self {
            peer: None,
            current_thread,
        }
    }

    /// Stops the peer.
    pub(crate) fn close(&mut self) {
        self.peer = None;
    }

    /// Measures one job (`pairs` has no raw equivalent).
    pub(crate) async fn measure(
        &mut self,
        job: &Job,
        sizes: &Sizes,
    ) -> Result<Measured, RemoteError> {
        if self.peer.is_none() {
            let mut args = vec!["--framework", "raw-tcp"];
            if self.current_thread {
                args.push("--current-thread");
            }
            self.peer = Some(super::peer::start_remote_node("the raw-tcp peer", args).await?);
        }
        let Some((peer, addr)) = self.peer.as_mut() else {
            return Err(RemoteError::framework(
                super::Framework::RawTcp,
                "start the peer",
                "no peer",
            ));
        };
        let timeout = sizes.timeout;
        let timed_out = |_| RemoteError::Timeout {
            framework: super::Framework::RawTcp,
            test: job.test,
            after: timeout,
        };
        match job.test {
            Test::Pingpong => tokio::time::timeout(timeout, pingpong(*addr, job))
                .await
                .map_err(timed_out)?,
            Test::Oneway => {
                peer.send(&format!("expect {}", job.count))?;
                peer.expect("ready", timeout).await?;
                let start = Instant::now();
                tokio::time::timeout(timeout, oneway(*addr, job))
                    .await
                    .map_err(timed_out)??;
                peer.expect("done", timeout).await?;
                Ok(Measured {
                    seconds: start.elapsed().as_secs_f64(),
                    messages: job.count,
                    ..Measured::default()
                })
            }
            Test::Pairs => Err(RemoteError::framework(
                super::Framework::RawTcp,
                "pairs",
                "no raw equivalent",
            )),
        }
    }
}

async fn connect(addr: SocketAddr, mode: u8) -> Result<TcpStream, RemoteError> {
    let mut stream = TcpStream::connect(addr).await.map_err(io("connect"))?;
    stream.set_nodelay(true).map_err(io("set TCP_NODELAY"))?;
    stream.write_u8(mode).await.map_err(io("write the mode"))?;
    Ok(stream)
}

async fn pingpong(addr: SocketAddr, job: &Job) -> Result<Measured, RemoteError> {
    let stream = connect(addr, ECHO).await?;
    let (read, write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut write = BufWriter::new(write);
    let body = vec![0x42u8; job.payload];
    let mut back = vec![0u8; job.payload];
    let mut round_trip = async || -> Result<(), RemoteError> {
        write
            .write_u32_le(body.len() as u32)
            .await
            .map_err(io("write"))?;
        write.write_all(&body).await.map_err(io("write"))?;
        write.flush().await.map_err(io("flush"))?;
        let len = read.read_u32_le().await.map_err(io("read"))? as usize;
        if len != body.len() {
            return Err(RemoteError::RawIo {
                operation: "read the echo",
                source: std::io::Error::other(format!("{len} B back for {} B", body.len())),
            });
        }
        read.read_exact(&mut back).await.map_err(io("read"))?;
        Ok(())
    };
    for _ in 0..job.count.min(200) {
        round_trip().await?;
    }
    let mut latencies = Latencies::new(MAX_LATENCY)?;
    let start = Instant::now();
    for _ in 0..job.count {
        let t0 = Instant::now();
        round_trip().await?;
        latencies.record(t0.elapsed());
    }
    Ok(Measured {
        seconds: start.elapsed().as_secs_f64(),
        messages: latencies.len(),
        latency_us: Some(latencies.summary_us()),
        ..Measured::default()
    })
}

async fn oneway(addr: SocketAddr, job: &Job) -> Result<(), RemoteError> {
    let stream = connect(addr, ONEWAY).await?;
    let mut write = BufWriter::with_capacity(STREAM_BUFFER, stream);
    let body = vec![0x42u8; job.payload];
    for _ in 0..job.count {
        write
            .write_u32_le(body.len() as u32)
            .await
            .map_err(io("write"))?;
        write.write_all(&body).await.map_err(io("write"))?;
    }
    write.flush().await.map_err(io("flush"))?;
    Ok(())
}
