//! TLS with mutual authentication from a cluster CA (rustls).
//!
//! Every node holds a certificate signed by the cluster CA and trusts only that CA, both
//! as a server (client certificates are *required*) and as a client. A peer without a
//! certificate from the CA fails the TLS handshake and never reaches the granary
//! handshake, so it cannot deliver a single frame.
//!
//! Behind the `tls` feature (default). Without it [`TlsConfig`] still exists, but a
//! transport given one refuses to start with [`TlsConfigError::Disabled`], and no
//! TLS code (rustls, ring) is compiled.

#[cfg(not(feature = "tls"))]
pub(crate) use disabled::{ClientStream, ServerStream, Tls};
#[cfg(feature = "tls")]
pub(crate) use enabled::{ClientStream, ServerStream, Tls};

/// PEM inputs for TLS: the cluster CA, this node's certificate chain and private key.
///
/// ```no_run
/// // no_run: needs real PEM files.
/// let tls = granary_remote::TlsConfig {
///     ca_pem: std::fs::read_to_string("ca.pem").unwrap(),
///     cert_pem: std::fs::read_to_string("node.pem").unwrap(),
///     key_pem: std::fs::read_to_string("node.key").unwrap(),
///     server_name: Some("granary.cluster".into()),
/// };
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    /// The cluster CA certificate(s), PEM.
    pub ca_pem: String,
    /// This node's certificate chain, PEM (leaf first).
    pub cert_pem: String,
    /// This node's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
    /// The name every node's certificate carries (a DNS name or an IP address). `None`
    /// verifies the peer's certificate against the IP address it was dialled at.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
mod enabled {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;
    use tokio::net::TcpStream;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::TlsConfig;
    use crate::error::TlsConfigError;

    /// A TLS connection this node dialled.
    pub(crate) type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;
    /// A TLS connection this node accepted.
    pub(crate) type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

    /// Ready-to-use TLS acceptor and connector built from a [`TlsConfig`].
    #[derive(Clone)]
    pub(crate) struct Tls {
        pub(crate) acceptor: TlsAcceptor,
        pub(crate) connector: TlsConnector,
        server_name: Option<ServerName<'static>>,
    }

    impl Tls {
        pub(crate) fn new(config: &TlsConfig) -> Result<Self, TlsConfigError> {
            // ring, not aws-lc-rs: no C toolchain and a smaller build. rustls 0.23.48
            // deprecates ring's provider because it has no post-quantum key exchange;
            // the classical groups it offers (X25519, P-256, P-384) are what granary
            // documents (`docs/config.md`, TLS).
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(config.ca_pem.as_bytes()) {
                let cert = cert.map_err(|e| pem_err("ca_pem", e))?;
                roots.add(cert)?;
            }
            if roots.is_empty() {
                return Err(TlsConfigError::Pem {
                    what: "ca_pem",
                    reason: "no certificate found".into(),
                });
            }
            let roots = Arc::new(roots);
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(config.cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| pem_err("cert_pem", e))?;
            if chain.is_empty() {
                return Err(TlsConfigError::Pem {
                    what: "cert_pem",
                    reason: "no certificate found".into(),
                });
            }
            let key = PrivateKeyDer::from_pem_slice(config.key_pem.as_bytes())
                .map_err(|e| pem_err("key_pem", e))?;

            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .build()
                    .map_err(|e| TlsConfigError::Verifier(e.to_string()))?;
            let server = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain.clone(), key.clone_key())?;
            let client = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)?;
            let server_name = match &config.server_name {
                Some(name) => Some(
                    ServerName::try_from(name.clone())
                        .map_err(|_| TlsConfigError::ServerName(name.clone()))?,
                ),
                None => None,
            };
            Ok(Self {
                acceptor: TlsAcceptor::from(Arc::new(server)),
                connector: TlsConnector::from(Arc::new(client)),
                server_name,
            })
        }

        /// The name to verify a peer dialled at `addr` against.
        pub(crate) fn server_name_for(&self, addr: SocketAddr) -> ServerName<'static> {
            self.server_name
                .clone()
                .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
        }
    }

    fn pem_err(what: &'static str, e: rustls::pki_types::pem::Error) -> TlsConfigError {
        TlsConfigError::Pem {
            what,
            reason: format!("{e:?}"),
        }
    }
}

/// Without the `tls` feature: the same names, no TLS code; [`Tls::new`] always fails, so
/// a transport never holds a `Tls` and the stream types below never exist.
#[cfg(not(feature = "tls"))]
mod disabled {
    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::TcpStream;

    use super::TlsConfig;
    use crate::error::TlsConfigError;

    /// A TLS stream that cannot exist in a build without TLS.
    pub(crate) enum NoTls {}

    pub(crate) type ClientStream = NoTls;
    pub(crate) type ServerStream = NoTls;

    impl AsyncRead for NoTls {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match *self.get_mut() {}
        }
    }

    impl AsyncWrite for NoTls {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            match *self.get_mut() {}
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            match *self.get_mut() {}
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            match *self.get_mut() {}
        }
    }

    /// Stands in for a TLS server name.
    pub(crate) struct NoName;

    /// Stands in for the acceptor and connector; never constructed.
    #[derive(Clone)]
    pub(crate) struct Never(NoTls);

    impl Never {
        pub(crate) async fn accept(&self, _: TcpStream) -> io::Result<NoTls> {
            match self.0 {}
        }
        pub(crate) async fn connect(&self, _: NoName, _: TcpStream) -> io::Result<NoTls> {
            match self.0 {}
        }
    }

    impl Clone for NoTls {
        fn clone(&self) -> Self {
            match *self {}
        }
    }

    /// TLS in a build without the `tls` feature: cannot be created.
    #[derive(Clone)]
    pub(crate) struct Tls {
        pub(crate) acceptor: Never,
        pub(crate) connector: Never,
    }

    impl Tls {
        pub(crate) fn new(_: &TlsConfig) -> Result<Self, TlsConfigError> {
            Err(TlsConfigError::Disabled)
        }

        pub(crate) fn server_name_for(&self, _: SocketAddr) -> NoName {
            NoName
        }
    }
}
