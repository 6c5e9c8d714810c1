//! The blocking floor: `std::net` sockets between the two processes, one OS thread
//! per connection on each side, no runtime, no actors.
//!
//! The tokio floor ([`super::raw`]) pays for its runtime on every round trip: the
//! socket turns readable on a worker's I/O driver, which wakes the task that
//! waits for it, often on another thread. A blocking `read` is woken by the kernel
//! directly; this is the lowest round trip two processes get on this machine,
//! and the floor issue 18 measures granary against.
//!
//! The frames and modes are [`super::raw`]'s: a `u32` little-endian length and
//! that many bytes; a connection opens with `E` (echo every frame back at once) or
//! `O` (count frames, print `done` when the count the parent expects is reached).
//! A frame goes out in one `write` (length and body in one buffer), so an echo is
//! one `read`-`write` pair on each side when the frame fits the socket buffers.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::latency::Latencies;

use super::node::Expected;
use super::peer::Peer;
use super::{Framework, Job, Measured, RemoteError, Sizes, Test, MAX_LATENCY};

const FRAMEWORK: Framework = Framework::StdTcp;
const ECHO: u8 = b'E';
const ONEWAY: u8 = b'O';

/// Buffer size of the one-way stream's reader and writer (as the tokio floor's).
const STREAM_BUFFER: usize = 256 * 1024;

/// Round trips before a `pingpong` measurement starts, as for the other rows.
const WARMUP_ROUND_TRIPS: u64 = 200;

fn io(operation: &'static str) -> impl Fn(std::io::Error) -> RemoteError {
    move |source| RemoteError::RawIo { operation, source }
}

/// Listens on 127.0.0.1 on a thread of its own and prints `listening ADDR`; each
/// connection gets its own thread. The threads end with the process (the peer
/// exits when its stdin closes).
pub(crate) fn serve(expected: Arc<Expected>) -> Result<(), RemoteError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind"))?;
    let addr = listener.local_addr().map_err(io("local address"))?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let expected = expected.clone();
            std::thread::spawn(move || {
                if let Err(err) = serve_connection(stream, &expected) {
                    eprintln!("std-tcp peer: connection failed: {err}");
                }
            });
        }
    });
    println!("listening {addr}");
    Ok(())
}

/// Reads one frame into `body`; `None` at a clean end of stream.
fn read_frame(read: &mut impl Read, body: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut len = [0u8; 4];
    match read.read_exact(&mut len) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_le_bytes(len) as usize;
    body.resize(4 + len, 0);
    read.read_exact(&mut body[4..])?;
    Ok(Some(len))
}

fn serve_connection(stream: TcpStream, expected: &Expected) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut write = stream.try_clone()?;
    let mut read = BufReader::with_capacity(STREAM_BUFFER, stream);
    let mut mode = [0u8];
    read.read_exact(&mut mode)?;
    // The frame as it came, length prefix included, so the echo is one write.
    let mut frame = Vec::new();
    let mut seen = 0u64;
    while let Some(len) = read_frame(&mut read, &mut frame)? {
        if mode[0] == ECHO {
            frame[..4].copy_from_slice(&(len as u32).to_le_bytes());
            write.write_all(&frame)?;
        } else {
            seen += 1;
            if seen == expected.get() {
                seen = 0;
                println!("done");
            }
        }
    }
    Ok(())
}

/// The measuring side: one std-tcp peer process for all its jobs.
pub(crate) struct Session {
    peer: Option<(Peer, SocketAddr)>,
}

impl Session {
    /// No peer yet.
    pub(crate) fn idle() -> Self {
        Self { peer: None }
    }

    /// Stops the peer.
    pub(crate) fn close(&mut self) {
        self.peer = None;
    }

    /// Measures one job on a blocking thread (`pairs` has no equivalent).
    pub(crate) async fn measure(
        &mut self,
        job: &Job,
        sizes: &Sizes,
    ) -> Result<Measured, RemoteError> {
        if self.peer.is_none() {
            let args = ["--framework", FRAMEWORK.name()];
            self.peer = Some(super::peer::start_remote_node("the std-tcp peer", args).await?);
        }
        let Some((peer, addr)) = self.peer.as_mut() else {
            return Err(RemoteError::framework(
                FRAMEWORK,
                "start the peer",
                "no peer",
            ));
        };
        let (addr, job_copy, timeout) = (*addr, *job, sizes.timeout);
        // The blocking calls run on a thread of their own, never on a runtime worker.
        let blocking = |work: fn(SocketAddr, Job, Duration) -> Result<Measured, RemoteError>| {
            tokio::task::spawn_blocking(move || work(addr, job_copy, timeout))
        };
        let joined = |e: tokio::task::JoinError| RemoteError::framework(FRAMEWORK, "join", e);
        match job.test {
            Test::Pingpong => blocking(pingpong).await.map_err(joined)?,
            Test::Oneway => {
                peer.send(&format!("expect {}", job.count))?;
                peer.expect("ready", timeout).await?;
                let start = Instant::now();
                blocking(oneway).await.map_err(joined)??;
                peer.expect("done", timeout).await?;
                Ok(Measured {
                    seconds: start.elapsed().as_secs_f64(),
                    messages: job.count,
                    ..Measured::default()
                })
            }
            Test::Pairs => Err(RemoteError::framework(
                FRAMEWORK,
                "pairs",
                "no std-tcp equivalent",
            )),
        }
    }
}

/// Connects, with `TCP_NODELAY` and reads that fail after `timeout` (a lost frame
/// fails the run instead of hanging it).
fn connect(addr: SocketAddr, mode: u8, timeout: Duration) -> Result<TcpStream, RemoteError> {
    let mut stream = TcpStream::connect(addr).map_err(io("connect"))?;
    stream.set_nodelay(true).map_err(io("set TCP_NODELAY"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io("set the read timeout"))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(io("set the write timeout"))?;
    stream.write_all(&[mode]).map_err(io("write the mode"))?;
    Ok(stream)
}

fn pingpong(addr: SocketAddr, job: Job, timeout: Duration) -> Result<Measured, RemoteError> {
    let mut write = connect(addr, ECHO, timeout)?;
    let mut read = BufReader::new(write.try_clone().map_err(io("clone the socket"))?);
    let mut frame = (job.payload as u32).to_le_bytes().to_vec();
    frame.resize(4 + job.payload, 0x42);
    let mut back = Vec::with_capacity(frame.len());
    let mut round_trip = || -> Result<(), RemoteError> {
        write.write_all(&frame).map_err(io("write"))?;
        match read_frame(&mut read, &mut back).map_err(io("read"))? {
            Some(len) if len == job.payload => Ok(()),
            got => Err(RemoteError::RawIo {
                operation: "read the echo",
                source: std::io::Error::other(format!("{got:?} B back for {} B", job.payload)),
            }),
        }
    };
    for _ in 0..WARMUP_ROUND_TRIPS.min(job.count) {
        round_trip()?;
    }
    let mut latencies = Latencies::new(MAX_LATENCY)?;
    let start = Instant::now();
    for _ in 0..job.count {
        let t0 = Instant::now();
        round_trip()?;
        latencies.record(t0.elapsed());
    }
    Ok(Measured {
        seconds: start.elapsed().as_secs_f64(),
        messages: latencies.len(),
        latency_us: Some(latencies.summary_us()),
        ..Measured::default()
    })
}

fn oneway(addr: SocketAddr, job: Job, timeout: Duration) -> Result<Measured, RemoteError> {
    let stream = connect(addr, ONEWAY, timeout)?;
    let mut write = BufWriter::with_capacity(STREAM_BUFFER, stream);
    let mut frame = (job.payload as u32).to_le_bytes().to_vec();
    frame.resize(4 + job.payload, 0x42);
    for _ in 0..job.count {
        write.write_all(&frame).map_err(io("write"))?;
    }
    write.flush().map_err(io("flush"))?;
    Ok(Measured::default())
}
