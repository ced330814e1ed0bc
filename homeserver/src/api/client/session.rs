//! Login, logout and token refresh.

use axum::extract::State;
use http::StatusCode;
use ruma::api::{
    client::{
        session::{get_login_types, login, logout, logout_all, refresh_token},
        uiaa::UserIdentifier,
    },
    error::ErrorKind,
};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
};

/// `GET /_matrix/client/v3/login`
pub async fn get_login_types_route(
    _: Ruma<get_login_types::v3::Request>,
) -> Result<RumaResponse<get_login_types::v3::Response>> {
    Ok(RumaResponse(get_login_types::v3::Response::new(vec![get_login_types::v3::LoginType::Password(
        get_login_types::v3::PasswordLoginType::new(),
    )])))
}

/// `POST /_matrix/client/v3/login`
pub async fn login_route(
    State(services): State<AppState>,
    request: Ruma<login::v3::Request>,
) -> Result<RumaResponse<login::v3::Response>> {
    services.rate_limits.login_per_ip.check(&request.client_ip.to_string())?;
    let body = request.body;
    let login::v3::LoginInfo::Password(password) = &body.login_info else {
        return Err(Error::matrix(StatusCode::BAD_REQUEST, ErrorKind::Unknown, "Unsupported login type"));
    };
    #[allow(deprecated)] // the legacy `user` field is still sent by older clients
    let user = match (&password.identifier, &password.user) {
        (Some(UserIdentifier::Matrix(id)), _) => id.user.clone(),
        (Some(_), _) => return Err(Error::forbidden("Only m.id.user identifiers are supported")),
        (None, Some(user)) => user.clone(),
        (None, None) => return Err(Error::missing_param("Missing identifier")),
    };
    let user_id = services.users.user_id_for_login(&user)?;
    services.rate_limits.login_per_account.check(user_id.as_str())?;
    if !services.users.check_password(&user_id, &password.password).await? {
        if services.users.get(&user_id)?.is_some_and(|account| account.deactivated) {
            return Err(Error::matrix(StatusCode::FORBIDDEN, ErrorKind::UserDeactivated, "This account has been deactivated"));
        }
        services.rate_limits.login_failures_per_account.check(user_id.as_str())?;
        return Err(Error::forbidden("Invalid username or password"));
    }
    let session = services
        .sessions
        .create_session(&user_id, body.device_id, body.initial_device_display_name, body.refresh_token)
        .await?;
    let mut response = login::v3::Response::new(user_id, session.access_token, session.device_id);
    response.refresh_token = session.refresh_token;
    response.expires_in = session.expires_in;
    Ok(RumaResponse(response))
}

/// `POST /_matrix/client/v3/logout`: ends this session and deletes its device.
pub async fn logout_route(
    State(services): State<AppState>,
    request: Ruma<logout::v3::Request>,
) -> Result<RumaResponse<logout::v3::Response>> {
    let sender = request.sender()?;
    services.sessions.delete_devices(&sender.user_id, std::slice::from_ref(&sender.device_id)).await?;
    Ok(RumaResponse(logout::v3::Response::new()))
}

/// `POST /_matrix/client/v3/logout/all`
pub async fn logout_all_route(
    State(services): State<AppState>,
    request: Ruma<logout_all::v3::Request>,
) -> Result<RumaResponse<logout_all::v3::Response>> {
    let sender = request.sender()?;
    services.sessions.delete_all_devices(&sender.user_id, None).await?;
    Ok(RumaResponse(logout_all::v3::Response::new()))
}

/// `POST /_matrix/client/v3/refresh`
pub async fn refresh_token_route(
    State(services): State<AppState>,
    request: Ruma<refresh_token::v3::Request>,
) -> Result<RumaResponse<refresh_token::v3::Response>> {
    let session = services.sessions.refresh(&request.body.refresh_token).await?;
    let mut response = refresh_token::v3::Response::new(session.access_token);
    response.refresh_token = session.refresh_token;
    response.expires_in_ms = session.expires_in;
    Ok(RumaResponse(response))
}
