//! User administration on Synapse's admin paths.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::client::deactivate_account,
    error::{Error, Result},
    router::{AdminUser, AppState, MatrixJson},
    service::users::{Account, ListFilter},
};

fn user_json(user_id: &UserId, account: &Account) -> Value {
    json!({
        "name": user_id,
        "displayname": account.displayname,
        "avatar_url": account.avatar_url,
        "admin": account.admin,
        "deactivated": account.deactivated,
        "erased": account.erased,
        "locked": account.locked,
        "is_guest": false,
        "user_type": account.user_type,
        "creation_ts": account.created_ts,
        "threepids": [],
        "external_ids": [],
    })
}

fn parse_user_id(services: &AppState, raw: &str) -> Result<OwnedUserId> {
    let user_id = UserId::parse(raw).map_err(|e| Error::invalid_param(format!("Invalid user ID: {e}")))?;
    if !services.users.is_local(&user_id) {
        return Err(Error::invalid_param("Can only administer local users"));
    }
    Ok(user_id)
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    deactivated: Option<String>,
}

fn parse_number(value: Option<&str>, field: &str, default: usize) -> Result<usize> {
    value.map_or(Ok(default), |v| v.parse().map_err(|_| Error::invalid_param(format!("{field} must be a non-negative integer"))))
}

/// `GET /_synapse/admin/v2/users`
pub async fn list_users_route(
    State(services): State<AppState>,
    _admin: AdminUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let from = parse_number(query.from.as_deref(), "from", 0)?;
    let limit = parse_number(query.limit.as_deref(), "limit", 100)?.clamp(1, 1000);
    let filter = ListFilter {
        name_contains: query.name.or(query.user_id),
        include_deactivated: query.deactivated.as_deref() == Some("true"),
    };
    let (page, total) = services.users.list(&filter, from, limit)?;
    let users: Vec<Value> = page.iter().map(|(user_id, account)| user_json(user_id, account)).collect();
    let mut body = json!({ "users": users, "total": total });
    if from + page.len() < total {
        body["next_token"] = json!((from + page.len()).to_string());
    }
    Ok(Json(body))
}

/// `GET /_synapse/admin/v2/users/{userId}`
pub async fn get_user_route(
    State(services): State<AppState>,
    _admin: AdminUser,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&services, &user_id)?;
    let account = services.users.get(&user_id)?.ok_or_else(|| Error::not_found("User not found"))?;
    Ok(Json(user_json(&user_id, &account)))
}

#[derive(Deserialize)]
pub struct PutUserBody {
    password: Option<String>,
    displayname: Option<String>,
    avatar_url: Option<String>,
    admin: Option<bool>,
    deactivated: Option<bool>,
    #[serde(default = "default_true")]
    logout_devices: bool,
}

fn default_true() -> bool {
    true
}

/// `PUT /_synapse/admin/v2/users/{userId}`: creates (201) or modifies (200) an account.
pub async fn put_user_route(
    State(services): State<AppState>,
    _admin: AdminUser,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<PutUserBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let user_id = parse_user_id(&services, &user_id)?;
    let status = if services.users.exists(&user_id)? {
        if let Some(password) = &body.password {
            services.users.set_password(&user_id, password).await?;
            if body.logout_devices {
                services.sessions.delete_all_devices(&user_id, None).await?;
            }
        }
        StatusCode::OK
    } else {
        // Validate the localpart like a registration would.
        services.users.user_id_for_registration(user_id.localpart())?;
        services.users.create(&user_id, body.password.as_deref(), body.admin.unwrap_or(false), body.displayname.clone()).await?;
        StatusCode::CREATED
    };
    if body.deactivated == Some(true) {
        deactivate_account(&services, &user_id, false).await?;
    }
    let account = services
        .users
        .update(&user_id, |account| {
            if let Some(admin) = body.admin {
                account.admin = admin;
            }
            if let Some(name) = body.displayname {
                account.displayname = Some(name);
            }
            if let Some(url) = body.avatar_url {
                account.avatar_url = Some(url);
            }
            if body.deactivated == Some(false) {
                account.deactivated = false;
            }
        })
        .await?;
    Ok((status, Json(user_json(&user_id, &account))))
}

#[derive(Deserialize, Default)]
pub struct DeactivateBody {
    #[serde(default)]
    erase: bool,
}

/// `POST /_synapse/admin/v1/deactivate/{userId}`
pub async fn deactivate_user_route(
    State(services): State<AppState>,
    _admin: AdminUser,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<DeactivateBody>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&services, &user_id)?;
    if !services.users.exists(&user_id)? {
        return Err(Error::not_found("User not found"));
    }
    deactivate_account(&services, &user_id, body.erase).await?;
    Ok(Json(json!({ "id_server_unbind_result": "success" })))
}

#[derive(Deserialize)]
pub struct ResetPasswordBody {
    new_password: String,
    #[serde(default = "default_true")]
    logout_devices: bool,
}

/// `POST /_synapse/admin/v1/reset_password/{userId}`
pub async fn reset_password_route(
    State(services): State<AppState>,
    _admin: AdminUser,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<ResetPasswordBody>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&services, &user_id)?;
    let account = services.users.get(&user_id)?.ok_or_else(|| Error::not_found("User not found"))?;
    if account.deactivated {
        return Err(Error::invalid_param("Cannot set the password of a deactivated user"));
    }
    services.users.set_password(&user_id, &body.new_password).await?;
    if body.logout_devices {
        services.sessions.delete_all_devices(&user_id, None).await?;
    }
    Ok(Json(json!({})))
}
