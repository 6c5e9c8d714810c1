//! DNS discovery: A/AAAA or SRV records, e.g. those of a Kubernetes headless Service.
//!
//! Uses `hickory-resolver` so the name server can be chosen explicitly (tests point it at
//! a local dnsmasq; in a pod the system configuration is used).

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};

use super::MembershipProvider;
use crate::error::ProviderError;

/// Which records name the members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsRecordKind {
    /// A/AAAA records; every address listens on `port`.
    A {
        /// The cluster port of every member.
        port: u16,
    },
    /// SRV records carry each member's target host and port.
    Srv,
}

/// Discovers members by resolving a DNS name.
pub struct DnsProvider {
    name: String,
    kind: DnsRecordKind,
    resolver: TokioResolver,
}

impl DnsProvider {
    /// Resolves `name` through `name_server`, or through the system configuration
    /// (`/etc/resolv.conf`) when `None`. Answers are not cached, so scaling shows at once.
    pub fn new(
        name: impl Into<String>,
        kind: DnsRecordKind,
        name_server: Option<SocketAddr>,
    ) -> Result<Self, ProviderError> {
        let name = name.into();
        let mut builder = match name_server {
            Some(server) => {
                let group =
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], group),
                    TokioConnectionProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(|e| dns_error(&name, e))?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        Ok(Self {
            name,
            kind,
            resolver: builder.build(),
        })
    }
}

fn dns_error(name: &str, error: ResolveError) -> ProviderError {
    ProviderError::Dns {
        name: name.to_string(),
        source: Box::new(error),
    }
}

#[async_trait]
impl MembershipProvider for DnsProvider {
    async fn discover(&self) -> Result<Vec<SocketAddr>, ProviderError> {
        let mut out = Vec::new();
        match self.kind {
            DnsRecordKind::A { port } => match self.resolver.lookup_ip(self.name.as_str()).await {
                Ok(ips) => out.extend(ips.iter().map(|ip| SocketAddr::new(ip, port))),
                // No records yet (for example the first pod of a StatefulSet): nobody to ask.
                Err(e) if e.is_no_records_found() => {}
                Err(e) => return Err(dns_error(&self.name, e)),
            },
            DnsRecordKind::Srv => {
                let srv = match self.resolver.srv_lookup(self.name.as_str()).await {
                    Ok(srv) => srv,
                    Err(e) if e.is_no_records_found() => return Ok(out),
                    Err(e) => return Err(dns_error(&self.name, e)),
                };
                for record in srv.iter() {
                    let target = record.target().to_utf8();
                    match self.resolver.lookup_ip(target.as_str()).await {
                        Ok(ips) => {
                            out.extend(ips.iter().map(|ip| SocketAddr::new(ip, record.port())))
                        }
                        Err(e) if e.is_no_records_found() => {}
                        Err(e) => return Err(dns_error(&target, e)),
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}
