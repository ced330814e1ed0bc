//! Server-side search (`POST /search`, `room_events`): matches in `content.body`,
//! `content.name` and `content.topic`, Unicode-aware case folding, filters, both orderings,
//! context with profiles, groupings, highlights, pagination to the end, what the searcher may
//! not see (rooms left, history before a `joined` join), redactions, events received over
//! federation, and the errors.

use std::collections::HashSet;

use complement_tests::*;

use crate::{federation_rooms::eventually, room_support::*};

/// `POST /search` with `room_events` criteria; `next_batch` as the query parameter.
async fn search_raw(server: &TestServer, who: &Session, criteria: Value, next_batch: Option<&str>) -> Resp {
    let query = next_batch.map(|token| format!("?next_batch={}", enc(token))).unwrap_or_default();
    server.post(&format!("{C}/search{query}"), who, &json!({"search_categories": {"room_events": criteria}})).await
}

/// The `room_events` part of a successful search.
async fn search(server: &TestServer, who: &Session, criteria: Value) -> Value {
    let resp = search_raw(server, who, criteria, None).await;
    resp.ok()["search_categories"]["room_events"].clone()
}

/// The IDs of a search's results, in order.
fn result_ids(room_events: &Value) -> Vec<String> {
    room_events["results"].as_array().unwrap_or_else(|| panic!("no results list: {room_events}")).iter().map(|r| r["result"]["event_id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The IDs found for `term` by `who`.
async fn found(server: &TestServer, who: &Session, term: &str) -> Vec<String> {
    result_ids(&search(server, who, json!({"search_term": term})).await)
}

async fn redact(server: &TestServer, who: &Session, room: &str, id: &str) {
    let path = room_path(room, &format!("/redact/{}/{}", enc(id), txn_id()));
    server.put(&path, who, &json!({})).await.ok();
}

#[tokio::test]
async fn matches_body_name_and_topic_folding_case_across_scripts() {
    let server = TestServer::start_default().await;
    let [alice] = users(&server, ["alice"]).await;
    let room = create_room(&server, &alice, json!({"name": "Quarterly Planning", "topic": "Budget and HEADCOUNT"})).await;
    let emile = send_text(&server, &alice, &room, "Émile wrote the report").await;
    let russian = send_text(&server, &alice, &room, "Привет, мир! Как дела?").await;
    let japanese = send_text(&server, &alice, &room, "東京タワーは高い").await;
    let lunch = send_text(&server, &alice, &room, "Lunch at NOON, then meetings").await;

    assert_eq!(found(&server, &alice, "émile").await, [emile.clone()]);
    assert_eq!(found(&server, &alice, "ÉMILE").await, [emile.clone()]);
    assert_eq!(found(&server, &alice, "E\u{301}mile").await, [emile.clone()], "a decomposed accent is the same word");
    assert_eq!(found(&server, &alice, "ПРИВЕТ").await, [russian.clone()]);
    assert_eq!(found(&server, &alice, "мир").await, [russian]);
    assert_eq!(found(&server, &alice, "東京").await, [japanese.clone()]);
    assert_eq!(found(&server, &alice, "タワー").await, [japanese]);
    assert_eq!(found(&server, &alice, "noon").await, [lunch.clone()]);
    assert_eq!(found(&server, &alice, "meeting").await, [lunch.clone()], "a word finds the words it begins");
    assert_eq!(found(&server, &alice, "lunch noon").await, [lunch.clone()], "every word must match");
    assert!(found(&server, &alice, "lunch budget").await.is_empty());
    assert!(found(&server, &alice, "absent").await.is_empty());

    let name_id = get_state_event(&server, &alice, &room, "m.room.name", "").await["event_id"].as_str().unwrap_or_default().to_owned();
    let topic_id = get_state_event(&server, &alice, &room, "m.room.topic", "").await["event_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(found(&server, &alice, "quarterly").await, [name_id.clone()]);
    assert_eq!(found(&server, &alice, "headcount").await, [topic_id.clone()]);
    let by_key = |term: &str, key: &str| json!({"search_term": term, "keys": [key]});
    assert!(result_ids(&search(&server, &alice, by_key("quarterly", "content.body")).await).is_empty());
    assert_eq!(result_ids(&search(&server, &alice, by_key("quarterly", "content.name")).await), [name_id]);
    assert_eq!(result_ids(&search(&server, &alice, by_key("headcount", "content.topic")).await), [topic_id]);
    assert!(result_ids(&search(&server, &alice, by_key("headcount", "content.name")).await).is_empty());

    let body = search(&server, &alice, json!({"search_term": "emile"})).await;
    assert_eq!(body["count"], 0, "accents are not folded away: {body}");
    assert_eq!(body["results"], json!([]), "an empty result list is still a list");
}

#[tokio::test]
async fn filters_narrow_the_rooms_senders_and_types() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let first = public_room(&server, &alice).await;
    let second = public_room(&server, &alice).await;
    join(&server, &bob, &first).await.ok();
    join(&server, &bob, &second).await.ok();
    let a1 = send_text(&server, &alice, &first, "apple from alice").await;
    let b1 = send_text(&server, &bob, &first, "apple from bob").await;
    let a2 = send_text(&server, &alice, &second, "apple in the second room").await;
    let notice = send_event_raw(&server, &bob, &second, "m.room.message", &json!({"msgtype": "m.notice", "body": "apple notice"})).await;
    let notice = notice.ok()["event_id"].as_str().unwrap_or_default().to_owned();
    let image = send_event_raw(&server, &alice, &second, "m.room.message", &json!({"msgtype": "m.image", "body": "apple.png", "url": "mxc://x/y"})).await;
    let image = image.ok()["event_id"].as_str().unwrap_or_default().to_owned();

    let with_filter = async |filter: Value| -> HashSet<String> {
        result_ids(&search(&server, &bob, json!({"search_term": "apple", "filter": filter})).await).into_iter().collect()
    };
    let set = |ids: &[&String]| ids.iter().map(|id| (*id).clone()).collect::<HashSet<String>>();
    assert_eq!(with_filter(json!({})).await, set(&[&a1, &b1, &a2, &notice, &image]));
    assert_eq!(with_filter(json!({"rooms": [first]})).await, set(&[&a1, &b1]));
    assert_eq!(with_filter(json!({"not_rooms": [first]})).await, set(&[&a2, &notice, &image]));
    assert_eq!(with_filter(json!({"senders": [bob.user_id]})).await, set(&[&b1, &notice]));
    assert_eq!(with_filter(json!({"not_senders": [bob.user_id]})).await, set(&[&a1, &a2, &image]));
    assert_eq!(with_filter(json!({"types": ["m.room.name"]})).await, set(&[]));
    assert_eq!(with_filter(json!({"not_types": ["m.room.*"]})).await, set(&[]));
    assert_eq!(with_filter(json!({"types": ["m.room.message"], "contains_url": true})).await, set(&[&image]));
    assert_eq!(with_filter(json!({"rooms": [first], "senders": [alice.user_id]})).await, set(&[&a1]));
    let limited = search(&server, &bob, json!({"search_term": "apple", "filter": {"limit": 2}})).await;
    assert_eq!(result_ids(&limited).len(), 2);
    assert_eq!(limited["count"], 5, "count is the whole search's");
    assert!(limited["next_batch"].is_string());
}

#[tokio::test]
async fn rank_orders_by_relevance_and_recent_by_time() {
    let server = TestServer::start_default().await;
    let [alice] = users(&server, ["alice"]).await;
    let room = public_room(&server, &alice).await;
    let once = send_text(&server, &alice, &room, "a cat sat on the long mat with many other words around it").await;
    let thrice = send_text(&server, &alice, &room, "cat cat cat").await;
    let prefix = send_text(&server, &alice, &room, "category theory").await;
    let newest = send_text(&server, &alice, &room, "the cat again").await;

    let ranked = search(&server, &alice, json!({"search_term": "cat", "order_by": "rank"})).await;
    let ranked_ids = result_ids(&ranked);
    assert_eq!(ranked_ids.first(), Some(&thrice), "most occurrences first: {ranked}");
    let position = |id: &String| ranked_ids.iter().position(|x| x == id);
    assert!(position(&newest) < position(&prefix), "a prefix match ranks below an exact one of like length: {ranked}");
    assert!(position(&prefix).is_some() && position(&once).is_some());
    let ranks: Vec<f64> = ranked["results"].as_array().into_iter().flatten().map(|r| r["rank"].as_f64().unwrap_or(-1.0)).collect();
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]) && ranks.iter().all(|r| *r > 0.0), "ranks descend: {ranks:?}");
    assert_eq!(result_ids(&search(&server, &alice, json!({"search_term": "cat"})).await), ranked_ids, "rank is the default");

    let recent = result_ids(&search(&server, &alice, json!({"search_term": "cat", "order_by": "recent"})).await);
    assert_eq!(recent, [newest, prefix, thrice, once]);
}

#[tokio::test]
async fn context_profiles_groupings_and_highlights() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    server.put(&format!("{C}/profile/{}/displayname", enc(&bob.user_id)), &bob, &json!({"displayname": "Bobby"})).await.ok();
    let first = public_room(&server, &alice).await;
    let second = public_room(&server, &alice).await;
    join(&server, &bob, &first).await.ok();
    let before = send_text(&server, &alice, &first, "hello there").await;
    let hit = send_text(&server, &bob, &first, "Meeting at the harbour").await;
    let after = send_text(&server, &alice, &first, "see you").await;
    let other = send_text(&server, &alice, &second, "harbours are nice").await;

    let body = search(
        &server,
        &alice,
        json!({
            "search_term": "harbour",
            "order_by": "recent",
            "event_context": {"before_limit": 1, "after_limit": 1, "include_profile": true},
            "groupings": {"group_by": [{"key": "room_id"}, {"key": "sender"}]},
        }),
    )
    .await;
    assert_eq!(result_ids(&body), [other.clone(), hit.clone()], "{body}");
    let result = &body["results"][1];
    let context = &result["context"];
    assert_eq!(ids(events_of(&context["events_before"])), [before]);
    assert_eq!(ids(events_of(&context["events_after"])), [after]);
    assert!(context["start"].is_string() && context["end"].is_string(), "{context}");
    assert_eq!(context["profile_info"][&bob.user_id]["displayname"], "Bobby", "{context}");
    assert_eq!(context["profile_info"][&alice.user_id]["displayname"], "alice", "{context}");
    // The tokens page on from the context, as /messages tokens.
    let start = context["start"].as_str().unwrap_or_default();
    let older = messages(&server, &alice, &first, &format!("dir=b&limit=1&from={}", enc(start))).await;
    assert!(ids(events_of(&older.ok()["chunk"])).first().is_some_and(|id| id != &hit));

    let mut highlights: Vec<&str> = body["highlights"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    highlights.sort_unstable();
    assert_eq!(highlights, ["harbour", "harbours"]);

    let by_room = &body["groups"]["room_id"];
    assert_eq!(by_room[&first]["results"], json!([hit]), "{body}");
    assert_eq!(by_room[&second]["results"], json!([other]));
    assert!(by_room[&second]["order"].as_u64() > by_room[&first]["order"].as_u64(), "the newer result's room orders higher");
    assert!(by_room[&first].get("next_batch").is_none());
    let by_sender = &body["groups"]["sender"];
    assert_eq!(by_sender[&bob.user_id]["results"], json!([hit]));
    assert_eq!(by_sender[&alice.user_id]["results"], json!([other]));

    let plain = search(&server, &alice, json!({"search_term": "harbour"})).await;
    assert!(plain["results"][0].get("context").is_none(), "no context unless asked");
    assert!(plain.get("groups").is_none());

    let state = search(&server, &alice, json!({"search_term": "harbour", "include_state": true})).await;
    assert!(find_state(events_of(&state["state"][&first]), "m.room.create", "").is_some(), "{state}");
}

#[tokio::test]
async fn pagination_runs_until_exhausted_in_both_orders_and_per_group() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let mut sent = HashSet::new();
    for i in 0..23 {
        let who = if i % 3 == 0 { &bob } else { &alice };
        let words = "zebra ".repeat(1 + i % 4);
        sent.insert(send_text(&server, who, &room, &format!("{words} number {i}")).await);
    }
    for order in ["rank", "recent"] {
        let criteria = json!({"search_term": "zebra", "order_by": order, "filter": {"limit": 5}});
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        for page in 0.. {
            assert!(page < 10, "pagination never ended");
            let resp = search_raw(&server, &alice, criteria.clone(), token.as_deref()).await;
            let body = &resp.ok()["search_categories"]["room_events"];
            assert_eq!(body["count"], 23);
            let ids = result_ids(body);
            assert!(ids.len() <= 5);
            seen.extend(ids);
            match body["next_batch"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{order}: every result once");
        assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), sent, "{order}");
    }
    // A group's token pages through that group alone.
    let grouped = json!({"search_term": "zebra", "order_by": "recent", "filter": {"limit": 4}, "groupings": {"group_by": [{"key": "sender"}]}});
    let first = search(&server, &alice, grouped.clone()).await;
    let bob_group = &first["groups"]["sender"][&bob.user_id];
    let mut bobs: Vec<String> = bob_group["results"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    let mut token = bob_group["next_batch"].as_str().map(str::to_owned);
    while let Some(next) = token.take() {
        let resp = search_raw(&server, &alice, grouped.clone(), Some(&next)).await;
        let body = &resp.ok()["search_categories"]["room_events"];
        assert_eq!(body["count"], 8, "bob sent 8 of them");
        let ids = result_ids(body);
        for event in body["results"].as_array().into_iter().flatten() {
            assert_eq!(event["result"]["sender"], bob.user_id.as_str());
        }
        bobs.extend(ids);
        token = body["next_batch"].as_str().map(str::to_owned);
    }
    assert_eq!(bobs.len(), 8);
    assert_eq!(bobs.iter().collect::<HashSet<_>>().len(), 8);
}

#[tokio::test]
async fn events_the_searcher_may_not_see_are_never_found() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    put_state(&server, &alice, &room, "m.room.history_visibility", "", &json!({"history_visibility": "joined"})).await;
    send_text(&server, &alice, &room, "kiwi before bob joined").await;
    join(&server, &bob, &room).await.ok();
    let while_joined = send_text(&server, &alice, &room, "kiwi while bob is here").await;
    leave(&server, &bob, &room).await.ok();
    send_text(&server, &alice, &room, "kiwi while bob is away").await;
    assert!(found(&server, &bob, "kiwi").await.is_empty(), "a room left is not searched");
    join(&server, &bob, &room).await.ok();
    let after_rejoin = send_text(&server, &alice, &room, "kiwi after bob came back").await;
    let mut seen = found(&server, &bob, "kiwi").await;
    seen.sort();
    let mut expected = vec![while_joined, after_rejoin];
    expected.sort();
    assert_eq!(seen, expected, "only what bob could see as a member");
    let body = search(&server, &bob, json!({"search_term": "kiwi"})).await;
    assert_eq!(body["count"], 2, "the count leaves the invisible out too");
    assert_eq!(found(&server, &alice, "kiwi").await.len(), 4);

    // A private room bob was never in.
    let private = create_room(&server, &alice, json!({"preset": "private_chat"})).await;
    send_text(&server, &alice, &private, "mango secret").await;
    assert!(found(&server, &bob, "mango").await.is_empty());
    let body = search(&server, &bob, json!({"search_term": "mango", "filter": {"rooms": [private]}})).await;
    assert_eq!(body["count"], 0, "naming a room does not open it");
}

#[tokio::test]
async fn redacted_events_disappear_from_search() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let kept = send_text(&server, &alice, &room, "papaya stays").await;
    let gone = send_text(&server, &alice, &room, "papaya goes").await;
    assert_eq!(found(&server, &bob, "papaya").await.len(), 2);
    redact(&server, &alice, &room, &gone).await;
    assert_eq!(found(&server, &bob, "papaya").await, [kept.clone()]);
    assert!(found(&server, &bob, "goes").await.is_empty());
    // A moderator's redaction of someone else's message too.
    let bobs = send_text(&server, &bob, &room, "papaya from bob").await;
    assert_eq!(found(&server, &alice, "papaya").await.len(), 2);
    redact(&server, &alice, &room, &bobs).await;
    assert_eq!(found(&server, &alice, "papaya").await, [kept]);
}

#[tokio::test]
async fn an_acknowledged_message_survives_a_crash_searchable() {
    let mut server = TestServer::start_default().await;
    let [alice] = users(&server, ["alice"]).await;
    let room = public_room(&server, &alice).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(send_text(&server, &alice, &room, &format!("durian number {i}")).await);
    }
    // SIGKILL right after the last acknowledgement: the index rows were in its write.
    server.kill().await;
    server.start_again().await;
    let mut seen = found(&server, &alice, "durian").await;
    seen.sort();
    sent.sort();
    assert_eq!(seen, sent);
    let later = send_text(&server, &alice, &room, "durian after the crash").await;
    assert!(found(&server, &alice, "crash").await.contains(&later));
    assert_eq!(search(&server, &alice, json!({"search_term": "durian"})).await["count"], 6);
}

#[tokio::test]
async fn errors_are_matrix_errors() {
    let server = TestServer::start_default().await;
    let [alice] = users(&server, ["alice"]).await;
    let post = async |body: Value| server.post(&format!("{C}/search"), &alice, &body).await;
    assert_matrix_error(&post(json!({"search_categories": {}})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_matrix_error(&post(json!({"search_categories": {"room_events": {}}})).await, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert_matrix_error(&post(json!({})).await, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let with = async |criteria: Value| search_raw(&server, &alice, criteria, None).await;
    assert_matrix_error(&with(json!({"search_term": "x", "order_by": "random"})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_matrix_error(&with(json!({"search_term": "x", "keys": ["content.msgtype"]})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_matrix_error(&with(json!({"search_term": "x", "groupings": {"group_by": [{"key": "type"}]}})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_matrix_error(&search_raw(&server, &alice, json!({"search_term": "x"}), Some("not-a-token")).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let unauthenticated = server.client().post(format!("{}{C}/search", server.url())).json(&json!({"search_categories": {"room_events": {"search_term": "x"}}})).send().await;
    assert_eq!(unauthenticated.map(|r| r.status().as_u16()).ok(), Some(401));
    let empty = search(&server, &alice, json!({"search_term": "  ... "})).await;
    assert_eq!(empty["count"], 0);
}

#[tokio::test]
async fn events_received_over_federation_are_searchable() {
    let home = crate::federation_rooms::federating_myelin().await;
    let away = crate::federation_rooms::federating_myelin().await;
    let alice = home.register("alice", "pw").await;
    let bob = away.register("bob", "pw").await;
    let room = create_room(&home, &alice, json!({"preset": "public_chat", "name": "Federated Fruit"})).await;
    send_text(&home, &alice, &room, "guava before the join").await;
    let via = home.server_name().to_owned();
    let joined = away.post(&format!("{C}/join/{}?server_name={}&via={}", enc(&room), enc(&via), enc(&via)), &bob, &json!({})).await;
    joined.ok();
    let live = send_text(&home, &alice, &room, "guava after the join").await;
    let logs = || format!("--- home ---\n{}\n--- away ---\n{}", home.all_logs(), away.all_logs());
    eventually("the federated message to be searchable", async || found(&away, &bob, "guava").await.contains(&live).then_some(()), logs).await;
    let mine = send_text(&away, &bob, &room, "guava reply from away").await;
    eventually("the reply to be searchable on the room's server", async || found(&home, &alice, "guava").await.contains(&mine).then_some(()), logs).await;
    // History from before the join, fetched by /messages (backfill), is indexed as it lands.
    eventually(
        "backfilled history to be searchable",
        async || {
            messages(&away, &bob, &room, "dir=b&limit=50").await.ok();
            (found(&away, &bob, "guava").await.len() == 3).then_some(())
        },
        logs,
    )
    .await;
}

#[tokio::test]
async fn matrix_sdk_reads_search_and_directory_responses() {
    use matrix_sdk::ruma::{
        UInt,
        api::client::{
            search::search_events::v3 as search_events,
            user_directory::search_users::v3 as search_users,
        },
    };

    let server = TestServer::start_default().await;
    let client = crate::real_client_rooms::sdk_client(&server, "alice").await;
    let [bob] = users(&server, ["bob"]).await;
    let alice = server.login("alice", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    send_text(&server, &alice, &room, "before the walnut").await;
    let hit = send_text(&server, &bob, &room, "Walnut harvest today").await;

    let mut criteria = search_events::Criteria::new("walnut".to_owned());
    criteria.order_by = Some(search_events::OrderBy::Recent);
    let mut context = search_events::EventContext::new();
    context.before_limit = UInt::from(1u32);
    context.include_profile = true;
    criteria.event_context = context;
    let mut grouping = search_events::Grouping::new();
    grouping.key = Some(search_events::GroupingKey::Sender);
    criteria.groupings.group_by = vec![grouping];
    let mut categories = search_events::Categories::new();
    categories.room_events = Some(criteria);
    let response = client.send(search_events::Request::new(categories)).await.expect("the SDK parses /search");
    let events = response.search_categories.room_events;
    assert_eq!(events.count.map(u64::from), Some(2));
    assert_eq!(events.highlights, ["walnut"]);
    let first = &events.results[0];
    let result = first.result.as_ref().map(|e| e.deserialize().expect("a timeline event"));
    assert_eq!(result.map(|e| e.event_id().to_string()), Some(hit.clone()));
    let context = first.context.clone();
    assert_eq!(context.events_before.len(), 1);
    assert!(context.profile_info.contains_key(bob.user_id.as_str()), "{:?}", context.profile_info);
    assert!(!events.groups.is_empty(), "groups parse");

    let response = client.send(search_users::Request::new("bo".to_owned())).await.expect("the SDK parses the directory");
    assert_eq!(response.results.iter().map(|u| u.user_id.to_string()).collect::<Vec<_>>(), [bob.user_id.clone()]);
    assert!(!response.limited);
}
