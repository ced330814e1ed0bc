//! `myelin-admin server ...`

use crate::cli::ServerCommand;
use crate::client::AdminClient;
use crate::error::Result;
use crate::output::{self, Output};

pub async fn run(client: &AdminClient, out: Output, command: ServerCommand) -> Result<()> {
    match command {
        ServerCommand::Version => version(client, out).await,
        ServerCommand::Ping => ping(client, out).await,
    }
}

async fn version(client: &AdminClient, out: Output) -> Result<()> {
    let version = client.server_version().await?;
    if out.is_json() {
        return out.json(&version.raw);
    }
    out.table(&output::fields([
        ("server", client.server().to_owned()),
        ("version", version.data.server_version),
    ]))
}

async fn ping(client: &AdminClient, out: Output) -> Result<()> {
    let versions = client.client_versions().await?;
    if out.is_json() {
        return out.json(&versions.raw);
    }
    out.table(&output::fields([
        ("server", client.server().to_owned()),
        ("status", "reachable".to_owned()),
        ("client API versions", versions.data.versions.join(", ")),
    ]))
}
