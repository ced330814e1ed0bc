//! Profiles: display name, avatar and the extended fields of MSC4133 (spec v1.16).

use axum::extract::State;
use ruma::{
    UserId,
    api::client::profile::{
        ProfileFieldName, ProfileFieldValue, UserProfile, delete_profile_field, get_profile, get_profile_field,
        set_profile_field,
    },
};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{Services, users::Account},
};

/// Profile fields are capped so one user cannot bloat every member event (spec: 64 KiB total).
const MAX_PROFILE_BYTES: usize = 65_536;

fn profile_of(account: &Account) -> UserProfile {
    let mut profile = UserProfile::new();
    for (field, value) in &account.profile_fields {
        profile.set(field.clone(), value.clone());
    }
    if let Some(name) = &account.displayname {
        profile.set("displayname".to_owned(), Value::String(name.clone()));
    }
    if let Some(url) = &account.avatar_url {
        profile.set("avatar_url".to_owned(), Value::String(url.clone()));
    }
    profile
}

fn visible_account(services: &Services, user_id: &UserId) -> Result<Account> {
    services
        .users
        .get(user_id)?
        .filter(|account| !account.deactivated || !account.erased)
        .ok_or_else(|| Error::not_found("Profile not found"))
}

fn require_own(sender: &UserId, target: &UserId) -> Result<()> {
    if sender != target {
        return Err(Error::forbidden("You cannot change another user's profile"));
    }
    Ok(())
}

/// The profile of any user: ours from the database, others' from their server over
/// federation (`/_matrix/federation/v1/query/profile`, X-Matrix signed).
async fn profile_of_anyone(services: &Services, user_id: &UserId) -> Result<UserProfile> {
    if services.users.is_local(user_id) {
        return Ok(profile_of(&visible_account(services, user_id)?));
    }
    if !services.config.federation.enabled {
        return Err(Error::not_found("Profile not found (federation is disabled)"));
    }
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("user_id", user_id.as_str()).finish();
    let remote = services
        .federation
        .get_signed_json(user_id.server_name(), &format!("/_matrix/federation/v1/query/profile?{query}"))
        .await?;
    let mut profile = UserProfile::new();
    for (field, value) in remote.as_object().into_iter().flatten() {
        profile.set(field.clone(), value.clone());
    }
    Ok(profile)
}

/// `GET /_matrix/client/v3/profile/{userId}`
pub async fn get_profile_route(
    State(services): State<AppState>,
    request: Ruma<get_profile::v3::Request>,
) -> Result<RumaResponse<get_profile::v3::Response>> {
    let mut response = get_profile::v3::Response::new();
    response.data = profile_of_anyone(&services, &request.body.user_id).await?;
    Ok(RumaResponse(response))
}

/// `GET /_matrix/client/v3/profile/{userId}/{field}`
pub async fn get_profile_field_route(
    State(services): State<AppState>,
    request: Ruma<get_profile_field::v3::Request>,
) -> Result<RumaResponse<get_profile_field::v3::Response>> {
    let profile = profile_of_anyone(&services, &request.body.user_id).await?;
    let field = request.body.field.as_str();
    let value = profile.get(field).cloned().ok_or_else(|| Error::not_found("Profile field not set"))?;
    let value = ProfileFieldValue::new(field, value).map_err(|e| Error::internal(e.to_string()))?;
    Ok(RumaResponse(get_profile_field::v3::Response::new(value)))
}

/// `PUT /_matrix/client/v3/profile/{userId}/{field}`
pub async fn set_profile_field_route(
    State(services): State<AppState>,
    request: Ruma<set_profile_field::v3::Request>,
) -> Result<RumaResponse<set_profile_field::v3::Response>> {
    let sender = request.sender()?.user_id.clone();
    let body = request.body;
    require_own(&sender, &body.user_id)?;
    let field = body.value.field_name();
    let value = body.value.value().into_owned();
    update_field(&services, &sender, field, Some(value)).await?;
    Ok(RumaResponse(set_profile_field::v3::Response::new()))
}

/// `DELETE /_matrix/client/v3/profile/{userId}/{field}`
pub async fn delete_profile_field_route(
    State(services): State<AppState>,
    request: Ruma<delete_profile_field::v3::Request>,
) -> Result<RumaResponse<delete_profile_field::v3::Response>> {
    let sender = request.sender()?.user_id.clone();
    require_own(&sender, &request.body.user_id)?;
    update_field(&services, &sender, request.body.field.clone(), None).await?;
    Ok(RumaResponse(delete_profile_field::v3::Response::new()))
}

async fn update_field(services: &Services, user_id: &UserId, field: ProfileFieldName, value: Option<Value>) -> Result<()> {
    let name = field.as_str().to_owned();
    if let Some(value) = &value
        && serde_json::to_vec(value).map_or(0, |v| v.len()) + name.len() > MAX_PROFILE_BYTES
    {
        return Err(Error::matrix(
            http::StatusCode::BAD_REQUEST,
            ruma::api::error::ErrorKind::ProfileTooLarge,
            "Profile is too large",
        ));
    }
    let as_string = |value: &Option<Value>| -> Result<Option<String>> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::bad_json(format!("{name} must be a string"))),
        }
    };
    let new_string = if matches!(name.as_str(), "displayname" | "avatar_url") { as_string(&value)? } else { None };
    let account = services
        .users
        .update(user_id, |account| match name.as_str() {
            "displayname" => account.displayname = new_string,
            "avatar_url" => account.avatar_url = new_string,
            _ => match value {
                Some(value) => {
                    account.profile_fields.insert(name.clone(), value);
                }
                None => {
                    account.profile_fields.remove(&name);
                }
            },
        })
        .await?;
    if matches!(name.as_str(), "displayname" | "avatar_url") {
        services.rooms.propagate_profile(user_id, account.displayname.as_deref(), account.avatar_url.as_deref()).await?;
    }
    Ok(())
}
