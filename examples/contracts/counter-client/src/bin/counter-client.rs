//! `counter-client SEED[,SEED...] KEY [BY]`: connects to the cluster through the seeds
//! (default cluster name and secret), adds `BY` (default 1) to the counter `KEY` and
//! prints its total. Exit status 2 on bad arguments, 1 when the call fails.

use std::net::SocketAddr;
use std::process::ExitCode;

use granary::virtual_actors::Client;

const USAGE: &str = "usage: counter-client SEED[,SEED...] KEY [BY]";

/// The seeds, key and increment from the command line.
fn parse(args: &[String]) -> Result<(Vec<SocketAddr>, String, u64), String> {
    let [seeds, key, rest @ ..] = args else {
        return Err(USAGE.to_owned());
    };
    let seeds = (seeds.split(','))
        .map(|s| s.parse().map_err(|e| format!("seed {s:?}: {e}")))
        .collect::<Result<Vec<SocketAddr>, String>>()?;
    let by = match rest {
        [] => 1,
        [by] => by.parse().map_err(|e| format!("BY {by:?}: {e}"))?,
        _ => return Err(USAGE.to_owned()),
    };
    Ok((seeds, key.clone(), by))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (seeds, key, by) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let client = match Client::connect(seeds).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("cannot connect: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = counter_client::bump(&client, &key, by).await;
    client.close().await;
    match outcome {
        Ok(total) => {
            println!("{key}: {total}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{key}: {e}");
            ExitCode::FAILURE
        }
    }
}
