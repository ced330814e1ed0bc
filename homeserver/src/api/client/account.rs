//! Registration and account management.

use axum::{extract::State, response::IntoResponse};
use http::StatusCode;
use myelin_config::RegistrationMode;
use ruma::api::{
    client::{
        account::{
            ThirdPartyIdRemovalStatus, change_password, check_registration_token_validity, deactivate,
            get_username_availability, register, request_openid_token, whoami,
        },
        uiaa::AuthType,
    },
    error::ErrorKind,
};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::Services,
};

/// `POST /_matrix/client/v3/register`
///
/// The username is checked before user-interactive auth starts, so a client learns at once
/// that a name is taken or invalid instead of after completing the stages.
pub async fn register_route(
    State(services): State<AppState>,
    request: Ruma<register::v3::Request>,
) -> Result<axum::response::Response> {
    let client_ip = request.client_ip;
    let body = request.body;
    if body.kind == register::RegistrationKind::Guest {
        return Err(Error::matrix(StatusCode::FORBIDDEN, ErrorKind::GuestAccessForbidden, "Guest access is disabled"));
    }
    let stage = match services.config.registration {
        RegistrationMode::Closed => return Err(Error::forbidden("Registration has been disabled")),
        RegistrationMode::Open => AuthType::Dummy,
        RegistrationMode::Token => AuthType::RegistrationToken,
    };
    let requested = match &body.username {
        Some(username) => {
            let user_id = services.users.user_id_for_registration(username)?;
            if services.users.exists(&user_id)? {
                return Err(user_in_use());
            }
            Some(user_id)
        }
        None => None,
    };
    services.uiaa.require_registration_stage(body.auth.as_ref(), stage, &services.config.registration_tokens)?;
    let password = body.password.as_deref().ok_or_else(|| Error::missing_param("Missing password"))?;
    check_password_strength(&services, password)?;
    // Only attempts that would create an account count, as on Synapse: the UIA round trips
    // before it are not registrations.
    services.rate_limits.registration_per_ip.check(&client_ip.to_string())?;
    let user_id = match requested {
        Some(user_id) => user_id,
        None => services.users.generate_user_id()?,
    };
    services.users.create(&user_id, Some(password), false, None).await?;
    tracing::info!(%user_id, "registered a new account");

    if body.inhibit_login {
        // ruma 0.17 serialises the absent device_id as `null`, which the spec's schema (a
        // string, omitted with inhibit_login) does not allow.
        return Ok(axum::Json(serde_json::json!({ "user_id": user_id })).into_response());
    }
    let mut response = register::v3::Response::new(user_id.clone());
    {
        let session = services
            .sessions
            .create_session(&user_id, body.device_id, body.initial_device_display_name, body.refresh_token)
            .await?;
        response.access_token = Some(session.access_token);
        response.device_id = Some(session.device_id);
        response.refresh_token = session.refresh_token;
        response.expires_in = session.expires_in;
    }
    Ok(RumaResponse(response).into_response())
}

fn user_in_use() -> Error {
    Error::matrix(StatusCode::BAD_REQUEST, ErrorKind::UserInUse, "User ID already taken")
}

fn check_password_strength(services: &Services, password: &str) -> Result<()> {
    if password.chars().count() < services.config.password.min_length {
        return Err(Error::matrix(
            StatusCode::BAD_REQUEST,
            ErrorKind::WeakPassword,
            format!("Password must be at least {} characters", services.config.password.min_length),
        ));
    }
    Ok(())
}

/// `GET /_matrix/client/v3/register/available`
pub async fn get_username_availability_route(
    State(services): State<AppState>,
    request: Ruma<get_username_availability::v3::Request>,
) -> Result<RumaResponse<get_username_availability::v3::Response>> {
    if services.config.registration == RegistrationMode::Closed {
        return Err(Error::forbidden("Registration has been disabled"));
    }
    let user_id = services.users.user_id_for_registration(&request.body.username)?;
    if services.users.exists(&user_id)? {
        return Err(user_in_use());
    }
    Ok(RumaResponse(get_username_availability::v3::Response::new(true)))
}

/// `GET /_matrix/client/v1/register/m.login.registration_token/validity`
pub async fn check_registration_token_validity_route(
    State(services): State<AppState>,
    request: Ruma<check_registration_token_validity::v1::Request>,
) -> Result<RumaResponse<check_registration_token_validity::v1::Response>> {
    if services.config.registration != RegistrationMode::Token {
        return Err(Error::forbidden("Registration tokens are not in use"));
    }
    let valid = services.config.registration_tokens.iter().any(|token| token == &request.body.token);
    Ok(RumaResponse(check_registration_token_validity::v1::Response::new(valid)))
}

/// `GET /_matrix/client/v3/account/whoami`
pub async fn whoami_route(request: Ruma<whoami::v3::Request>) -> Result<RumaResponse<whoami::v3::Response>> {
    let sender = request.sender()?;
    let mut response = whoami::v3::Response::new(sender.user_id.clone(), false);
    response.device_id = Some(sender.device_id.clone());
    Ok(RumaResponse(response))
}

/// `POST /_matrix/client/v3/user/{userId}/openid/request_token`: a token a third party (an
/// integration manager, Element Call's SFU authoriser) checks with our federation API.
pub async fn request_openid_token_route(
    State(services): State<AppState>,
    request: Ruma<request_openid_token::v3::Request>,
) -> Result<RumaResponse<request_openid_token::v3::Response>> {
    let sender = request.sender()?;
    if sender.user_id != request.body.user_id {
        return Err(Error::forbidden("You can only request OpenID tokens for yourself"));
    }
    let token = services.sessions.issue_openid_token(&sender.user_id).await?;
    Ok(RumaResponse(request_openid_token::v3::Response::new(
        token,
        ruma::authentication::TokenType::Bearer,
        services.server_name.clone(),
        crate::service::sessions::OPENID_TOKEN_LIFETIME,
    )))
}

/// `POST /_matrix/client/v3/account/password`
pub async fn change_password_route(
    State(services): State<AppState>,
    request: Ruma<change_password::v3::Request>,
) -> Result<RumaResponse<change_password::v3::Response>> {
    let sender = request.sender()?.clone();
    let body = request.body;
    services.uiaa.require_password(&services.users, &sender.user_id, body.auth.as_ref()).await?;
    check_password_strength(&services, &body.new_password)?;
    services.users.set_password(&sender.user_id, &body.new_password).await?;
    if body.logout_devices {
        services.sessions.delete_all_devices(&sender.user_id, Some(&sender.device_id)).await?;
    }
    Ok(RumaResponse(change_password::v3::Response::new()))
}

/// `POST /_matrix/client/v3/account/deactivate`
pub async fn deactivate_route(
    State(services): State<AppState>,
    request: Ruma<deactivate::v3::Request>,
) -> Result<RumaResponse<deactivate::v3::Response>> {
    let sender = request.sender()?.clone();
    let body = request.body;
    services.uiaa.require_password(&services.users, &sender.user_id, body.auth.as_ref()).await?;
    deactivate_account(&services, &sender.user_id, body.erase).await?;
    // No identity server is bound, so there was nothing to unbind.
    Ok(RumaResponse(deactivate::v3::Response::new(ThirdPartyIdRemovalStatus::Success)))
}

/// Deactivation as both the client API and the admin API perform it.
pub async fn deactivate_account(services: &Services, user_id: &ruma::UserId, erase: bool) -> Result<()> {
    services.users.deactivate(user_id, erase).await?;
    services.sessions.delete_all_devices(user_id, None).await?;
    tracing::info!(%user_id, erase, "deactivated an account");
    Ok(())
}
