//! `myelin-admin login <user>`

use crate::cli::LoginArgs;
use crate::client::AdminClient;
use crate::error::Result;
use crate::output::Output;
use crate::password;

/// Prints only the access token (or the whole answer with `--json`), so that
/// `$(myelin-admin login ...)` can feed MYELIN_ADMIN_TOKEN.
pub async fn run(client: &AdminClient, out: Output, args: LoginArgs) -> Result<()> {
    let password = password::for_login(args.password_stdin, &args.user)?;
    let session = client.login_with_password(&args.user, &password).await?;
    if out.is_json() {
        return out.json(&session.raw);
    }
    out.line(&session.data.access_token)
}
