//! Remote users' keys: `/keys/query` and `/keys/claim` forwarded to their servers, one request
//! per server, all servers at once, each bounded by the client's timeout. A server that does
//! not answer is reported in `failures` and costs only its own users' keys.

use std::{collections::BTreeMap, time::Duration};

use futures::future::join_all;
use ruma::{
    OwnedDeviceId, OwnedServerName, OwnedUserId,
    api::federation::keys::{claim_keys, get_keys},
};
use serde_json::{Value, json};

use super::{
    E2ee,
    query::{ClaimAnswer, KeysAnswer},
};

/// How long a client waits for other servers when it names no timeout (the spec's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn by_server<T>(requests: BTreeMap<OwnedUserId, T>) -> BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, T>> {
    let mut grouped: BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, T>> = BTreeMap::new();
    for (user, value) in requests {
        grouped.entry(user.server_name().to_owned()).or_default().insert(user, value);
    }
    grouped
}

/// The server's answer, or its failure recorded in `failures`.
fn answered<T>(
    server: &OwnedServerName,
    result: Result<crate::error::Result<T>, tokio::time::error::Elapsed>,
    failures: &mut BTreeMap<String, Value>,
) -> Option<T> {
    let message = match result {
        Ok(Ok(response)) => return Some(response),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    failures.insert(server.to_string(), json!({ "status": 503, "message": message }));
    None
}

fn parsed<T>(raw: &ruma::serde::Raw<T>) -> Option<Value> {
    serde_json::from_str(raw.json().get()).ok()
}

impl E2ee {
    pub(super) async fn query_remote(&self, answer: &mut KeysAnswer, users: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>, timeout: Option<Duration>) {
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let queries = by_server(users).into_iter().map(|(server, users)| async move {
            let request = get_keys::v1::Request::new(users);
            let result = tokio::time::timeout(timeout, self.federation.send(&server, request)).await;
            (server, result)
        });
        for (server, result) in join_all(queries).await {
            let Some(response) = answered(&server, result, &mut answer.failures) else { continue };
            // A server may only speak for its own users.
            let own = |user: &OwnedUserId| user.server_name() == server;
            for (user, devices) in response.device_keys.into_iter().filter(|(user, _)| own(user)) {
                let devices = devices.into_iter().filter_map(|(device, keys)| Some((device, parsed(&keys)?))).collect();
                answer.device_keys.insert(user, devices);
            }
            for (target, source) in
                [(&mut answer.master_keys, response.master_keys), (&mut answer.self_signing_keys, response.self_signing_keys)]
            {
                target.extend(source.into_iter().filter(|(user, _)| own(user)).filter_map(|(user, key)| Some((user, parsed(&key)?))));
            }
        }
    }

    pub(super) async fn claim_remote(&self, answer: &mut ClaimAnswer, requests: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>, timeout: Option<Duration>) {
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let claims = by_server(requests).into_iter().map(|(server, users)| async move {
            let claims = users
                .into_iter()
                .map(|(user, devices)| (user, devices.into_iter().map(|(device, algorithm)| (device, algorithm.as_str().into())).collect()))
                .collect();
            let result = tokio::time::timeout(timeout, self.federation.send(&server, claim_keys::v1::Request::new(claims))).await;
            (server, result)
        });
        for (server, result) in join_all(claims).await {
            let Some(response) = answered(&server, result, &mut answer.failures) else { continue };
            for (user, devices) in response.one_time_keys.into_iter().filter(|(user, _)| user.server_name() == server) {
                let devices = devices
                    .into_iter()
                    .map(|(device, keys)| (device, keys.into_iter().filter_map(|(id, key)| Some((id.to_string(), parsed(&key)?))).collect()))
                    .collect();
                answer.one_time_keys.insert(user, devices);
            }
        }
    }
}
