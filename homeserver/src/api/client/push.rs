//! Push rules (`/pushrules/…`). Pushers and notifications come with the push gateway work.

use axum::extract::State;
use http::StatusCode;
use ruma::api::{
    client::push::{
        delete_pushrule, get_pushrule, get_pushrule_actions, get_pushrule_enabled, get_pushrules_all,
        get_pushrules_global_scope, set_pushrule, set_pushrule_actions, set_pushrule_enabled,
    },
    error::ErrorKind,
};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
};

fn rule_not_found() -> Error {
    Error::not_found("Push rule not found")
}

/// `GET /_matrix/client/v3/pushrules/`
pub async fn get_pushrules_all_route(
    State(services): State<AppState>,
    request: Ruma<get_pushrules_all::v3::Request>,
) -> Result<RumaResponse<get_pushrules_all::v3::Response>> {
    let ruleset = services.push_rules.ruleset(&request.sender()?.user_id)?;
    Ok(RumaResponse(get_pushrules_all::v3::Response::new(ruleset)))
}

/// `GET /_matrix/client/v3/pushrules/global/`
pub async fn get_pushrules_global_scope_route(
    State(services): State<AppState>,
    request: Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<RumaResponse<get_pushrules_global_scope::v3::Response>> {
    let ruleset = services.push_rules.ruleset(&request.sender()?.user_id)?;
    Ok(RumaResponse(get_pushrules_global_scope::v3::Response::new(ruleset)))
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
pub async fn get_pushrule_route(
    State(services): State<AppState>,
    request: Ruma<get_pushrule::v3::Request>,
) -> Result<RumaResponse<get_pushrule::v3::Response>> {
    let ruleset = services.push_rules.ruleset(&request.sender()?.user_id)?;
    let rule = ruleset.get(request.body.kind.clone(), &request.body.rule_id).ok_or_else(rule_not_found)?;
    Ok(RumaResponse(get_pushrule::v3::Response::new(rule.to_owned().into())))
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
pub async fn set_pushrule_route(
    State(services): State<AppState>,
    request: Ruma<set_pushrule::v3::Request>,
) -> Result<RumaResponse<set_pushrule::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    let mut ruleset = services.push_rules.ruleset(&user)?;
    ruleset
        .insert(body.rule, body.after.as_deref(), body.before.as_deref())
        .map_err(|e| Error::matrix(StatusCode::BAD_REQUEST, ErrorKind::InvalidParam, e.to_string()))?;
    services.push_rules.save(&user, &ruleset).await?;
    Ok(RumaResponse(set_pushrule::v3::Response::new()))
}

/// `DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
pub async fn delete_pushrule_route(
    State(services): State<AppState>,
    request: Ruma<delete_pushrule::v3::Request>,
) -> Result<RumaResponse<delete_pushrule::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = &request.body;
    let mut ruleset = services.push_rules.ruleset(&user)?;
    if ruleset.get(body.kind.clone(), &body.rule_id).is_none() {
        return Err(rule_not_found());
    }
    ruleset
        .remove(body.kind.clone(), &body.rule_id)
        .map_err(|e| Error::matrix(StatusCode::BAD_REQUEST, ErrorKind::InvalidParam, e.to_string()))?;
    services.push_rules.save(&user, &ruleset).await?;
    Ok(RumaResponse(delete_pushrule::v3::Response::new()))
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`
pub async fn get_pushrule_enabled_route(
    State(services): State<AppState>,
    request: Ruma<get_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<get_pushrule_enabled::v3::Response>> {
    let ruleset = services.push_rules.ruleset(&request.sender()?.user_id)?;
    let rule = ruleset.get(request.body.kind.clone(), &request.body.rule_id).ok_or_else(rule_not_found)?;
    Ok(RumaResponse(get_pushrule_enabled::v3::Response::new(rule.enabled())))
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`
pub async fn set_pushrule_enabled_route(
    State(services): State<AppState>,
    request: Ruma<set_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<set_pushrule_enabled::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = &request.body;
    let mut ruleset = services.push_rules.ruleset(&user)?;
    ruleset.set_enabled(body.kind.clone(), &body.rule_id, body.enabled).map_err(|_| rule_not_found())?;
    services.push_rules.save(&user, &ruleset).await?;
    Ok(RumaResponse(set_pushrule_enabled::v3::Response::new()))
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`
pub async fn get_pushrule_actions_route(
    State(services): State<AppState>,
    request: Ruma<get_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<get_pushrule_actions::v3::Response>> {
    let ruleset = services.push_rules.ruleset(&request.sender()?.user_id)?;
    let rule = ruleset.get(request.body.kind.clone(), &request.body.rule_id).ok_or_else(rule_not_found)?;
    Ok(RumaResponse(get_pushrule_actions::v3::Response::new(rule.actions().to_vec())))
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`
pub async fn set_pushrule_actions_route(
    State(services): State<AppState>,
    request: Ruma<set_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<set_pushrule_actions::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    let mut ruleset = services.push_rules.ruleset(&user)?;
    ruleset.set_actions(body.kind.clone(), &body.rule_id, body.actions).map_err(|_| rule_not_found())?;
    services.push_rules.save(&user, &ruleset).await?;
    Ok(RumaResponse(set_pushrule_actions::v3::Response::new()))
}
