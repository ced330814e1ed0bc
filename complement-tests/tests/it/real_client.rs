//! A real Matrix client library (matrix-sdk, no E2EE, in-memory store)
//! against the server: discovery, registration through UIA, login, profile,
//! logout.

use complement_tests::*;
use matrix_sdk::Client;
use matrix_sdk::ruma::api::client::account::register;
use matrix_sdk::ruma::api::client::uiaa;

#[tokio::test]
async fn matrix_sdk_register_login_profile_logout() {
    let server = TestServer::start_default().await;

    // Registration through the SDK, completing the dummy UIA stage.
    let client = Client::builder()
        .homeserver_url(server.url())
        .build()
        .await
        .expect("build the SDK client");
    let mut request = register::v3::Request::new();
    request.username = Some("alice".to_owned());
    request.password = Some("pw-alice".to_owned());
    request.initial_device_display_name = Some("matrix-sdk test".to_owned());
    let error = client
        .matrix_auth()
        .register(request.clone())
        .await
        .expect_err("the first request must ask for UIA");
    let info = error
        .as_uiaa_response()
        .unwrap_or_else(|| panic!("not a UIA response: {error:?}"));
    assert!(
        info.flows
            .iter()
            .any(|f| f.stages.iter().any(|s| s.as_str() == "m.login.dummy")),
        "{:?}",
        info.flows
    );
    let mut dummy = uiaa::Dummy::new();
    dummy.session = info.session.clone();
    request.auth = Some(uiaa::AuthData::Dummy(dummy));
    let response = client
        .matrix_auth()
        .register(request)
        .await
        .expect("register with the dummy stage");
    assert_eq!(response.user_id.as_str(), server.user_id("alice"));
    assert_eq!(
        client.user_id().map(|u| u.as_str().to_owned()),
        Some(server.user_id("alice"))
    );

    let whoami = client.whoami().await.expect("whoami");
    assert_eq!(whoami.user_id.as_str(), server.user_id("alice"));
    assert_eq!(whoami.device_id.as_deref(), client.device_id());

    // Profile through the SDK, visible over plain HTTP too.
    client
        .account()
        .set_display_name(Some("Alice (SDK)"))
        .await
        .expect("set the display name");
    assert_eq!(
        client
            .account()
            .get_display_name()
            .await
            .expect("get the display name")
            .as_deref(),
        Some("Alice (SDK)")
    );
    let resp = server
        .get(
            &format!(
                "/_matrix/client/v3/profile/{}/displayname",
                server.user_id("alice")
            ),
            &NoAuth,
        )
        .await;
    assert_eq!(resp.ok()["displayname"], "Alice (SDK)");

    // Log out: the SDK's token stops working.
    let token = client
        .access_token()
        .expect("a logged-in client has a token");
    client.matrix_auth().logout().await.expect("logout");
    assert_matrix_error(
        &server.whoami(&token).await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );

    // A fresh client logs in with the password.
    let client = Client::builder()
        .homeserver_url(server.url())
        .build()
        .await
        .expect("build the SDK client");
    let login = client
        .matrix_auth()
        .login_username("alice", "pw-alice")
        .initial_device_display_name("second device")
        .send()
        .await
        .expect("password login through the SDK");
    assert_eq!(login.user_id.as_str(), server.user_id("alice"));
    assert_eq!(
        client.whoami().await.expect("whoami").user_id.as_str(),
        server.user_id("alice")
    );
    assert_eq!(
        client
            .account()
            .get_display_name()
            .await
            .unwrap()
            .as_deref(),
        Some("Alice (SDK)")
    );
    let resp = server
        .get(
            &format!("/_matrix/client/v3/devices/{}", login.device_id),
            &login.access_token,
        )
        .await;
    assert_eq!(resp.ok()["display_name"], "second device");

    // A wrong password surfaces as an error.
    let other = Client::builder()
        .homeserver_url(server.url())
        .build()
        .await
        .unwrap();
    let error = other
        .matrix_auth()
        .login_username("alice", "nope")
        .send()
        .await
        .expect_err("wrong password");
    assert_eq!(
        error.client_api_error_kind(),
        Some(&matrix_sdk::ruma::api::error::ErrorKind::Forbidden),
        "{error:?}"
    );
}

#[tokio::test]
async fn matrix_sdk_discovers_the_homeserver_via_well_known() {
    // The server name is the listener address, so that an HTTP client can
    // fetch http://<server name>/.well-known/matrix/client.
    let port = free_port();
    let server_name = format!("127.0.0.1:{port}");
    let server = TestServer::start(
        ServerOptions::new()
            .server_name(&server_name)
            .env("MYELIN_LISTEN", server_name.clone()),
    )
    .await;
    server.register("alice", "pw").await;

    let name = matrix_sdk::ServerName::parse(&server_name).expect("a valid server name");
    let client = Client::builder()
        .insecure_server_name_no_tls(&name)
        .build()
        .await
        .expect("discovery via .well-known");
    assert_eq!(
        client.homeserver().as_str().trim_end_matches('/'),
        server.url()
    );
    let login = client
        .matrix_auth()
        .login_username(format!("@alice:{server_name}"), "pw")
        .send()
        .await
        .expect("login");
    assert_eq!(login.user_id.as_str(), format!("@alice:{server_name}"));

    // The "server name or URL" entry point accepts the URL directly.
    let client = Client::builder()
        .server_name_or_homeserver_url(server.url())
        .build()
        .await
        .expect("build from URL");
    assert_eq!(
        client.homeserver().as_str().trim_end_matches('/'),
        server.url()
    );
    client
        .matrix_auth()
        .login_username("alice", "pw")
        .send()
        .await
        .expect("login");
}
