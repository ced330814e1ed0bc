//! Reports of events and rooms, and the admin API that lists them.

use complement_tests::*;

use crate::{
    admin::{admin_options, shared_secret_register},
    room_support::*,
};

#[tokio::test]
async fn users_report_events_and_rooms_and_admins_list_them() {
    let server = TestServer::start(admin_options()).await;
    let admin = shared_secret_register(&server, "root", "pw", true).await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let spam = send_text(&server, &alice, &room, "buy now").await;
    let private = create_room(&server, &alice, json!({"preset": "private_chat"})).await;
    let secret = send_text(&server, &alice, &private, "secret").await;

    let reported = server.post(&room_path(&room, &format!("/report/{}", enc(&spam))), &bob, &json!({"reason": "spam"})).await;
    reported.ok();
    // An event the reporter cannot see is reported as missing.
    let hidden = server.post(&room_path(&private, &format!("/report/{}", enc(&secret))), &bob, &json!({"reason": "?"})).await;
    assert_matrix_error(&hidden, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let room_report = server.post(&room_path(&room, "/report"), &bob, &json!({"reason": "whole room is spam"})).await;
    room_report.ok();

    let listed = server.get("/_synapse/admin/v1/event_reports", &admin).await;
    let listed = listed.ok().clone();
    assert_eq!(listed["total"], 1, "{listed}");
    let report = &listed["event_reports"][0];
    assert_eq!(report["event_id"], spam.as_str());
    assert_eq!(report["user_id"], bob.user_id.as_str());
    assert_eq!(report["sender"], alice.user_id.as_str());
    assert_eq!(report["reason"], "spam");
    let id = report["id"].as_u64().unwrap_or_default();
    let detail = server.get(&format!("/_synapse/admin/v1/event_reports/{id}"), &admin).await;
    assert_eq!(detail.ok()["event_json"]["content"]["body"], "buy now");
    let rooms = server.get("/_synapse/admin/v1/room_reports", &admin).await;
    assert_eq!(rooms.ok()["room_reports"][0]["reason"], "whole room is spam");

    // Not for ordinary users; deletable by admins.
    let refused = server.get("/_synapse/admin/v1/event_reports", &bob).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    server.delete(&format!("/_synapse/admin/v1/event_reports/{id}"), &admin, &json!({})).await.ok();
    let after = server.get("/_synapse/admin/v1/event_reports", &admin).await;
    assert_eq!(after.ok()["total"], 0);
}
