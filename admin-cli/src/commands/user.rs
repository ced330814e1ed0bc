//! `myelin-admin user ...`

use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::Value;

use crate::api::{SharedSecretRegistration, UserSummary, UserUpsert};
use crate::cli::{CreateArgs, DeactivateArgs, ListArgs, ResetPasswordArgs, UserArg, UserCommand};
use crate::client::{AdminClient, Typed, UserListQuery};
use crate::error::{Error, Result};
use crate::output::{self, Output, or_dash, utc_datetime, yes_no};
use crate::password::{self, Password};
use crate::shared_secret::registration_mac;

/// Users requested per page while following `next_token`.
const PAGE_SIZE: u64 = 100;

pub async fn run(client: &AdminClient, out: Output, command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Create(args) => create(client, out, args).await,
        UserCommand::List(args) => list(client, out, args).await,
        UserCommand::Show(args) => show(client, out, args).await,
        UserCommand::Deactivate(args) => deactivate(client, out, args).await,
        UserCommand::ResetPassword(args) => reset_password(client, out, args).await,
    }
}

// ---- create ---------------------------------------------------------------

async fn create(client: &AdminClient, out: Output, args: CreateArgs) -> Result<()> {
    let secret = args
        .shared_secret
        .as_deref()
        .filter(|secret| !secret.is_empty());
    if secret.is_none() && !client.has_token() {
        return Err(Error::Usage(
            "user create needs either an admin access token (--token or MYELIN_ADMIN_TOKEN) \
             or the registration shared secret (--shared-secret or \
             MYELIN_REGISTRATION_SHARED_SECRET) to create the first admin"
                .to_owned(),
        ));
    }
    let password = password::given_or_generated(&args.password)?;
    match secret {
        Some(secret) => create_with_shared_secret(client, out, &args, secret, &password).await,
        None => create_with_token(client, out, &args, &password).await,
    }
}

/// Nonce + HMAC registration; needs no access token.
async fn create_with_shared_secret(
    client: &AdminClient,
    out: Output,
    args: &CreateArgs,
    secret: &str,
    password: &Password,
) -> Result<()> {
    let username = localpart(&args.user)?;
    let nonce = client.registration_nonce().await?.data.nonce;
    let mac = registration_mac(secret, &nonce, username, password.as_str(), args.admin)?;
    let request = SharedSecretRegistration {
        nonce: &nonce,
        username,
        password: password.as_str(),
        admin: args.admin,
        displayname: args.displayname.as_deref(),
        mac: &mac,
    };
    let session = client.register_with_shared_secret(&request).await?;

    if out.is_json() {
        return out.json(&with_generated_password(session.raw, password));
    }
    let mut rows = vec![
        ("user id", session.data.user_id),
        ("admin", yes_no(args.admin)),
        ("access token", session.data.access_token),
        ("device id", or_dash(session.data.device_id.as_deref())),
    ];
    if let Some(generated) = password.generated() {
        rows.push(("password (generated)", generated.to_owned()));
    }
    out.table(&output::fields(rows))
}

/// `PUT /_synapse/admin/v2/users/{userId}` with the admin token.
async fn create_with_token(
    client: &AdminClient,
    out: Output,
    args: &CreateArgs,
    password: &Password,
) -> Result<()> {
    let user_id = resolve_user_id(client, &args.user).await?;
    // PUT also modifies existing accounts; never overwrite one by accident.
    if client.find_user(&user_id).await?.is_some() {
        return Err(Error::UserExists(user_id));
    }
    let upsert = UserUpsert {
        password: Some(password.as_str()),
        displayname: args.displayname.as_deref(),
        admin: Some(args.admin),
        ..UserUpsert::default()
    };
    let result = client.put_user(&user_id, &upsert).await?;
    if !result.created {
        eprintln!(
            "warning: {user_id} appeared concurrently; the server updated the existing account"
        );
    }

    if out.is_json() {
        return out.json(&with_generated_password(result.user.raw, password));
    }
    let user = result.user.data;
    let mut rows = vec![
        ("user id", user.name),
        ("display name", or_dash(user.displayname.as_deref())),
        ("admin", yes_no(user.admin)),
        ("created", utc_datetime(user.creation_ts)),
    ];
    if let Some(generated) = password.generated() {
        rows.push(("password (generated)", generated.to_owned()));
    }
    out.table(&output::fields(rows))
}

/// Adds a generated password to a JSON answer so scripts can pick it up.
fn with_generated_password(mut raw: Value, password: &Password) -> Value {
    if let (Some(generated), Value::Object(map)) = (password.generated(), &mut raw) {
        map.insert(
            "generated_password".to_owned(),
            Value::String(generated.to_owned()),
        );
    }
    raw
}

// ---- list -----------------------------------------------------------------

async fn list(client: &AdminClient, out: Output, args: ListArgs) -> Result<()> {
    let spinner = ProgressBar::new_spinner().with_message("fetching users");
    spinner.enable_steady_tick(Duration::from_millis(120));
    let fetched = fetch_all_users(client, &args, &spinner).await;
    spinner.finish_and_clear();
    let users = fetched?;

    if out.is_json() {
        let raw = users.into_iter().map(|user| user.raw).collect();
        return out.json(&Value::Array(raw));
    }
    let mut table = output::table(&[
        "user id",
        "display name",
        "admin",
        "deactivated",
        "created (UTC)",
    ]);
    for Typed { data: user, .. } in &users {
        table.add_row([
            user.name.clone(),
            or_dash(user.displayname.as_deref()),
            yes_no(user.admin),
            yes_no(user.deactivated),
            utc_datetime(user.creation_ts),
        ]);
    }
    out.table(&table)?;
    let noun = if users.len() == 1 { "user" } else { "users" };
    out.line(&format!("{} {noun}", users.len()))
}

/// Follows `next_token` until the last page (or `--limit`).
async fn fetch_all_users(
    client: &AdminClient,
    args: &ListArgs,
    spinner: &ProgressBar,
) -> Result<Vec<Typed<UserSummary>>> {
    let mut users: Vec<Typed<UserSummary>> = Vec::new();
    let mut from = "0".to_owned();
    loop {
        let wanted = match args.limit {
            Some(limit) => limit.saturating_sub(users.len() as u64).min(PAGE_SIZE),
            None => PAGE_SIZE,
        };
        let query = UserListQuery {
            from: &from,
            limit: wanted,
            name: args.name.as_deref(),
            deactivated: args.deactivated,
        };
        let page = client.list_users_page(&query).await?;
        let page_was_empty = page.users.is_empty();
        users.extend(page.users);
        spinner.set_message(format!("fetched {} users", users.len()));

        if let Some(limit) = args.limit {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            if users.len() >= limit {
                users.truncate(limit);
                return Ok(users);
            }
        }
        match page.next_token {
            // An empty page ends the listing even if the server offers more,
            // so a misbehaving server cannot keep us looping.
            Some(next) if !page_was_empty => {
                if next == from {
                    return Err(Error::UnexpectedResponse {
                        url: "/_synapse/admin/v2/users".to_owned(),
                        status: 200,
                        detail: format!("next_token {next:?} repeats the current page"),
                    });
                }
                from = next;
            }
            _ => return Ok(users),
        }
    }
}

// ---- show -----------------------------------------------------------------

async fn show(client: &AdminClient, out: Output, args: UserArg) -> Result<()> {
    let user_id = resolve_user_id(client, &args.user).await?;
    let user = client.user(&user_id).await?;
    if out.is_json() {
        return out.json(&user.raw);
    }
    let user = user.data;
    let threepids: Vec<String> = user
        .threepids
        .iter()
        .map(|threepid| format!("{}: {}", threepid.medium, threepid.address))
        .collect();
    let external_ids: Vec<String> = user
        .external_ids
        .iter()
        .map(|id| format!("{}: {}", id.auth_provider, id.external_id))
        .collect();
    out.table(&output::fields([
        ("user id", user.name),
        ("display name", or_dash(user.displayname.as_deref())),
        ("avatar url", or_dash(user.avatar_url.as_deref())),
        ("admin", yes_no(user.admin)),
        ("deactivated", yes_no(user.deactivated)),
        ("erased", yes_no(user.erased)),
        ("locked", yes_no(user.locked)),
        ("guest", yes_no(user.is_guest)),
        ("user type", or_dash(user.user_type.as_deref())),
        ("created (UTC)", utc_datetime(user.creation_ts)),
        ("third-party ids", or_dash(Some(&threepids.join("\n")))),
        ("external ids", or_dash(Some(&external_ids.join("\n")))),
    ]))
}

// ---- deactivate -----------------------------------------------------------

async fn deactivate(client: &AdminClient, out: Output, args: DeactivateArgs) -> Result<()> {
    let user_id = resolve_user_id(client, &args.user).await?;
    let raw = client.deactivate_user(&user_id, args.erase).await?;
    if out.is_json() {
        return out.json(&raw);
    }
    let erased = if args.erase { " and erased" } else { "" };
    out.line(&format!("deactivated{erased} {user_id}"))
}

// ---- reset-password -------------------------------------------------------

async fn reset_password(client: &AdminClient, out: Output, args: ResetPasswordArgs) -> Result<()> {
    let user_id = resolve_user_id(client, &args.user).await?;
    let password = password::given_or_generated(&args.password)?;
    let raw = client
        .reset_password(&user_id, password.as_str(), !args.keep_devices)
        .await?;
    if out.is_json() {
        return out.json(&with_generated_password(raw, &password));
    }
    let devices = if args.keep_devices {
        "kept"
    } else {
        "logged out"
    };
    let mut rows = vec![
        ("user id", user_id),
        ("password", "changed".to_owned()),
        ("devices", devices.to_owned()),
    ];
    if let Some(generated) = password.generated() {
        rows.push(("new password (generated)", generated.to_owned()));
    }
    out.table(&output::fields(rows))
}

// ---- user ids -------------------------------------------------------------

/// A full user ID as given, or `@localpart:<server name of the token's user>`.
pub(super) async fn resolve_user_id(client: &AdminClient, input: &str) -> Result<String> {
    if input.starts_with('@') {
        split_user_id(input)?;
        return Ok(input.to_owned());
    }
    let localpart = localpart(input)?;
    let me = client.whoami().await?.data.user_id;
    let Ok((_, server_name)) = split_user_id(&me) else {
        return Err(Error::UnexpectedResponse {
            url: "/_matrix/client/v3/account/whoami".to_owned(),
            status: 200,
            detail: format!("`{me}` is not a user ID"),
        });
    };
    Ok(format!("@{localpart}:{server_name}"))
}

/// The localpart of `alice` or `@alice:example.org`.
fn localpart(input: &str) -> Result<&str> {
    if input.starts_with('@') {
        return split_user_id(input).map(|(localpart, _)| localpart);
    }
    if input.is_empty() || input.contains(':') {
        return Err(Error::Usage(format!(
            "`{input}` is neither a localpart (`alice`) nor a user ID (`@alice:example.org`)"
        )));
    }
    Ok(input)
}

/// `@localpart:server.name[:port]` → (`localpart`, `server.name[:port]`).
fn split_user_id(user_id: &str) -> Result<(&str, &str)> {
    user_id
        .strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .filter(|(localpart, server)| !localpart.is_empty() && !server.is_empty())
        .ok_or_else(|| {
            Error::Usage(format!(
                "`{user_id}` is not a valid user ID; expected `@localpart:server.name` or a bare localpart"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_parsing() {
        assert_eq!(
            split_user_id("@alice:example.org").unwrap(),
            ("alice", "example.org")
        );
        assert_eq!(
            split_user_id("@bob:localhost:8448").unwrap(),
            ("bob", "localhost:8448")
        );
        assert!(split_user_id("@alice").is_err());
        assert!(split_user_id("@:example.org").is_err());
        assert!(split_user_id("alice:example.org").is_err());

        assert_eq!(localpart("alice").unwrap(), "alice");
        assert_eq!(localpart("@alice:example.org").unwrap(), "alice");
        assert!(localpart("alice:example.org").is_err());
        assert!(localpart("").is_err());
    }
}
