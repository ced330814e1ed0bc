//! `GET /_matrix/federation/v1/query/profile`: a local user's profile, for other servers; and
//! `GET /_matrix/federation/v1/openid/userinfo`: whose an OpenID token is.

use axum::extract::State;
use ruma::api::{client::profile::UserProfile, federation::query::get_profile_information};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
};

pub async fn get_profile_information_route(
    State(services): State<AppState>,
    request: Ruma<get_profile_information::v1::Request>,
) -> Result<RumaResponse<get_profile_information::v1::Response>> {
    let body = &request.body;
    if !services.users.is_local(&body.user_id) {
        return Err(Error::invalid_param("User is not local to this server"));
    }
    let account = services
        .users
        .get(&body.user_id)?
        .filter(|account| !account.deactivated || !account.erased)
        .ok_or_else(|| Error::not_found("User not found"))?;
    let mut profile = UserProfile::new();
    let mut set = |field: &str, value: Option<&String>| {
        let wanted = body.field.as_ref().is_none_or(|f| f.as_str() == field);
        if let (true, Some(value)) = (wanted, value) {
            profile.set(field.to_owned(), Value::String(value.clone()));
        }
    };
    set("displayname", account.displayname.as_ref());
    set("avatar_url", account.avatar_url.as_ref());
    let mut response = get_profile_information::v1::Response::new();
    response.data = profile;
    Ok(RumaResponse(response))
}

/// `GET /_matrix/federation/v1/openid/userinfo?access_token=`: unauthenticated by design (the
/// caller is any third party holding the token); an unknown or expired token is 401.
pub async fn get_openid_userinfo_route(
    State(services): State<AppState>,
    request: Ruma<ruma::api::federation::openid::get_openid_userinfo::v1::Request>,
) -> Result<RumaResponse<ruma::api::federation::openid::get_openid_userinfo::v1::Response>> {
    let user = services.sessions.openid_user(&request.body.access_token)?.ok_or_else(|| Error::unknown_token(false))?;
    Ok(RumaResponse(ruma::api::federation::openid::get_openid_userinfo::v1::Response::new(user)))
}
