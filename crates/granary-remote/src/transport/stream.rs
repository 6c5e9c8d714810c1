//! One byte stream type for plain TCP and both TLS directions.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Low latency and dead-peer detection for every connection: no Nagle delay, and TCP
/// keepalive probes when `keepalive` is set.
pub(crate) fn tune(tcp: &TcpStream, keepalive: Option<std::time::Duration>) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    if let Some(idle) = keepalive {
        let params = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval((idle / 2).max(std::time::Duration::from_secs(1)))
            .with_retries(3);
        socket2::SockRef::from(tcp).set_tcp_keepalive(&params)?;
    }
    Ok(())
}

/// A connection's byte stream: plain TCP, or TLS as client or server.
///
/// An enum rather than `Box<dyn ...>` keeps the plain-TCP path free of dynamic dispatch;
/// every variant is `Unpin`, so delegation needs no pin projection.
pub(crate) enum Stream {
    Plain(TcpStream),
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => $e,
            Stream::TlsClient($s) => $e,
            Stream::TlsServer($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::TlsClient(s) => s.is_write_vectored(),
            Stream::TlsServer(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn tuned_sockets_have_nodelay_and_keepalive_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        tune(&tcp, Some(Duration::from_secs(10))).unwrap();
        let sock = socket2::SockRef::from(&tcp);
        assert!(tcp.nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(10));
        let plain = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        tune(&plain, None).unwrap();
        assert!(!socket2::SockRef::from(&plain).keepalive().unwrap());
    }
}
