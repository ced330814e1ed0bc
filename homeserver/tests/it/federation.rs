//! Two real Myelin servers federating over TLS on loopback: key fetching and X-Matrix.

use myelin::Server;
use myelin_config::Config;
use tempfile::TempDir;

use crate::support::test_config;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server named after its own federation address, so peers reach it directly.
fn federating_config(dir: &TempDir) -> Config {
    let port = free_port();
    let mut config = test_config(dir);
    config.server_name = format!("127.0.0.1:{port}");
    config.federation.listen = Some(format!("127.0.0.1:{port}"));
    config.federation.generate_self_signed_certificate = true;
    config.federation.verify_tls = false;
    config.federation.allow_private_addresses = true;
    config
}

#[tokio::test]
async fn servers_fetch_each_others_keys_and_verify_signed_requests() {
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let a = Server::start(federating_config(&dir_a)).await.unwrap();
    let b = Server::start(federating_config(&dir_b)).await.unwrap();
    let a_name = a.services().server_name.clone();
    let b_name = b.services().server_name.clone();

    let bee = ruma::UserId::parse(format!("@bee:{b_name}")).unwrap();
    b.services().users.create(&bee, Some("pw"), false, Some("Bee".to_owned())).await.unwrap();

    // A asks B for a profile with a signed request; B fetches A's key to check the signature.
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("user_id", bee.as_str()).finish();
    let profile = a
        .services()
        .federation
        .get_signed_json(&b_name, &format!("/_matrix/federation/v1/query/profile?{query}"))
        .await
        .unwrap();
    assert_eq!(profile["displayname"], "Bee", "{profile}");
    // B now knows A's current key.
    let a_key_id = a.services().signing_key.key_id();
    let fetched = b.services().remote_keys.current_key(&a_name, &a_key_id).await.unwrap();
    assert_eq!(fetched.len(), 32);

    // A request without a signature, or signed by a key A never published, is refused.
    let http = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let url = format!("https://{}/_matrix/federation/v1/query/profile?{query}", b.federation_addr().unwrap());
    let unsigned = http.get(&url).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let body: serde_json::Value = unsigned.json().await.unwrap();
    assert_eq!(body["errcode"], "M_UNAUTHORIZED");

    let impostor = myelin_federation::ServerSigningKey::generate().unwrap();
    let forged = myelin_federation::xmatrix::sign_request(
        &impostor,
        &a_name,
        &b_name,
        &http::Method::GET,
        &format!("/_matrix/federation/v1/query/profile?{query}"),
        None,
    )
    .unwrap();
    let refused = http.get(&url).header("authorization", forged).send().await.unwrap();
    assert_eq!(refused.status(), 401);

    // Replaying A's genuine header against another path fails too.
    let genuine = myelin_federation::xmatrix::sign_request(
        &a.services().signing_key,
        &a_name,
        &b_name,
        &http::Method::GET,
        "/_matrix/federation/v1/query/profile?user_id=%40someone",
        None,
    )
    .unwrap();
    let replayed = http.get(&url).header("authorization", genuine).send().await.unwrap();
    assert_eq!(replayed.status(), 401);

    // B acts as a notary for A: A's own response, countersigned by B.
    let notary = format!("https://{}/_matrix/key/v2/query/{a_name}", b.federation_addr().unwrap());
    let answer: serde_json::Value = http.get(&notary).send().await.unwrap().json().await.unwrap();
    let keys = &answer["server_keys"][0];
    assert_eq!(keys["server_name"], a_name.as_str(), "{answer}");
    assert!(keys["verify_keys"][&a_key_id].is_object(), "{answer}");
    assert!(keys["signatures"][a_name.as_str()][&a_key_id].is_string(), "{answer}");
    assert!(keys["signatures"][b_name.as_str()][b.services().signing_key.key_id()].is_string(), "{answer}");
    let batch: serde_json::Value = http
        .post(format!("https://{}/_matrix/key/v2/query", b.federation_addr().unwrap()))
        .json(&serde_json::json!({"server_keys": {a_name.as_str(): {}, b_name.as_str(): {}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batch["server_keys"].as_array().unwrap().len(), 2, "{batch}");

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
