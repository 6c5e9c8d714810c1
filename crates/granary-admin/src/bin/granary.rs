//! `granary`: a cluster's members and where an identity lives, read from a node's
//! management endpoint.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use granary_admin::views::{Activations, ClusterInfo, Lookup};
use granary_admin::{get_json, AdminError};

/// Node status for humans, from a node's management endpoint.
#[derive(Parser)]
#[command(name = "granary", version)]
struct Cli {
    /// The management endpoint (`host:port`) of any node.
    #[arg(short, long, default_value = "127.0.0.1:9000")]
    endpoint: String,
    /// How long to wait for the endpoint, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The cluster's members as the node sees them.
    Members,
    /// Where `kind/key` lives (its directory owner and its host), without activating it.
    Where {
        /// The identity, as `kind/key` (the key may contain `/`).
        identity: String,
    },
    /// Live activations per kind on the node.
    Activations,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("granary: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("granary: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A usage error or a failed request.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("identity must be `kind/key`, got `{0}`")]
    Identity(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
}

async fn run(cli: &Cli) -> Result<String, CliError> {
    let timeout = Duration::from_millis(cli.timeout_ms);
    let endpoint = cli.endpoint.as_str();
    match &cli.command {
        Command::Members => {
            let info: ClusterInfo = get_json(endpoint, "/cluster", timeout).await?;
            Ok(members_table(&info))
        }
        Command::Where { identity } => {
            let (kind, key) = identity
                .split_once('/')
                .filter(|(k, key)| !k.is_empty() && !key.is_empty())
                .ok_or_else(|| CliError::Identity(identity.clone()))?;
            let path = format!(
                "/activations?kind={}&key={}",
                percent_encode(kind),
                percent_encode(key)
            );
            let found: Lookup = get_json(endpoint, &path, timeout).await?;
            let show = |a: Option<std::net::SocketAddr>, none: &str| {
                a.map_or_else(|| none.to_owned(), |a| a.to_string())
            };
            Ok(format!(
                "{}/{}\n  directory owner  {}\n  host             {}\n",
                found.kind,
                found.key,
                show(found.directory_owner, "(no members)"),
                show(found.host, "(not active)"),
            ))
        }
        Command::Activations => {
            let a: Activations = get_json(endpoint, "/activations", timeout).await?;
            let mut out = format!("activations on {}\n", a.node);
            for (kind, n) in &a.kinds {
                out.push_str(&format!("  {kind:<30} {n}\n"));
            }
            Ok(out)
        }
    }
}

fn members_table(info: &ClusterInfo) -> String {
    let mut out = format!(
        "{:<22} {:<8} {:>12} {:>7}  {:<22} {}\n",
        "MEMBER", "STATUS", "INCARNATION", "RING", "ENDPOINT", "KINDS"
    );
    for m in &info.members {
        let me = if m.addr == info.local { " *" } else { "" };
        out.push_str(&format!(
            "{:<22} {:<8} {:>12} {:>6.1}%  {:<22} {}\n",
            format!("{}{me}", m.addr),
            m.status,
            m.incarnation,
            m.ring_share * 100.0,
            m.admin.as_deref().unwrap_or("-"),
            m.roles.join(",")
        ));
    }
    out
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
