//! One byte stream type for plain TCP and both TLS directions.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Which end of a connection a socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The dialling (writing) end.
    Dialled,
    /// The accepting (reading) end.
    Accepted,
}

/// Low latency and dead-peer detection for every connection: no Nagle delay, and TCP
/// keepalive probes when `keepalive` is set. With `backlog`, the kernel holds at most
/// about that many bytes of the connection: the dialled end keeps at most `backlog`
/// unsent bytes (`TCP_NOTSENT_LOWAT`, Linux) and the accepting end receives into a
/// buffer of `backlog` bytes, so frames wait in the transport's queue, where a small
/// frame can still pass a chunked large one, instead of in kernel buffers, where it
/// cannot.
pub(crate) fn tune(
    tcp: &TcpStream,
    keepalive: Option<std::time::Duration>,
    backlog: Option<usize>,
    end: End,
) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    if let Some(bytes) = backlog {
        let sock = socket2::SockRef::from(tcp);
        match end {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            End::Dialled => sock.set_tcp_notsent_lowat(u32::try_from(bytes).unwrap_or(u32::MAX))?,
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            End::Dialled => sock.set_send_buffer_size(bytes)?,
            End::Accepted => sock.set_recv_buffer_size(bytes)?,
        }
    }
    if let Some(idle) = keepalive {
        let params = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval((idle / 2).max(std::time::Duration::from_secs(1)))
            .with_retries(3);
        socket2::SockRef::from(tcp).set_tcp_keepalive(&params)?;
    }
    Ok(())
}

/// A connection's byte stream: plain TCP, TLS as client or server, or a connection
/// through a broker ([`Link::Broker`](super::Link::Broker)).
///
/// An enum rather than `Box<dyn ...>` keeps the plain-TCP path free of dynamic dispatch;
/// every variant is `Unpin`, so delegation needs no pin projection.
pub(crate) enum Stream {
    Plain(TcpStream),
    TlsClient(Box<crate::tls::ClientStream>),
    TlsServer(Box<crate::tls::ServerStream>),
    Broker(tokio::io::DuplexStream),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => $e,
            Stream::TlsClient($s) => $e,
            Stream::TlsServer($s) => $e,
            Stream::Broker($s) => $e,
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
            Stream::Broker(s) => s.is_write_vectored(),
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
        tune(
            &tcp,
            Some(Duration::from_secs(10)),
            Some(64 * 1024),
            End::Dialled,
        )
        .unwrap();
        let sock = socket2::SockRef::from(&tcp);
        assert!(tcp.nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(10));
        #[cfg(target_os = "linux")]
        assert_eq!(sock.tcp_notsent_lowat().unwrap(), 64 * 1024);
        let plain = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        tune(&plain, None, None, End::Accepted).unwrap();
        assert!(!socket2::SockRef::from(&plain).keepalive().unwrap());
    }
}
