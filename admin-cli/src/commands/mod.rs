//! One module per command group; each turns parsed arguments into client
//! calls and output.

mod login;
mod media;
mod server;
mod user;

use crate::cli::{Cli, Command};
use crate::client::AdminClient;
use crate::error::Result;
use crate::output::Output;

pub async fn run(cli: Cli) -> Result<()> {
    let out = Output::new(cli.global.json);
    let client = AdminClient::new(cli.global.server, cli.global.token, cli.global.timeout)?;
    match cli.command {
        Command::Server(command) => server::run(&client, out, command).await,
        Command::User(command) => user::run(&client, out, command).await,
        Command::Media(command) => media::run(&client, out, command).await,
        Command::Login(args) => login::run(&client, out, args).await,
    }
}
