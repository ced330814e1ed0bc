//! Device keys, one-time keys, cross-signing keys and signatures (spec: "End-to-end
//! encryption"). Remote users' keys are fetched from their servers (`service/e2ee/remote.rs`).

use std::collections::BTreeMap;

use axum::extract::State;
use ruma::{
    OwnedDeviceId, OwnedUserId,
    api::client::keys::{claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures, upload_signing_keys},
    encryption::OneTimeKey,
    serde::Raw,
};
use serde_json::{Value, json};

use super::to_raw;
use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{
        e2ee::{cross_signing::CrossSigningUpload, keys::{ClaimedKeys, KeyUpload}},
        sync::parse_since,
    },
};

pub(super) fn raw_to_value<T>(raw: &Raw<T>) -> Result<Value> {
    serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))
}

pub(super) fn key_map(keys: &BTreeMap<ruma::OwnedOneTimeKeyId, Raw<OneTimeKey>>) -> Result<BTreeMap<String, Value>> {
    keys.iter().map(|(id, key)| Ok((id.to_string(), raw_to_value(key)?))).collect()
}

fn counts_to_ruma(counts: BTreeMap<String, u64>) -> BTreeMap<ruma::OneTimeKeyAlgorithm, ruma::UInt> {
    counts.into_iter().map(|(algorithm, count)| (algorithm.as_str().into(), ruma::UInt::new_saturating(count))).collect()
}

/// Fallback keys under their unstable name (MSC2732), which clients from before the stable
/// `fallback_keys` still send; ruma knows only the stable one.
fn unstable_fallback_keys(raw_body: &[u8]) -> Result<BTreeMap<String, Value>> {
    let body: Value = serde_json::from_slice(raw_body).map_err(|e| Error::bad_json(e.to_string()))?;
    match body.get("org.matrix.msc2732.fallback_keys") {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(keys)) => Ok(keys.clone().into_iter().collect()),
        Some(_) => Err(Error::bad_json("org.matrix.msc2732.fallback_keys must be an object")),
    }
}

/// `POST /_matrix/client/v3/keys/upload`
pub async fn upload_keys_route(
    State(services): State<AppState>,
    request: Ruma<upload_keys::v3::Request>,
) -> Result<RumaResponse<upload_keys::v3::Response>> {
    let sender = request.sender()?.clone();
    let body = request.body;
    let mut fallback_keys = key_map(&body.fallback_keys)?;
    if fallback_keys.is_empty() {
        fallback_keys = unstable_fallback_keys(&request.raw_body)?;
    }
    let upload = KeyUpload {
        device_keys: body.device_keys.as_ref().map(raw_to_value).transpose()?,
        one_time_keys: key_map(&body.one_time_keys)?,
        fallback_keys,
    };
    let counts = services.e2ee.upload_keys(&sender.user_id, &sender.device_id, upload).await?;
    Ok(RumaResponse(upload_keys::v3::Response::new(counts_to_ruma(counts))))
}

/// `POST /_matrix/client/v3/keys/query`
pub async fn get_keys_route(
    State(services): State<AppState>,
    request: Ruma<get_keys::v3::Request>,
) -> Result<RumaResponse<get_keys::v3::Response>> {
    let requester = request.sender()?.user_id.clone();
    let answer = services.e2ee.query_keys(&requester, &request.body.device_keys, request.body.timeout, &|user, device| {
        services.sessions.device(user, device).ok().flatten().and_then(|device| device.display_name)
    })
    .await?;
    let mut response = get_keys::v3::Response::new();
    response.failures = answer.failures.into_iter().collect();
    for (user, devices) in answer.device_keys {
        let devices = devices.into_iter().map(|(device, keys)| Ok((device, to_raw(&keys)?))).collect::<Result<_>>()?;
        response.device_keys.insert(user, devices);
    }
    for (target, source) in [
        (&mut response.master_keys, answer.master_keys),
        (&mut response.self_signing_keys, answer.self_signing_keys),
        (&mut response.user_signing_keys, answer.user_signing_keys),
    ] {
        for (user, key) in source {
            target.insert(user, to_raw(&key)?);
        }
    }
    Ok(RumaResponse(response))
}

/// `POST /_matrix/client/v3/keys/claim`
pub async fn claim_keys_route(
    State(services): State<AppState>,
    request: Ruma<claim_keys::v3::Request>,
) -> Result<RumaResponse<claim_keys::v3::Response>> {
    let requests: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>> = request
        .body
        .one_time_keys
        .iter()
        .map(|(user, devices)| (user.clone(), devices.iter().map(|(device, algorithm)| (device.clone(), algorithm.to_string())).collect()))
        .collect();
    let answer = services.e2ee.claim_keys(&requests, request.body.timeout).await?;
    let one_time_keys = claimed_keys_to_ruma(answer.one_time_keys)?;
    let mut response = claim_keys::v3::Response::new(one_time_keys);
    response.failures = answer.failures.into_iter().collect();
    Ok(RumaResponse(response))
}

/// `GET /_matrix/client/v3/keys/changes`
pub async fn get_key_changes_route(
    State(services): State<AppState>,
    request: Ruma<get_key_changes::v3::Request>,
) -> Result<RumaResponse<get_key_changes::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let from = parse_since(Some(&request.body.from))?.unwrap_or_default();
    let to = parse_since(Some(&request.body.to))?.unwrap_or_default().min(services.rooms.stream.safe());
    let (changed, left) = services.e2ee.device_list_changes(&user, from, to.max(from))?;
    let parse = |users: Vec<String>| users.into_iter().filter_map(|user| OwnedUserId::try_from(user).ok()).collect();
    Ok(RumaResponse(get_key_changes::v3::Response::new(parse(changed), parse(left))))
}

/// `POST /_matrix/client/v3/keys/device_signing/upload`: the first upload needs no password
/// (a new account sets up cross-signing right away); replacing keys does.
pub async fn upload_signing_keys_route(
    State(services): State<AppState>,
    request: Ruma<upload_signing_keys::v3::Request>,
) -> Result<RumaResponse<upload_signing_keys::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    let upload = CrossSigningUpload {
        master: body.master_key.as_ref().map(raw_to_value).transpose()?,
        self_signing: body.self_signing_key.as_ref().map(raw_to_value).transpose()?,
        user_signing: body.user_signing_key.as_ref().map(raw_to_value).transpose()?,
    };
    if services.e2ee.cross_signing_upload_needs_auth(&user, &upload)? {
        services.uiaa.require_password(&services.users, &user, body.auth.as_ref()).await?;
    }
    services.e2ee.upload_cross_signing_keys(&user, upload).await?;
    Ok(RumaResponse(upload_signing_keys::v3::Response::new()))
}

/// `POST /_matrix/client/v3/keys/signatures/upload`
pub async fn upload_signatures_route(
    State(services): State<AppState>,
    request: Ruma<upload_signatures::v3::Request>,
) -> Result<RumaResponse<upload_signatures::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let mut signed = BTreeMap::new();
    for (target, keys) in request.body.signed_keys {
        let Value::Object(keys) = serde_json::to_value(&keys).map_err(|e| Error::bad_json(e.to_string()))? else {
            return Err(Error::bad_json("signed keys must be objects"));
        };
        signed.insert(target, keys.into_iter().collect());
    }
    let failures = services.e2ee.upload_signatures(&user, signed).await?;
    let mut response = upload_signatures::v3::Response::new();
    for (target, by_key) in failures {
        let mut typed = BTreeMap::new();
        for (key_id, failure) in by_key {
            // ruma's `Failure` has no public constructor; it is built from its wire form.
            let failure = serde_json::from_value(json!({ "errcode": failure.errcode, "error": failure.error }))
                .map_err(|e| Error::internal(e.to_string()))?;
            typed.insert(key_id, failure);
        }
        response.failures.insert(target, typed);
    }
    Ok(RumaResponse(response))
}

/// Claimed keys in ruma's shape (client and federation answers alike).
pub(crate) fn claimed_keys_to_ruma(claimed: ClaimedKeys) -> Result<BTreeMap<OwnedUserId, claim_keys::v3::OneTimeKeys>> {
    let mut one_time_keys = BTreeMap::new();
    for (user, devices) in claimed {
        let mut by_device = BTreeMap::new();
        for (device, keys) in devices {
            let mut typed = BTreeMap::new();
            for (key_id, key) in keys {
                let key_id = ruma::OwnedOneTimeKeyId::try_from(key_id.as_str()).map_err(|e| Error::internal(format!("stored key ID: {e}")))?;
                typed.insert(key_id, to_raw(&key)?);
            }
            by_device.insert(device, typed);
        }
        one_time_keys.insert(user, by_device);
    }
    Ok(one_time_keys)
}
