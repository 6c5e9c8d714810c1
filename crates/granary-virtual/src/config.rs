//! [`NodeConfig`] and [`ClientConfig`]: every setting a deployment needs, as plain data.
//!
//! Both are `serde` types, so they load from a TOML file ([`NodeConfig::from_file`])
//! and from the environment ([`NodeConfig::from_env`]: one `GRANARY_…` variable per
//! field, listed in [`NODE_ENV`] / [`CLIENT_ENV`] and in `docs/config.md`). Sources
//! layer: defaults, then the file, then the environment ([`NodeConfig::load`]). The
//! builders take a config ([`NodeBuilder::from_config`](crate::NodeBuilder::from_config),
//! [`ClientBuilder::from_config`](crate::ClientBuilder::from_config)) and their methods
//! change single settings on top of it.
//!
//! Why serde + `toml` + a small environment layer instead of a configuration crate
//! (`figment`, `config`): every field has exactly one documented variable name, with
//! lists written the way operators write them in a manifest (`a:1,b:2`); the explicit
//! table below is that documentation in code (a test checks `docs/config.md` against
//! it), where a generic crate would derive names from the nesting and need its own
//! conventions for lists and maps. Durations are whole milliseconds (`…_ms`), so no
//! duration syntax needs parsing.
//!
//! Nothing is resolved or read while loading: DNS names (advertise address, seeds) are
//! resolved and TLS files read when the node starts, and failures there are
//! [`ConfigError`]s too.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The development secret every node and client uses unless told otherwise. A node
/// or client bound to (or advertising) a non-loopback address refuses to start with
/// it ([`ConfigError::DefaultSecret`]).
pub const DEFAULT_SECRET: &str = "granary-dev-secret";

/// Why a configuration could not be loaded or used.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum ConfigError {
    /// An environment variable's value does not parse.
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration file cannot be read or does not parse.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The built-in development secret on an address other hosts can reach.
    #[error(
        "the built-in development cluster secret is refused on {addr} (not loopback): \
         set GRANARY_CLUSTER_SECRET (or `cluster_secret` in the config file)"
    )]
    DefaultSecret {
        /// The non-loopback bind or advertise address.
        addr: IpAddr,
    },
    /// A host name (advertise address, seed) did not resolve.
    #[error("cannot resolve {name:?} ({what}): {reason}")]
    Resolve {
        /// Which setting held the name.
        what: &'static str,
        /// The name.
        name: String,
        /// The resolver's answer.
        reason: String,
    },
    /// A TLS certificate or key file cannot be read, or TLS settings are incomplete.
    #[error("tls {what}: {reason}")]
    Tls {
        /// Which input.
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A setting's value is not allowed (or settings contradict each other).
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The setting needs a cargo feature this build was compiled without.
    #[error("{what} needs the `{feature}` feature, which this build does not have")]
    FeatureDisabled {
        /// The setting.
        what: &'static str,
        /// The cargo feature of `granary-virtual` (and the facade).
        feature: &'static str,
    },
}

/// The cluster secret: serialized as text, never printed by `Debug`. Set from code it
/// may be any bytes; a file or the environment gives text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    /// The secret's bytes, for the handshake.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether this is [`DEFAULT_SECRET`].
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_SECRET.as_bytes()
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => Err(serde::ser::Error::custom(
                "a cluster secret that is not UTF-8 cannot be written as text",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Secret(s.into_bytes()))
    }
}

impl Default for Secret {
    fn default() -> Self {
        Self(DEFAULT_SECRET.as_bytes().to_vec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_default() {
            "Secret(<default>)"
        } else {
            "Secret(<redacted>)"
        })
    }
}

/// Mutual TLS between nodes and clients (rustls). On when any certificate input is
/// set; then the CA, the certificate and the key must all be given, each either as a
/// file or as PEM text.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// File of the cluster CA certificate(s), PEM.
    pub ca_file: Option<PathBuf>,
    /// File of this process's certificate chain, PEM (leaf first).
    pub cert_file: Option<PathBuf>,
    /// File of this process's private key, PEM.
    pub key_file: Option<PathBuf>,
    /// The cluster CA as PEM text (instead of `ca_file`).
    pub ca_pem: Option<String>,
    /// The certificate chain as PEM text (instead of `cert_file`).
    pub cert_pem: Option<String>,
    /// The private key as PEM text (instead of `key_file`).
    pub key_pem: Option<String>,
    /// The name every member's certificate carries; unset, a peer's certificate is
    /// checked against the IP address it was dialled at.
    pub server_name: Option<String>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // PEM text may hold a private key: show only which inputs are set.
        f.debug_struct("TlsSettings")
            .field("enabled", &self.enabled())
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Whether any TLS input is set (TLS is then required).
    pub fn enabled(&self) -> bool {
        self.ca_file.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
            || self.ca_pem.is_some()
            || self.cert_pem.is_some()
            || self.key_pem.is_some()
    }

    /// Reads the files and returns the transport's TLS configuration; `None` when TLS
    /// is off.
    #[cfg(feature = "tls")]
    pub fn load(&self) -> Result<Option<granary_remote::TlsConfig>, ConfigError> {
        if !self.enabled() {
            return Ok(None);
        }
        fn pick(
            what: &'static str,
            file: &Option<PathBuf>,
            pem: &Option<String>,
        ) -> Result<String, ConfigError> {
            match (file, pem) {
                (Some(_), Some(_)) => Err(ConfigError::Tls {
                    what,
                    reason: "both a file and PEM text are set; set one".into(),
                }),
                (Some(path), None) => std::fs::read_to_string(path).map_err(|e| ConfigError::Tls {
                    what,
                    reason: format!("{}: {e}", path.display()),
                }),
                (None, Some(pem)) => Ok(pem.clone()),
                (None, None) => Err(ConfigError::Tls {
                    what,
                    reason: "missing (TLS is on because another TLS input is set)".into(),
                }),
            }
        }
        Ok(Some(granary_remote::TlsConfig {
            ca_pem: pick("ca", &self.ca_file, &self.ca_pem)?,
            cert_pem: pick("cert", &self.cert_file, &self.cert_pem)?,
            key_pem: pick("key", &self.key_file, &self.key_pem)?,
            server_name: self.server_name.clone(),
        }))
    }

    fn apply_env(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        env.opt("GRANARY_TLS_CA_FILE", &mut self.ca_file)?;
        env.opt("GRANARY_TLS_CERT_FILE", &mut self.cert_file)?;
        env.opt("GRANARY_TLS_KEY_FILE", &mut self.key_file)?;
        env.opt("GRANARY_TLS_CA_PEM", &mut self.ca_pem)?;
        env.opt("GRANARY_TLS_CERT_PEM", &mut self.cert_pem)?;
        env.opt("GRANARY_TLS_KEY_PEM", &mut self.key_pem)?;
        env.opt("GRANARY_TLS_SERVER_NAME", &mut self.server_name)?;
        Ok(())
    }
}

/// How a starting node finds the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// A few seed addresses (`seeds`); none forms a new cluster.
    #[default]
    Seeds,
    /// The complete, fixed member list (`seeds`).
    Static,
    /// DNS A or SRV records of `dns_name` (a Kubernetes headless Service).
    Dns,
    /// An Orleans-style membership table in PostgreSQL (`postgres`).
    Postgres,
    /// Members announced on the AMQP broker's membership exchange (seed 002 §3.6);
    /// needs `transport.link = "amqp"`, whose broker it uses.
    Amqp,
}

impl FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "seeds" => Ok(Self::Seeds),
            "static" => Ok(Self::Static),
            "dns" => Ok(Self::Dns),
            "postgres" => Ok(Self::Postgres),
            "amqp" => Ok(Self::Amqp),
            _ => Err("expected seeds, static, dns, postgres or amqp".into()),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Seeds => "seeds",
            Self::Static => "static",
            Self::Dns => "dns",
            Self::Postgres => "postgres",
            Self::Amqp => "amqp",
        })
    }
}

/// Which DNS records name the members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsRecord {
    /// A/AAAA records; every member listens on `dns_port`.
    #[default]
    A,
    /// SRV records carry each member's host and port.
    Srv,
}

impl FromStr for DnsRecord {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "a" | "A" => Ok(Self::A),
            "srv" | "SRV" => Ok(Self::Srv),
            _ => Err("expected a or srv".into()),
        }
    }
}

/// The membership provider and its settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MembershipSettings {
    /// Which provider. Default `seeds`.
    pub provider: ProviderKind,
    /// `host:port` of seeds (or, with `static`, every member); host names are resolved
    /// at start. Default none (form a new cluster).
    pub seeds: Vec<String>,
    /// The DNS name to resolve (`dns`).
    pub dns_name: Option<String>,
    /// A or SRV records (`dns`). Default `a`.
    pub dns_record: DnsRecord,
    /// The members' port for A records. Default: this node's advertised port.
    pub dns_port: Option<u16>,
    /// The name server to ask (`ip:port`). Default: the system's (`/etc/resolv.conf`).
    pub dns_server: Option<SocketAddr>,
    /// The PostgreSQL connection (`postgres`), as a URL or `key=value` string.
    pub postgres: Option<String>,
    /// Rows whose heartbeat is older than this are not offered as contacts. Default
    /// 30 000 ms.
    pub postgres_ttl_ms: u64,
}

impl Default for MembershipSettings {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Seeds,
            seeds: Vec::new(),
            dns_name: None,
            dns_record: DnsRecord::A,
            dns_port: None,
            dns_server: None,
            postgres: None,
            postgres_ttl_ms: 30_000,
        }
    }
}

impl MembershipSettings {
    fn apply_env(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        env.parse("GRANARY_MEMBERSHIP", &mut self.provider)?;
        env.list("GRANARY_SEEDS", &mut self.seeds)?;
        env.opt("GRANARY_DNS_NAME", &mut self.dns_name)?;
        env.parse("GRANARY_DNS_RECORD", &mut self.dns_record)?;
        env.opt("GRANARY_DNS_PORT", &mut self.dns_port)?;
        env.opt("GRANARY_DNS_SERVER", &mut self.dns_server)?;
        env.opt("GRANARY_MEMBERSHIP_POSTGRES", &mut self.postgres)?;
        env.parse(
            "GRANARY_MEMBERSHIP_POSTGRES_TTL_MS",
            &mut self.postgres_ttl_ms,
        )?;
        Ok(())
    }

    /// Checks that the chosen provider has what it needs (and is in this build).
    fn validate(&self) -> Result<(), ConfigError> {
        if self.provider == ProviderKind::Dns && cfg!(not(feature = "dns")) {
            return Err(ConfigError::FeatureDisabled {
                what: "the dns membership provider",
                feature: "dns",
            });
        }
        if self.provider == ProviderKind::Postgres && cfg!(not(feature = "postgres")) {
            return Err(ConfigError::FeatureDisabled {
                what: "the postgres membership provider",
                feature: "postgres",
            });
        }
        match self.provider {
            ProviderKind::Static if self.seeds.is_empty() => Err(ConfigError::Invalid {
                field: "membership.seeds",
                reason: "the static provider needs the member list".into(),
            }),
            ProviderKind::Dns if self.dns_name.is_none() => Err(ConfigError::Invalid {
                field: "membership.dns_name",
                reason: "the dns provider needs a name to resolve".into(),
            }),
            ProviderKind::Postgres if self.postgres.is_none() => Err(ConfigError::Invalid {
                field: "membership.postgres",
                reason: "the postgres provider needs a connection string".into(),
            }),
            _ => Ok(()),
        }
    }

    /// One line for the start-up log (no credentials).
    pub(crate) fn describe(&self) -> String {
        match self.provider {
            ProviderKind::Seeds | ProviderKind::Static => {
                format!("{} {:?}", self.provider, self.seeds)
            }
            ProviderKind::Dns => format!(
                "dns {:?} {:?}",
                self.dns_name.as_deref().unwrap_or(""),
                self.dns_record
            ),
            ProviderKind::Postgres => format!(
                "postgres {}",
                redact(self.postgres.as_deref().unwrap_or(""))
            ),
            ProviderKind::Amqp => "amqp (the transport's broker)".into(),
        }
    }
}

/// A user-named transport channel: `name` with `parallelism` connections per peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSetting {
    /// The channel's name.
    pub name: String,
    /// Connections per peer.
    pub parallelism: usize,
}

/// Transport settings (granary-remote's `TransportConfig`; its docs say what each does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportSettings {
    /// Parallel data connections per peer. Default 2.
    pub parallelism: usize,
    /// Pick the data connection by (sender, recipient) so pairs keep FIFO order.
    /// Default true.
    pub affinity: bool,
    /// Large data frames on a per-peer bulk lane. Default true.
    pub bulk_lane: bool,
    /// User-named channels. Default none.
    pub channels: Vec<ChannelSetting>,
    /// Bytes that may wait in one connection's queue. Default 16 MiB.
    pub queue_capacity: usize,
    /// Largest frame sent or accepted, bytes. Default 16 MiB.
    pub max_frame: u32,
    /// Heartbeat period on the control connection. Default 1 000 ms.
    pub heartbeat_interval_ms: u64,
    /// A peer silent this long is lost. Default 5 000 ms.
    pub heartbeat_timeout_ms: u64,
    /// Deadline for connect + TLS + handshake. Default 5 000 ms.
    pub handshake_timeout_ms: u64,
    /// How connections reach peers: `tcp` (default), or `amqp`: every connection
    /// through the AMQP broker at `amqp_url` (the publish-subscribe overlay,
    /// `docs/overlays.md`); the node then listens nowhere, and `advertise` (or `bind`,
    /// port 0 for a free name) only names it.
    pub link: LinkKind,
    /// The broker of `link = "amqp"`, as an AMQP URI
    /// (`amqp://user:password@host:5672/%2f`). Default none.
    pub amqp_url: Option<String>,
}

/// How a node's connections reach its peers ([`TransportSettings::link`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// TCP connections to the peers' addresses.
    #[default]
    Tcp,
    /// Through an AMQP broker (feature `amqp`).
    Amqp,
}

impl FromStr for LinkKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Self::Tcp),
            "amqp" => Ok(Self::Amqp),
            _ => Err("expected tcp or amqp".into()),
        }
    }
}

impl Default for TransportSettings {
    fn default() -> Self {
        let t = granary_remote::TransportConfig::new("", "");
        Self {
            parallelism: t.parallelism,
            affinity: t.affinity,
            bulk_lane: t.bulk_lane,
            channels: Vec::new(),
            queue_capacity: t.queue_capacity,
            max_frame: t.max_frame,
            heartbeat_interval_ms: t.heartbeat_interval.as_millis() as u64,
            heartbeat_timeout_ms: t.heartbeat_timeout.as_millis() as u64,
            handshake_timeout_ms: t.handshake_timeout.as_millis() as u64,
            link: LinkKind::Tcp,
            amqp_url: None,
        }
    }
}

impl TransportSettings {
    fn apply_env(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        env.parse("GRANARY_PARALLELISM", &mut self.parallelism)?;
        env.parse("GRANARY_AFFINITY", &mut self.affinity)?;
        env.parse("GRANARY_BULK_LANE", &mut self.bulk_lane)?;
        if let Some(value) = env.get("GRANARY_CHANNELS") {
            self.channels = parse_pairs(&value)
                .and_then(|pairs| {
                    pairs
                        .into_iter()
                        .map(|(name, p)| {
                            p.parse()
                                .map(|parallelism| ChannelSetting { name, parallelism })
                                .map_err(|e| format!("{p:?}: {e}"))
                        })
                        .collect()
                })
                .map_err(|reason| ConfigError::Env {
                    var: "GRANARY_CHANNELS",
                    value,
                    reason,
                })?;
        }
        env.parse("GRANARY_QUEUE_CAPACITY", &mut self.queue_capacity)?;
        env.parse("GRANARY_MAX_FRAME", &mut self.max_frame)?;
        env.parse(
            "GRANARY_HEARTBEAT_INTERVAL_MS",
            &mut self.heartbeat_interval_ms,
        )?;
        env.parse(
            "GRANARY_HEARTBEAT_TIMEOUT_MS",
            &mut self.heartbeat_timeout_ms,
        )?;
        env.parse(
            "GRANARY_HANDSHAKE_TIMEOUT_MS",
            &mut self.handshake_timeout_ms,
        )?;
        env.parse("GRANARY_LINK", &mut self.link)?;
        env.opt("GRANARY_AMQP_URL", &mut self.amqp_url)?;
        Ok(())
    }

    /// Checks that the chosen link has what it needs (and is in this build).
    fn validate(&self, tls: bool) -> Result<(), ConfigError> {
        if self.link != LinkKind::Amqp {
            return Ok(());
        }
        if cfg!(not(feature = "amqp")) {
            return Err(ConfigError::FeatureDisabled {
                what: "the amqp link",
                feature: "amqp",
            });
        }
        if self.amqp_url.is_none() {
            return Err(ConfigError::Invalid {
                field: "transport.amqp_url",
                reason: "the amqp link needs the broker's URL".into(),
            });
        }
        if tls {
            return Err(ConfigError::Invalid {
                field: "tls",
                reason: "TLS between nodes is not offered over the amqp link".into(),
            });
        }
        Ok(())
    }

    /// Applies these settings to a transport configuration.
    pub fn apply(&self, mut t: granary_remote::TransportConfig) -> granary_remote::TransportConfig {
        use std::time::Duration;
        t.parallelism = self.parallelism;
        t.affinity = self.affinity;
        t.bulk_lane = self.bulk_lane;
        for c in &self.channels {
            t = t.with_channel(c.name.clone(), c.parallelism);
        }
        t.queue_capacity = self.queue_capacity;
        t.max_frame = self.max_frame;
        t.heartbeat_interval = Duration::from_millis(self.heartbeat_interval_ms);
        t.heartbeat_timeout = Duration::from_millis(self.heartbeat_timeout_ms);
        t.handshake_timeout = Duration::from_millis(self.handshake_timeout_ms);
        t
    }
}

/// Which overlay a node runs (`docs/overlays.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverlayKind {
    /// Every member may dial every other (the default).
    #[default]
    FullMesh,
    /// Connections only to `overlay.peers`.
    Static,
    /// Clients connect only to servers (`overlay.role`).
    ClientServer,
    /// HyParView partial views with Plumtree broadcast.
    PeerToPeer,
}

impl FromStr for OverlayKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full-mesh" => Ok(Self::FullMesh),
            "static" => Ok(Self::Static),
            "client-server" => Ok(Self::ClientServer),
            "peer-to-peer" => Ok(Self::PeerToPeer),
            _ => Err("expected full-mesh, static, client-server or peer-to-peer".into()),
        }
    }
}

/// A node's role on the client-server overlay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverlayRole {
    /// Connects to the other servers and accepts clients (the default).
    #[default]
    Server,
    /// Connects only to servers.
    Client,
}

impl FromStr for OverlayRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "server" => Ok(Self::Server),
            "client" => Ok(Self::Client),
            _ => Err("expected server or client".into()),
        }
    }
}

/// The overlay: which members this node keeps connections to (`docs/overlays.md`).
/// Every member of a cluster must run the same kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverlaySettings {
    /// `full-mesh`, `static`, `client-server` or `peer-to-peer`. Default `full-mesh`.
    pub kind: OverlayKind,
    /// `static`: the `ip:port` of the members this node connects to (any other
    /// member through the first). Default none.
    pub peers: Vec<SocketAddr>,
    /// `client-server`: `server` or `client`. Default `server`.
    pub role: OverlayRole,
    /// `peer-to-peer`: the cluster size the views are sized for (active view
    /// ⌈log2 n⌉ + 1, at most 8; passive 6 × active). Default 64.
    pub expected_members: usize,
    /// `peer-to-peer`: the active view's size (the most connections a node keeps),
    /// replacing the one sized from `expected_members`; 0 keeps that one. Default 0.
    pub active_view: usize,
}

impl Default for OverlaySettings {
    fn default() -> Self {
        Self {
            kind: OverlayKind::FullMesh,
            peers: Vec::new(),
            role: OverlayRole::Server,
            expected_members: 64,
            active_view: 0,
        }
    }
}

impl OverlaySettings {
    fn apply_env(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        env.parse("GRANARY_OVERLAY", &mut self.kind)?;
        if let Some(value) = env.get("GRANARY_OVERLAY_PEERS") {
            self.peers = (value.split(',').map(str::trim).filter(|p| !p.is_empty()))
                .map(|p| p.parse::<SocketAddr>().map_err(|e| format!("{p:?}: {e}")))
                .collect::<Result<_, _>>()
                .map_err(|reason| ConfigError::Env {
                    var: "GRANARY_OVERLAY_PEERS",
                    value,
                    reason,
                })?;
        }
        env.parse("GRANARY_OVERLAY_ROLE", &mut self.role)?;
        env.parse(
            "GRANARY_OVERLAY_EXPECTED_MEMBERS",
            &mut self.expected_members,
        )?;
        env.parse("GRANARY_OVERLAY_ACTIVE_VIEW", &mut self.active_view)?;
        Ok(())
    }

    /// The cluster's overlay these settings describe.
    pub fn overlay_config(&self) -> granary_cluster::OverlayConfig {
        use granary_cluster::{HyParViewConfig, OverlayConfig, PlumtreeConfig, Role};
        match self.kind {
            OverlayKind::FullMesh => OverlayConfig::FullMesh,
            OverlayKind::Static => OverlayConfig::Static {
                peers: self.peers.clone(),
            },
            OverlayKind::ClientServer => OverlayConfig::ClientServer {
                role: match self.role {
                    OverlayRole::Server => Role::Server,
                    OverlayRole::Client => Role::Client,
                },
            },
            OverlayKind::PeerToPeer => {
                let mut membership = HyParViewConfig::for_cluster_size(self.expected_members);
                if self.active_view > 0 {
                    membership.active_capacity = self.active_view;
                    membership.passive_capacity = 6 * self.active_view;
                }
                OverlayConfig::PeerToPeer {
                    membership,
                    broadcast: PlumtreeConfig::default(),
                }
            }
        }
    }
}

/// The default state store and how it is opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `memory:`, `file:/path`, `postgres://…`, `redis://…`. Default: the embedded
    /// file store `file:<data_dir>/state.db` (a warning is logged: state is local to
    /// this host, so failover to another host loses it).
    pub url: Option<String>,
    /// Directory of the default embedded store. Default `granary-data`.
    pub data_dir: PathBuf,
    /// Prefix of the store's tables or keys. Default `granary`.
    pub namespace: String,
    /// Connect timeout. Default 5 000 ms.
    pub connect_timeout_ms: u64,
    /// Per-operation timeout. Default 10 000 ms.
    pub op_timeout_ms: u64,
    /// Connections a networked store keeps. Default 16.
    pub pool_size: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        let o = granary_storage::StoreOptions::default();
        Self {
            url: None,
            data_dir: PathBuf::from("granary-data"),
            namespace: o.namespace().to_string(),
            connect_timeout_ms: o.connect_timeout().as_millis() as u64,
            op_timeout_ms: o.op_timeout().as_millis() as u64,
            pool_size: o.pool_size(),
        }
    }
}

impl StoreSettings {
    fn apply_env(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        env.opt("GRANARY_STORE_URL", &mut self.url)?;
        env.parse("GRANARY_DATA_DIR", &mut self.data_dir)?;
        env.parse("GRANARY_STORE_NAMESPACE", &mut self.namespace)?;
        env.parse(
            "GRANARY_STORE_CONNECT_TIMEOUT_MS",
            &mut self.connect_timeout_ms,
        )?;
        env.parse("GRANARY_STORE_OP_TIMEOUT_MS", &mut self.op_timeout_ms)?;
        env.parse("GRANARY_STORE_POOL_SIZE", &mut self.pool_size)?;
        Ok(())
    }

    /// The options the store is opened with.
    pub fn options(&self) -> granary_storage::StoreOptions {
        use std::time::Duration;
        granary_storage::StoreOptions::default()
            .with_namespace(self.namespace.clone())
            .with_connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .with_op_timeout(Duration::from_millis(self.op_timeout_ms))
            .with_pool_size(self.pool_size)
    }
}

/// Everything a deployed [`Node`](crate::Node) needs, apart from the kinds it hosts.
///
/// ```
/// use granary_virtual::NodeConfig;
/// let config = NodeConfig::from_toml_str(
///     r#"
///     bind = "0.0.0.0:7100"
///     advertise = "node-1.granary.svc:7100"
///     cluster_secret = "s3cret"
///     [membership]
///     provider = "dns"
///     dns_name = "granary.default.svc.cluster.local"
///     "#,
/// )
/// .unwrap();
/// assert_eq!(config.bind.port(), 7100);
/// assert_eq!(NodeConfig::from_toml_str(&config.to_toml().unwrap()).unwrap(), config);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The address to listen on (`0.0.0.0:7100` needs `advertise`). Default
    /// `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// `host[:port]` members and clients dial this node at; a DNS name is resolved at
    /// start. No port (or 0): the bound port. Default: the bind address.
    pub advertise: Option<String>,
    /// Cluster name (peers of another cluster are refused). Default `granary`.
    pub cluster_name: String,
    /// The shared secret of the handshake. Default [`DEFAULT_SECRET`], refused on a
    /// non-loopback address.
    pub cluster_secret: Secret,
    /// Mutual TLS. Default off.
    pub tls: TlsSettings,
    /// How to find the cluster.
    pub membership: MembershipSettings,
    /// Transport settings.
    pub transport: TransportSettings,
    /// The overlay (default the full mesh).
    pub overlay: OverlaySettings,
    /// The default state store.
    pub store: StoreSettings,
    /// Default timeout of a call, retries included. Default 10 000 ms.
    pub ask_timeout_ms: u64,
    /// Attempts per call before `Unavailable`. Default 60.
    pub max_attempts: u32,
    /// How often due reminders are looked for. Default 1 000 ms.
    pub reminder_interval_ms: u64,
    /// The most identity locations cached. Default 100 000.
    pub location_cache: usize,
    /// Idle timeout per kind name, overriding the kind's own
    /// (`Kind::idle_timeout`). Default none.
    pub idle_timeouts_ms: BTreeMap<String, u64>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            bind: ([127, 0, 0, 1], 0).into(),
            advertise: None,
            cluster_name: "granary".into(),
            cluster_secret: Secret::default(),
            tls: TlsSettings::default(),
            membership: MembershipSettings::default(),
            transport: TransportSettings::default(),
            overlay: OverlaySettings::default(),
            store: StoreSettings::default(),
            ask_timeout_ms: 10_000,
            max_attempts: 60,
            reminder_interval_ms: 1_000,
            location_cache: crate::node::DEFAULT_LOCATION_CACHE,
            idle_timeouts_ms: BTreeMap::new(),
        }
    }
}

/// Every environment variable [`NodeConfig::apply_env`] reads.
pub const NODE_ENV: &[&str] = &[
    "GRANARY_CONFIG",
    "GRANARY_BIND",
    "GRANARY_ADVERTISE",
    "GRANARY_CLUSTER_NAME",
    "GRANARY_CLUSTER_SECRET",
    "GRANARY_TLS_CA_FILE",
    "GRANARY_TLS_CERT_FILE",
    "GRANARY_TLS_KEY_FILE",
    "GRANARY_TLS_CA_PEM",
    "GRANARY_TLS_CERT_PEM",
    "GRANARY_TLS_KEY_PEM",
    "GRANARY_TLS_SERVER_NAME",
    "GRANARY_MEMBERSHIP",
    "GRANARY_SEEDS",
    "GRANARY_DNS_NAME",
    "GRANARY_DNS_RECORD",
    "GRANARY_DNS_PORT",
    "GRANARY_DNS_SERVER",
    "GRANARY_MEMBERSHIP_POSTGRES",
    "GRANARY_MEMBERSHIP_POSTGRES_TTL_MS",
    "GRANARY_PARALLELISM",
    "GRANARY_AFFINITY",
    "GRANARY_BULK_LANE",
    "GRANARY_CHANNELS",
    "GRANARY_QUEUE_CAPACITY",
    "GRANARY_MAX_FRAME",
    "GRANARY_HEARTBEAT_INTERVAL_MS",
    "GRANARY_HEARTBEAT_TIMEOUT_MS",
    "GRANARY_HANDSHAKE_TIMEOUT_MS",
    "GRANARY_OVERLAY",
    "GRANARY_OVERLAY_PEERS",
    "GRANARY_OVERLAY_ROLE",
    "GRANARY_OVERLAY_EXPECTED_MEMBERS",
    "GRANARY_OVERLAY_ACTIVE_VIEW",
    "GRANARY_LINK",
    "GRANARY_AMQP_URL",
    "GRANARY_STORE_URL",
    "GRANARY_DATA_DIR",
    "GRANARY_STORE_NAMESPACE",
    "GRANARY_STORE_CONNECT_TIMEOUT_MS",
    "GRANARY_STORE_OP_TIMEOUT_MS",
    "GRANARY_STORE_POOL_SIZE",
    "GRANARY_ASK_TIMEOUT_MS",
    "GRANARY_MAX_ATTEMPTS",
    "GRANARY_REMINDER_INTERVAL_MS",
    "GRANARY_LOCATION_CACHE",
    "GRANARY_IDLE_TIMEOUTS_MS",
];

impl NodeConfig {
    /// Parses TOML text (missing fields keep their defaults; unknown fields are
    /// refused).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::File {
            path: PathBuf::from("<text>"),
            reason: e.to_string(),
        })
    }

    /// Reads a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        read_toml(path.as_ref())
    }

    /// The defaults with the process environment's `GRANARY_…` variables on top.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut config = Self::default();
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Defaults, then the TOML file named by `GRANARY_CONFIG` (if set), then the
    /// other `GRANARY_…` variables: what a node binary wants.
    pub fn load() -> Result<Self, ConfigError> {
        let mut config = match std::env::var_os("GRANARY_CONFIG") {
            Some(path) => Self::from_file(PathBuf::from(path))?,
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Overrides fields from variables looked up with `get` (the names in
    /// [`NODE_ENV`]; `GRANARY_CONFIG` is read by [`NodeConfig::load`] only).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let env = Env { get: &get };
        env.parse("GRANARY_BIND", &mut self.bind)?;
        env.opt("GRANARY_ADVERTISE", &mut self.advertise)?;
        env.parse("GRANARY_CLUSTER_NAME", &mut self.cluster_name)?;
        if let Some(secret) = env.get("GRANARY_CLUSTER_SECRET") {
            self.cluster_secret = Secret::new(secret);
        }
        self.tls.apply_env(&env)?;
        self.membership.apply_env(&env)?;
        self.transport.apply_env(&env)?;
        self.overlay.apply_env(&env)?;
        self.store.apply_env(&env)?;
        env.parse("GRANARY_ASK_TIMEOUT_MS", &mut self.ask_timeout_ms)?;
        env.parse("GRANARY_MAX_ATTEMPTS", &mut self.max_attempts)?;
        env.parse(
            "GRANARY_REMINDER_INTERVAL_MS",
            &mut self.reminder_interval_ms,
        )?;
        env.parse("GRANARY_LOCATION_CACHE", &mut self.location_cache)?;
        if let Some(value) = env.get("GRANARY_IDLE_TIMEOUTS_MS") {
            let parsed: Result<BTreeMap<String, u64>, String> = parse_pairs(&value).and_then(|p| {
                p.into_iter()
                    .map(|(k, v)| {
                        v.parse()
                            .map(|ms| (k, ms))
                            .map_err(|e| format!("{v:?}: {e}"))
                    })
                    .collect()
            });
            self.idle_timeouts_ms = parsed.map_err(|reason| ConfigError::Env {
                var: "GRANARY_IDLE_TIMEOUTS_MS",
                value,
                reason,
            })?;
        }
        Ok(())
    }

    /// The configuration as TOML (the secret included: treat the text as secret).
    /// Fails only for a secret set from code that is not UTF-8.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Invalid {
            field: "cluster_secret",
            reason: e.to_string(),
        })
    }

    /// Checks what can be checked without the network: the default secret on a
    /// non-loopback address, the provider's required settings, TLS completeness.
    pub fn validate(&self) -> Result<(), ConfigError> {
        refuse_default_secret(&self.cluster_secret, self.bind.ip())?;
        if let Some(advertise) = &self.advertise {
            if let Ok(ip) = host_part(advertise).parse::<IpAddr>() {
                refuse_default_secret(&self.cluster_secret, ip)?;
            } else if self.cluster_secret.is_default() {
                // A DNS name is for other hosts.
                return Err(ConfigError::DefaultSecret {
                    addr: self.bind.ip(),
                });
            }
        }
        if self.bind.ip().is_unspecified() && self.advertise.is_none() {
            return Err(ConfigError::Invalid {
                field: "advertise",
                reason: format!(
                    "bind {} is a wildcard address; set the address peers dial (GRANARY_ADVERTISE)",
                    self.bind
                ),
            });
        }
        self.membership.validate()?;
        if self.overlay.kind == OverlayKind::Static && self.overlay.peers.is_empty() {
            return Err(ConfigError::Invalid {
                field: "overlay.peers",
                reason: "the static overlay needs the peers to connect to".into(),
            });
        }
        check_tls(&self.tls)?;
        self.transport.validate(self.tls.enabled())?;
        if self.membership.provider == ProviderKind::Amqp && self.transport.link != LinkKind::Amqp {
            return Err(ConfigError::Invalid {
                field: "membership.provider",
                reason: "the amqp provider needs transport.link = \"amqp\"".into(),
            });
        }
        Ok(())
    }
}

/// Everything an external [`Client`](crate::Client) needs.
///
/// ```
/// use granary_virtual::ClientConfig;
/// let mut config = ClientConfig::default();
/// config
///     .apply_env(|name| match name {
///         "GRANARY_SEEDS" => Some("10.0.0.2:7100,10.0.0.3:7100".into()),
///         _ => None,
///     })
///     .unwrap();
/// assert_eq!(config.seeds.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// `host:port` of members to learn the cluster from; names resolved at connect.
    pub seeds: Vec<String>,
    /// Cluster name. Default `granary`.
    pub cluster_name: String,
    /// The shared secret. Default [`DEFAULT_SECRET`] (refused with a non-loopback
    /// seed or bind).
    pub cluster_secret: Secret,
    /// Opt-in: an address to listen on, members then dial the client back there.
    /// Default none: the client only dials out, and members answer on the
    /// connections it opened (it needs no reachable address and no open port).
    pub bind: Option<SocketAddr>,
    /// How many members the client keeps connections to and sends through (its
    /// gateways; they locate identities and relay messages for it). Default 2.
    pub gateways: usize,
    /// Mutual TLS. Default off.
    pub tls: TlsSettings,
    /// Default timeout of a call. Default 10 000 ms.
    pub ask_timeout_ms: u64,
    /// Heartbeat period on the client's connections. Default 1 000 ms.
    pub heartbeat_interval_ms: u64,
    /// A gateway silent this long is lost: the client stops sending through it and
    /// picks another. Default 5 000 ms; shorter moves calls off a paused or cut-off
    /// gateway sooner.
    pub heartbeat_timeout_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        let t = granary_remote::TransportConfig::new("", "");
        Self {
            seeds: Vec::new(),
            cluster_name: "granary".into(),
            cluster_secret: Secret::default(),
            bind: None,
            gateways: 2,
            tls: TlsSettings::default(),
            ask_timeout_ms: 10_000,
            heartbeat_interval_ms: t.heartbeat_interval.as_millis() as u64,
            heartbeat_timeout_ms: t.heartbeat_timeout.as_millis() as u64,
        }
    }
}

/// Every environment variable [`ClientConfig::apply_env`] reads (the shared
/// settings have the node's names).
pub const CLIENT_ENV: &[&str] = &[
    "GRANARY_SEEDS",
    "GRANARY_CLUSTER_NAME",
    "GRANARY_CLUSTER_SECRET",
    "GRANARY_CLIENT_BIND",
    "GRANARY_CLIENT_GATEWAYS",
    "GRANARY_TLS_CA_FILE",
    "GRANARY_TLS_CERT_FILE",
    "GRANARY_TLS_KEY_FILE",
    "GRANARY_TLS_CA_PEM",
    "GRANARY_TLS_CERT_PEM",
    "GRANARY_TLS_KEY_PEM",
    "GRANARY_TLS_SERVER_NAME",
    "GRANARY_ASK_TIMEOUT_MS",
    "GRANARY_HEARTBEAT_INTERVAL_MS",
    "GRANARY_HEARTBEAT_TIMEOUT_MS",
];

impl ClientConfig {
    /// Parses TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::File {
            path: PathBuf::from("<text>"),
            reason: e.to_string(),
        })
    }

    /// Reads a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        read_toml(path.as_ref())
    }

    /// The defaults with the process environment's `GRANARY_…` variables on top.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut config = Self::default();
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Overrides fields from variables looked up with `get` (names in [`CLIENT_ENV`]).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let env = Env { get: &get };
        env.list("GRANARY_SEEDS", &mut self.seeds)?;
        env.parse("GRANARY_CLUSTER_NAME", &mut self.cluster_name)?;
        if let Some(secret) = env.get("GRANARY_CLUSTER_SECRET") {
            self.cluster_secret = Secret::new(secret);
        }
        env.opt("GRANARY_CLIENT_BIND", &mut self.bind)?;
        env.parse("GRANARY_CLIENT_GATEWAYS", &mut self.gateways)?;
        self.tls.apply_env(&env)?;
        env.parse("GRANARY_ASK_TIMEOUT_MS", &mut self.ask_timeout_ms)?;
        env.parse(
            "GRANARY_HEARTBEAT_INTERVAL_MS",
            &mut self.heartbeat_interval_ms,
        )?;
        env.parse(
            "GRANARY_HEARTBEAT_TIMEOUT_MS",
            &mut self.heartbeat_timeout_ms,
        )?;
        Ok(())
    }

    /// The configuration as TOML (the secret included). Fails only for a secret set
    /// from code that is not UTF-8.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Invalid {
            field: "cluster_secret",
            reason: e.to_string(),
        })
    }

    /// The default secret on a non-loopback bind, incomplete TLS.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(bind) = self.bind {
            refuse_default_secret(&self.cluster_secret, bind.ip())?;
        }
        // Seeds written as addresses: a client of a cluster on other hosts.
        for seed in &self.seeds {
            if let Ok(ip) = host_part(seed).parse::<IpAddr>() {
                refuse_default_secret(&self.cluster_secret, ip)?;
            }
        }
        if self.gateways == 0 {
            return Err(ConfigError::Invalid {
                field: "gateways",
                reason: "a client needs at least one gateway".into(),
            });
        }
        if self.heartbeat_interval_ms == 0
            || self.heartbeat_timeout_ms <= self.heartbeat_interval_ms
        {
            return Err(ConfigError::Invalid {
                field: "heartbeat_interval_ms",
                reason: format!(
                    "must be non-zero and shorter than heartbeat_timeout_ms ({} ms, {} ms)",
                    self.heartbeat_interval_ms, self.heartbeat_timeout_ms
                ),
            });
        }
        check_tls(&self.tls)
    }
}

fn check_tls(tls: &TlsSettings) -> Result<(), ConfigError> {
    if !tls.enabled() {
        return Ok(());
    }
    if cfg!(not(feature = "tls")) {
        return Err(ConfigError::FeatureDisabled {
            what: "tls",
            feature: "tls",
        });
    }
    for (what, file, pem) in [
        ("ca", tls.ca_file.is_some(), tls.ca_pem.is_some()),
        ("cert", tls.cert_file.is_some(), tls.cert_pem.is_some()),
        ("key", tls.key_file.is_some(), tls.key_pem.is_some()),
    ] {
        if file == pem {
            return Err(ConfigError::Tls {
                what,
                reason: if file {
                    "both a file and PEM text are set; set one".into()
                } else {
                    "missing (TLS is on because another TLS input is set)".into()
                },
            });
        }
    }
    Ok(())
}

pub(crate) fn refuse_default_secret(secret: &Secret, ip: IpAddr) -> Result<(), ConfigError> {
    if secret.is_default() && !ip.is_loopback() {
        return Err(ConfigError::DefaultSecret { addr: ip });
    }
    Ok(())
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// `host` of `host:port`, `[v6]:port`, `host`.
fn host_part(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => hostport,
    }
}

/// Resolves `host[:port]` (port missing: `default_port`), preferring IPv4.
pub(crate) async fn resolve(
    what: &'static str,
    hostport: &str,
    default_port: u16,
) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = hostport.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = hostport.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let target = if host_part(hostport) == hostport {
        format!("{hostport}:{default_port}")
    } else {
        hostport.to_string()
    };
    let err = |reason: String| ConfigError::Resolve {
        what,
        name: hostport.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target.as_str())
        .await
        .map_err(|e| err(e.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| err("no address".into()))
}

/// A URL without its password, for logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // `key=value` connection strings: drop a password=… pair.
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `a=1,b=2` or `a:1,b:2` into pairs.
fn parse_pairs(value: &str) -> Result<Vec<(String, String)>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.rsplit_once(['=', ':'])
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("{item:?} is not name=value"))
        })
        .collect()
}

/// Reads variables through a lookup function, with typed parsing and errors that
/// name the variable.
struct Env<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn get(&self, var: &'static str) -> Option<String> {
        (self.get)(var).filter(|v| !v.trim().is_empty())
    }

    fn parse<T: FromStr>(&self, var: &'static str, slot: &mut T) -> Result<(), ConfigError>
    where
        T::Err: fmt::Display,
    {
        if let Some(value) = self.get(var) {
            *slot = value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                var,
                reason: e.to_string(),
                value,
            })?;
        }
        Ok(())
    }

    fn opt<T: FromStr>(&self, var: &'static str, slot: &mut Option<T>) -> Result<(), ConfigError>
    where
        T::Err: fmt::Display,
    {
        if let Some(value) = self.get(var) {
            *slot = Some(value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                var,
                reason: e.to_string(),
                value,
            })?);
        }
        Ok(())
    }

    fn list(&self, var: &'static str, slot: &mut Vec<String>) -> Result<(), ConfigError> {
        if let Some(value) = self.get(var) {
            *slot = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn a_full_config_survives_a_toml_round_trip() {
        let mut config = NodeConfig {
            advertise: Some("node-1.example:7100".into()),
            cluster_secret: Secret::new("s"),
            ..NodeConfig::default()
        };
        config.membership.provider = ProviderKind::Dns;
        config.membership.dns_name = Some("granary.svc".into());
        config.membership.dns_record = DnsRecord::Srv;
        config.transport.channels.push(ChannelSetting {
            name: "bulk".into(),
            parallelism: 3,
        });
        config.store.url = Some("postgres://u:p@db/test".into());
        config.tls.ca_file = Some("/etc/granary/ca.pem".into());
        config
            .idle_timeouts_ms
            .insert("demo.Counter".into(), 30_000);
        let text = config.to_toml().unwrap();
        assert_eq!(NodeConfig::from_toml_str(&text).unwrap(), config);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(NodeConfig::from_file(&path).unwrap(), config);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_typed_errors() {
        assert!(matches!(
            NodeConfig::from_toml_str("bindd = \"127.0.0.1:1\""),
            Err(ConfigError::File { .. })
        ));
        let mut c = NodeConfig::default();
        let e = c.apply_env(env(&[("GRANARY_PARALLELISM", "many")]));
        assert!(
            matches!(
                e,
                Err(ConfigError::Env {
                    var: "GRANARY_PARALLELISM",
                    ..
                })
            ),
            "{e:?}"
        );
        let e = c.apply_env(env(&[("GRANARY_MEMBERSHIP", "zookeeper")]));
        assert!(matches!(
            e,
            Err(ConfigError::Env {
                var: "GRANARY_MEMBERSHIP",
                ..
            })
        ));
    }

    #[test]
    fn environment_sets_every_section() {
        let mut c = NodeConfig::default();
        c.apply_env(env(&[
            ("GRANARY_BIND", "0.0.0.0:7100"),
            ("GRANARY_ADVERTISE", "10.1.2.3"),
            ("GRANARY_CLUSTER_SECRET", "x"),
            ("GRANARY_MEMBERSHIP", "dns"),
            ("GRANARY_DNS_NAME", "granary.svc"),
            ("GRANARY_DNS_RECORD", "srv"),
            ("GRANARY_CHANNELS", "bulk:2,events=1"),
            ("GRANARY_BULK_LANE", "false"),
            ("GRANARY_STORE_URL", "memory:"),
            ("GRANARY_STORE_NAMESPACE", "app1"),
            ("GRANARY_IDLE_TIMEOUTS_MS", "demo.Counter=500"),
            ("GRANARY_TLS_SERVER_NAME", "granary.cluster"),
        ]))
        .unwrap();
        assert_eq!(c.bind, "0.0.0.0:7100".parse().unwrap());
        assert_eq!(c.advertise.as_deref(), Some("10.1.2.3"));
        assert_eq!(c.membership.dns_record, DnsRecord::Srv);
        assert_eq!(c.transport.channels.len(), 2);
        assert_eq!(c.transport.channels[0].parallelism, 2);
        assert!(!c.transport.bulk_lane);
        assert_eq!(c.store.options().namespace(), "app1");
        assert_eq!(c.idle_timeouts_ms["demo.Counter"], 500);
        if cfg!(feature = "dns") {
            assert!(c.validate().is_ok());
        } else {
            assert!(matches!(
                c.validate(),
                Err(ConfigError::FeatureDisabled { feature: "dns", .. })
            ));
        }
    }

    #[test]
    fn the_default_secret_is_refused_off_loopback() {
        let c = NodeConfig {
            bind: "0.0.0.0:7100".parse().unwrap(),
            advertise: Some("10.0.0.5".into()),
            ..NodeConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DefaultSecret { .. })
        ));
        assert!(NodeConfig::default().validate().is_ok());
        for client in [
            ClientConfig {
                bind: Some("10.0.0.9:0".parse().unwrap()),
                ..ClientConfig::default()
            },
            ClientConfig {
                seeds: vec!["10.0.0.2:7100".into()],
                ..ClientConfig::default()
            },
        ] {
            assert!(matches!(
                client.validate(),
                Err(ConfigError::DefaultSecret { .. })
            ));
        }
        let client = ClientConfig {
            seeds: vec!["127.0.0.1:7100".into()],
            ..ClientConfig::default()
        };
        client.validate().unwrap();
    }

    #[test]
    fn client_heartbeats_come_from_the_environment_and_are_checked() {
        let mut client = ClientConfig::default();
        client
            .apply_env(|name| match name {
                "GRANARY_HEARTBEAT_INTERVAL_MS" => Some("500".into()),
                "GRANARY_HEARTBEAT_TIMEOUT_MS" => Some("2000".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            (client.heartbeat_interval_ms, client.heartbeat_timeout_ms),
            (500, 2000)
        );
        client.validate().unwrap();
        client.heartbeat_timeout_ms = 500;
        assert!(matches!(
            client.validate(),
            Err(ConfigError::Invalid {
                field: "heartbeat_interval_ms",
                ..
            })
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_logs() {
        let c = NodeConfig {
            cluster_secret: Secret::new("hunter2"),
            ..NodeConfig::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("host=db password=hunter2"), "host=db password=***");
    }

    #[test]
    fn host_part_handles_names_ports_and_v6() {
        assert_eq!(host_part("node-1.svc:7100"), "node-1.svc");
        assert_eq!(host_part("node-1.svc"), "node-1.svc");
        assert_eq!(host_part("[::1]:7100"), "::1");
        assert_eq!(host_part("::1"), "::1");
    }

    #[test]
    fn the_example_file_in_the_reference_parses() {
        let doc = include_str!("../../../docs/config.md");
        let start = doc.find("```toml\n").expect("an example file") + "```toml\n".len();
        let len = doc[start..].find("```").unwrap();
        let config = NodeConfig::from_toml_str(&doc[start..start + len]).unwrap();
        assert_eq!(config.membership.provider, ProviderKind::Dns);
        assert_eq!(config.transport.channels.len(), 1);
        assert!(config.tls.enabled());
        assert_eq!(config.idle_timeouts_ms["shop.Cart"], 600_000);
        assert_eq!(config.overlay.kind, OverlayKind::PeerToPeer);
        let granary_cluster::OverlayConfig::PeerToPeer { membership, .. } =
            config.overlay.overlay_config()
        else {
            panic!("the example's overlay is peer-to-peer");
        };
        assert_eq!(membership.active_capacity, 8, "sized for 200 members");
    }

    #[test]
    fn the_overlay_is_read_from_the_environment_and_checked() {
        let vars = [
            ("GRANARY_OVERLAY", "static"),
            ("GRANARY_OVERLAY_PEERS", "127.0.0.1:7100, 127.0.0.1:7101"),
            ("GRANARY_OVERLAY_ROLE", "client"),
            ("GRANARY_OVERLAY_EXPECTED_MEMBERS", "16"),
            ("GRANARY_OVERLAY_ACTIVE_VIEW", "3"),
        ];
        let get = |name: &str| {
            (vars.iter())
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        let mut config = NodeConfig::default();
        config.apply_env(get).unwrap();
        assert_eq!(config.overlay.kind, OverlayKind::Static);
        assert_eq!(config.overlay.peers.len(), 2);
        assert_eq!(config.overlay.role, OverlayRole::Client);
        assert_eq!(config.overlay.expected_members, 16);
        assert_eq!(config.overlay.active_view, 3);
        config.overlay.kind = OverlayKind::PeerToPeer;
        let granary_cluster::OverlayConfig::PeerToPeer { membership, .. } =
            config.overlay.overlay_config()
        else {
            panic!("peer-to-peer");
        };
        assert_eq!(membership.active_capacity, 3);
        config.overlay.kind = OverlayKind::Static;
        config.overlay.peers.clear();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                field: "overlay.peers",
                ..
            })
        ));
        let bad = |name: &str| (name == "GRANARY_OVERLAY").then(|| "ring".to_string());
        assert!(matches!(
            NodeConfig::default().apply_env(bad),
            Err(ConfigError::Env {
                var: "GRANARY_OVERLAY",
                ..
            })
        ));
    }

    #[test]
    fn the_amqp_link_and_provider_are_read_and_checked() {
        let config = NodeConfig::from_toml_str(
            r#"
            [transport]
            link = "amqp"
            amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f"
            [membership]
            provider = "amqp"
            "#,
        )
        .unwrap();
        assert_eq!(config.transport.link, LinkKind::Amqp);
        assert_eq!(config.membership.provider, ProviderKind::Amqp);
        if cfg!(feature = "amqp") {
            assert!(config.validate().is_ok());
        } else {
            assert!(matches!(
                config.validate(),
                Err(ConfigError::FeatureDisabled {
                    feature: "amqp",
                    ..
                })
            ));
            return;
        }
        let mut from_env = NodeConfig::default();
        from_env
            .apply_env(env(&[
                ("GRANARY_LINK", "amqp"),
                ("GRANARY_AMQP_URL", "amqp://127.0.0.1"),
                ("GRANARY_MEMBERSHIP", "amqp"),
            ]))
            .unwrap();
        assert_eq!(from_env.transport.link, LinkKind::Amqp);
        assert_eq!(
            from_env.transport.amqp_url.as_deref(),
            Some("amqp://127.0.0.1")
        );
        // The link needs its broker; the provider needs the link; TLS is not offered.
        let mut no_url = config.clone();
        no_url.transport.amqp_url = None;
        assert!(matches!(
            no_url.validate(),
            Err(ConfigError::Invalid {
                field: "transport.amqp_url",
                ..
            })
        ));
        let mut no_link = config.clone();
        no_link.transport.link = LinkKind::Tcp;
        assert!(matches!(
            no_link.validate(),
            Err(ConfigError::Invalid {
                field: "membership.provider",
                ..
            })
        ));
        let mut tls = config;
        tls.tls.ca_pem = Some("ca".into());
        tls.tls.cert_pem = Some("cert".into());
        tls.tls.key_pem = Some("key".into());
        assert!(matches!(
            tls.validate(),
            Err(ConfigError::Invalid { field: "tls", .. })
        ));
    }

    #[test]
    fn the_config_reference_documents_every_variable() {
        let doc = include_str!("../../../docs/config.md");
        for var in NODE_ENV.iter().chain(CLIENT_ENV) {
            assert!(doc.contains(var), "docs/config.md does not mention {var}");
        }
    }
}
