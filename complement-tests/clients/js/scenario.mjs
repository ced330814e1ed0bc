// matrix-js-sdk against a running Myelin homeserver.
//
//   MYELIN_URL=http://127.0.0.1:8008 node scenario.mjs
//
// Registers alice and bob (UIA with m.login.dummy), logs both in, runs the
// SDK's sync loop (`startClient`) for both; alice creates a room and invites
// bob, bob joins when the invite arrives through his sync, alice sends five
// messages, bob's `Room.timeline` listener must see all five, in order,
// within MESSAGE_DEADLINE_MS; bob then paginates back (`scrollback` to the
// room's creation, and a raw `/messages` request) and finds them again.
// Finally alice edits, reacts and starts a thread, and bob's SDK must apply
// the server's bundled edit and read the reaction and the thread back.
//
// `node scenario.mjs cross` is the matrix-js-sdk half of the scenario where one
// user runs matrix-js-sdk and the other matrix-nio (python/scenario.py cross),
// see `crossMain`.
//
// Exit 0 and a one-line JSON summary on stdout on success; on any failure or
// timeout, exit 1 with the reason (and the last HTTP exchanges) on stderr.
// Run by complement-tests/tests/it/other_clients.rs; crypto is not used.

import { ClientEvent, Direction, MatrixEventEvent, ReceiptType, RoomEvent, RoomMemberEvent, createClient } from "matrix-js-sdk";
import { createRequire } from "node:module";
import { logger } from "matrix-js-sdk/lib/logger.js";

const BASE_URL = process.env.MYELIN_URL;
const MESSAGE_DEADLINE_MS = 15_000;
const STEP_DEADLINE_MS = 20_000;
const OVERALL_DEADLINE_MS = Number(process.env.SCENARIO_DEADLINE_MS ?? 75_000);
const MESSAGE_COUNT = 5;

const started = Date.now();
const clients = [];
const httpLog = []; // every exchange: "alice GET /path -> 200 (12 ms)"
const httpErrors = []; // unexpected non-2xx exchanges with their bodies

logger.setLevel(process.env.SDK_LOG_LEVEL ?? "error");

function step(message) {
    process.stderr.write(`[js +${Date.now() - started}ms] ${message}\n`);
}

function fail(message, error) {
    process.stderr.write(`\nFAILED: ${message}\n`);
    if (error) process.stderr.write(`${error?.stack ?? error}\n`);
    if (error?.data) process.stderr.write(`error body: ${JSON.stringify(error.data)}\n`);
    if (httpErrors.length) {
        process.stderr.write(`\nunexpected HTTP error responses (${httpErrors.length}):\n`);
        for (const line of httpErrors.slice(-20)) process.stderr.write(`  ${line}\n`);
    }
    process.stderr.write(`\nlast HTTP exchanges:\n`);
    for (const line of httpLog.slice(-40)) process.stderr.write(`  ${line}\n`);
    for (const client of clients) {
        try {
            client.stopClient();
        } catch {
            // already stopped
        }
    }
    process.exit(1);
}

if (!BASE_URL) fail("MYELIN_URL is not set (the homeserver's base URL)");

const overall = setTimeout(
    () => fail(`the scenario did not finish within ${OVERALL_DEADLINE_MS} ms`),
    OVERALL_DEADLINE_MS,
);
process.on("unhandledRejection", (error) => fail("unhandled promise rejection", error));

/** A fetch that records every exchange, labelled with the client's name. */
function recordingFetch(label, expectedErrors) {
    return async (input, init = {}) => {
        const url = new URL(input instanceof URL || typeof input === "string" ? input : input.url);
        const method = init.method ?? "GET";
        const path = url.pathname + (url.search ? url.search.replace(/access_token=[^&]*/, "access_token=…") : "");
        const t0 = Date.now();
        let response;
        try {
            response = await fetch(input, init);
        } catch (error) {
            // Aborted long-polls (stopClient) land here too.
            httpLog.push(`${label} ${method} ${path} -> ${error?.name ?? "error"} (${Date.now() - t0} ms)`);
            throw error;
        }
        httpLog.push(`${label} ${method} ${path} -> ${response.status} (${Date.now() - t0} ms)`);
        if (!response.ok && !expectedErrors(method, url.pathname, response.status)) {
            const body = await response.clone().text().catch(() => "<unreadable>");
            httpErrors.push(`${label} ${method} ${path} ${init.body ? `body=${String(init.body).slice(0, 300)} ` : ""}-> ${response.status} ${body.slice(0, 500)}`);
        }
        return response;
    };
}

/** The 401 of the first /register request (UIA) is expected. */
const uiaExpected = (method, path, status) => status === 401 && path.endsWith("/register");

function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

async function register(username, password) {
    const client = createClient({ baseUrl: BASE_URL, fetchFn: recordingFetch(`register(${username})`, uiaExpected) });
    let session;
    try {
        await client.registerRequest({ username, password, initial_device_display_name: "js-sdk register" });
        throw new Error("the first /register without auth did not answer 401 with UIA flows");
    } catch (error) {
        if (error?.httpStatus !== 401 || !error?.data?.flows) throw error;
        const flows = error.data.flows;
        if (!flows.some((flow) => flow.stages?.length === 1 && flow.stages[0] === "m.login.dummy")) {
            throw new Error(`no m.login.dummy flow offered: ${JSON.stringify(flows)}`);
        }
        session = error.data.session;
    }
    const response = await client.registerRequest({
        username,
        password,
        initial_device_display_name: "js-sdk register",
        auth: { type: "m.login.dummy", session },
    });
    if (!response.user_id?.startsWith(`@${username}:`)) {
        throw new Error(`register answered an unexpected user_id: ${JSON.stringify(response)}`);
    }
    return response.user_id;
}

async function login(label, username, password) {
    const anonymous = createClient({ baseUrl: BASE_URL, fetchFn: recordingFetch(`login(${label})`, () => false) });
    const response = await anonymous.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: username },
        password,
        initial_device_display_name: `js-sdk ${label}`,
    });
    const client = createClient({
        baseUrl: BASE_URL,
        accessToken: response.access_token,
        userId: response.user_id,
        deviceId: response.device_id,
        fetchFn: recordingFetch(label, () => false),
    });
    clients.push(client);
    client.on(ClientEvent.Sync, (state, _prev, data) => {
        if (state === "ERROR") step(`${label}: sync error: ${data?.error?.stack ?? data?.error}`);
    });
    return client;
}

/** Starts the SDK's sync loop and waits for its first successful sync. */
function startAndWaitPrepared(client, label, initialSyncLimit = 10) {
    const prepared = new Promise((resolve, reject) => {
        const onSync = (state, _prev, data) => {
            if (state === "PREPARED") {
                client.off(ClientEvent.Sync, onSync);
                resolve();
            } else if (state === "ERROR") {
                client.off(ClientEvent.Sync, onSync);
                reject(new Error(`${label}'s first sync failed: ${data?.error?.message ?? data?.error}`));
            }
        };
        client.on(ClientEvent.Sync, onSync);
    });
    client.startClient({ initialSyncLimit });
    return withTimeout(prepared, STEP_DEADLINE_MS, `${label}'s initial sync (PREPARED)`);
}

async function main() {
    const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
    const aliceName = `js_alice_${stamp}`;
    const bobName = `js_bob_${stamp}`;

    step(`registering ${aliceName} and ${bobName} at ${BASE_URL}`);
    const aliceId = await register(aliceName, "pw-alice-js");
    const bobId = await register(bobName, "pw-bob-js");

    step("logging in");
    const alice = await login("alice", aliceName, "pw-alice-js");
    const bob = await login("bob", bobName, "pw-bob-js");
    if (alice.getUserId() !== aliceId || bob.getUserId() !== bobId) {
        throw new Error(`login answered other user IDs than register: ${alice.getUserId()} / ${bob.getUserId()}`);
    }

    step("starting both sync loops");
    await Promise.all([startAndWaitPrepared(alice, "alice"), startAndWaitPrepared(bob, "bob")]);

    // Bob joins when his sync delivers the invite.
    let roomId = null;
    let joining = false;
    const bobJoined = new Promise((resolve, reject) => {
        bob.on(RoomMemberEvent.Membership, (event, member) => {
            if (member.userId !== bobId || member.membership !== "invite" || joining) return;
            if (roomId !== null && member.roomId !== roomId) return;
            joining = true;
            step(`bob: invited to ${member.roomId} by ${event.getSender()}, joining`);
            bob.joinRoom(member.roomId).then(resolve, reject);
        });
    });
    // Alice learns about the join through her own sync.
    const aliceSeesJoin = new Promise((resolve) => {
        alice.on(RoomMemberEvent.Membership, (_event, member) => {
            if (member.userId === bobId && member.membership === "join") resolve(member.roomId);
        });
    });

    // Bob collects the live timeline's messages of the room.
    const received = [];
    let allReceived;
    const allReceivedPromise = new Promise((resolve) => {
        allReceived = resolve;
    });
    bob.on(RoomEvent.Timeline, (event, room, toStartOfTimeline, _removed, data) => {
        if (toStartOfTimeline || !data?.liveEvent) return;
        if (room?.roomId !== roomId || event.getType() !== "m.room.message") return;
        received.push({ body: event.getContent().body, eventId: event.getId(), sender: event.getSender() });
        if (received.length >= MESSAGE_COUNT) allReceived();
    });

    step("alice creates a room and invites bob");
    const created = await alice.createRoom({ name: "js-sdk scenario", preset: "private_chat" });
    roomId = created.room_id;
    await alice.invite(roomId, bobId);
    const joinedRoom = await withTimeout(bobJoined, STEP_DEADLINE_MS, "bob's invite to arrive through /sync and his join");
    if (joinedRoom.roomId !== roomId) throw new Error(`bob joined ${joinedRoom.roomId}, expected ${roomId}`);
    const seenRoom = await withTimeout(aliceSeesJoin, STEP_DEADLINE_MS, "alice's sync to show bob's join");
    if (seenRoom !== roomId) throw new Error(`alice saw bob join ${seenRoom}, expected ${roomId}`);

    step(`alice sends ${MESSAGE_COUNT} messages`);
    const sentAt = Date.now();
    const bodies = [];
    const sentIds = [];
    for (let i = 1; i <= MESSAGE_COUNT; i++) {
        const body = `js-sdk message ${i} of ${MESSAGE_COUNT}`;
        bodies.push(body);
        const { event_id: eventId } = await alice.sendTextMessage(roomId, body);
        sentIds.push(eventId);
    }

    await withTimeout(
        allReceivedPromise,
        MESSAGE_DEADLINE_MS,
        `bob's Room.timeline to receive ${MESSAGE_COUNT} messages (got ${received.length})`,
    ).catch((error) => {
        error.message += `; received so far: ${JSON.stringify(received.map((r) => r.body))}`;
        throw error;
    });
    const liveLatencyMs = Date.now() - sentAt;
    const liveBodies = received.slice(0, MESSAGE_COUNT).map((r) => r.body);
    if (JSON.stringify(liveBodies) !== JSON.stringify(bodies)) {
        throw new Error(`bob's live timeline order differs: got ${JSON.stringify(liveBodies)}, sent ${JSON.stringify(bodies)}`);
    }
    const liveIds = received.slice(0, MESSAGE_COUNT).map((r) => r.eventId);
    if (JSON.stringify(liveIds) !== JSON.stringify(sentIds)) {
        throw new Error(`event IDs differ: live ${JSON.stringify(liveIds)}, sent ${JSON.stringify(sentIds)}`);
    }
    if (received.some((r) => r.sender !== aliceId)) {
        throw new Error(`unexpected senders: ${JSON.stringify(received)}`);
    }
    if (received.length !== MESSAGE_COUNT) {
        throw new Error(`bob received ${received.length} messages, expected ${MESSAGE_COUNT}: ${JSON.stringify(received)}`);
    }

    // Back-pagination 1: a raw /messages request from the end of the room
    // (`from` omitted, as the spec allows since v1.3), newest first.
    step("bob paginates back with /messages");
    const page = await bob.createMessagesRequest(roomId, null, 20, Direction.Backward);
    const pagedBodies = page.chunk
        .filter((event) => event.type === "m.room.message")
        .map((event) => event.content.body)
        .reverse();
    if (JSON.stringify(pagedBodies) !== JSON.stringify(bodies)) {
        throw new Error(`/messages (dir=b) returned ${JSON.stringify(pagedBodies)}, expected ${JSON.stringify(bodies)}`);
    }

    // Back-pagination 2: bob's second device-less session (same token, a
    // fresh SDK client) starts with a 2-event initial sync, so the room's
    // timeline is `limited`; the SDK's scrollback must bring back the rest,
    // up to the room's creation, without gaps or duplicates.
    step("bob restarts with initialSyncLimit 2 and scrolls back to the room's creation");
    bob.stopClient();
    const bob2 = createClient({
        baseUrl: BASE_URL,
        accessToken: bob.getAccessToken(),
        userId: bobId,
        deviceId: bob.getDeviceId(),
        fetchFn: recordingFetch("bob2", () => false),
    });
    clients.push(bob2);
    await startAndWaitPrepared(bob2, "bob2", 2);
    const room = bob2.getRoom(roomId);
    if (!room) throw new Error(`bob2's initial sync did not include ${roomId}`);
    const initialEvents = room.getLiveTimeline().getEvents().length;
    const hasCreate = () => room.getLiveTimeline().getEvents().some((e) => e.getType() === "m.room.create");
    if (hasCreate()) {
        throw new Error(`initialSyncLimit 2 gave a timeline that already reaches m.room.create (${initialEvents} events)`);
    }
    let scrollbacks = 0;
    while (!hasCreate() && scrollbacks < 10) {
        await withTimeout(bob2.scrollback(room, 3), STEP_DEADLINE_MS, "scrollback");
        scrollbacks++;
    }
    const timeline = room.getLiveTimeline().getEvents();
    if (!hasCreate()) {
        throw new Error(`scrollback never reached m.room.create after ${scrollbacks} calls; timeline: ${JSON.stringify(timeline.map((e) => e.getType()))}`);
    }
    const timelineBodies = timeline.filter((e) => e.getType() === "m.room.message").map((e) => e.getContent().body);
    if (JSON.stringify(timelineBodies) !== JSON.stringify(bodies)) {
        throw new Error(`after scrollback the timeline's messages are ${JSON.stringify(timelineBodies)}, expected ${JSON.stringify(bodies)}`);
    }
    const timelineIds = timeline.map((e) => e.getId());
    if (new Set(timelineIds).size !== timelineIds.length) {
        throw new Error(`scrollback produced duplicate events: ${JSON.stringify(timeline.map((e) => [e.getType(), e.getId()]))}`);
    }
    if (timeline[0].getType() !== "m.room.create") {
        throw new Error(`the timeline does not start with m.room.create: ${JSON.stringify(timeline.map((e) => e.getType()))}`);
    }

    // Relations as the SDK sees them: alice edits her first message, reacts to it and
    // answers it in a thread; bob's client applies the edit the server bundles with the
    // original (`unsigned.m.relations.m.replace`), lists the reaction with /relations and
    // the thread with /threads.
    step("alice edits, reacts and starts a thread; bob's SDK reads them back");
    const original = sentIds[0];
    const editedBody = `${bodies[0]} (edited)`;
    await alice.sendEvent(roomId, "m.room.message", {
        msgtype: "m.text",
        body: `* ${editedBody}`,
        "m.new_content": { msgtype: "m.text", body: editedBody },
        "m.relates_to": { rel_type: "m.replace", event_id: original },
    });
    await alice.sendEvent(roomId, "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: original, key: "👍" } });
    const { event_id: threadReply } = await alice.sendEvent(roomId, "m.room.message", {
        msgtype: "m.text",
        body: "in a thread",
        "m.relates_to": { rel_type: "m.thread", event_id: original, is_falling_back: true, "m.in_reply_to": { event_id: original } },
    });
    const fetched = bob2.getEventMapper()(await bob2.fetchRoomEvent(roomId, original));
    if (fetched.getContent().body !== editedBody || fetched.replacingEventId() === undefined) {
        throw new Error(`the SDK did not apply the bundled edit: body ${JSON.stringify(fetched.getContent().body)}, unsigned ${JSON.stringify(fetched.getUnsigned())}`);
    }
    const reactions = await bob2.relations(roomId, original, "m.annotation", "m.reaction");
    if (reactions.events.length !== 1 || reactions.events[0].getRelation()?.key !== "👍") {
        throw new Error(`/relations listed ${JSON.stringify(reactions.events.map((e) => e.getContent()))}`);
    }
    const threadList = await bob2.createThreadListMessagesRequest(roomId, null, 10);
    const threadSummary = threadList.chunk?.[0]?.unsigned?.["m.relations"]?.["m.thread"];
    if (threadList.chunk?.length !== 1 || threadList.chunk[0].event_id !== original || threadSummary?.latest_event?.event_id !== threadReply || threadSummary?.count !== 1) {
        throw new Error(`/threads answered ${JSON.stringify(threadList)}`);
    }

    step("stopping the clients and logging out");
    alice.stopClient();
    bob2.stopClient();
    await alice.logout();
    await bob2.logout();

    clearTimeout(overall);
    const summary = {
        client: "matrix-js-sdk",
        version: createRequire(import.meta.url)("matrix-js-sdk/package.json").version,
        ok: true,
        room_id: roomId,
        live_messages: received.length,
        live_latency_ms: liveLatencyMs,
        paginated_messages: pagedBodies.length,
        initial_timeline_events_limit_2: initialEvents,
        scrollback_calls: scrollbacks,
        timeline_events: timeline.length,
        edit_applied: true,
        http_requests: httpLog.length,
        elapsed_ms: Date.now() - started,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
}

/** A promise with its resolver, for things a listener learns. */
function deferred() {
    let resolve;
    const promise = new Promise((r) => {
        resolve = r;
    });
    return { promise, resolve };
}

/** The content field that marks the cross scenario's coordination messages. */
const CROSS_MARKER = "org.myelin.cross";
/** What the peer must show through this client's sync loop, with how it is recognised. */
const CROSS_FEATURES = {
    message: "the peer's text message (m.room.message in the live timeline)",
    edit: "the peer's edit of its message (m.replace, the SDK showing the replaced content)",
    reply: "the peer's reply to this client's message (m.relates_to.m.in_reply_to)",
    reaction: "the peer's reaction to this client's message (m.reaction, m.annotation)",
    "read receipt": "the peer's m.read receipt on this client's message (m.receipt ephemeral event)",
    typing: "the peer typing (m.typing listing the peer)",
    "typing stop": "the peer no longer typing (m.typing without the peer)",
    presence: "the peer online with its status message (m.presence, the SDK's User)",
};

function requiredEnv(name) {
    const value = process.env[name];
    if (!value) fail(`${name} is not set (the cross scenario is run by other_clients.rs)`);
    return value;
}

// `node scenario.mjs cross`: this client is one of the two users of a room the
// test prepared (CROSS_ROOM, both joined); the other one runs matrix-nio at the
// same time. Both run their library's sync loop, coordinate through marker
// messages in the room (`ready`, `typing-seen`), and must each see every one of
// CROSS_FEATURES from the other live, through the sync loop.
async function crossMain() {
    const username = requiredEnv("CROSS_USERNAME");
    const password = requiredEnv("CROSS_PASSWORD");
    const peerId = requiredEnv("CROSS_PEER");
    const roomId = requiredEnv("CROSS_ROOM");
    const peerName = process.env.CROSS_PEER_CLIENT ?? "the peer";
    const deadlineMs = Number(process.env.CROSS_STEP_DEADLINE_MS ?? 60_000);

    const me = await login("js", username, password);
    const myId = me.getUserId();
    const seen = new Map(); // feature -> when (ms since start)
    const featureSeen = Object.fromEntries(Object.keys(CROSS_FEATURES).map((f) => [f, deferred()]));
    const observe = (feature, detail) => {
        if (seen.has(feature)) return;
        seen.set(feature, Date.now() - started);
        step(`js saw ${peerName}'s ${feature}${detail ? `: ${detail}` : ""}`);
        featureSeen[feature].resolve();
    };
    const peerReady = deferred();
    const typingAcked = deferred();
    const mySent = deferred(); // my message's event ID, once the send returned
    let peerMessageEvent = null;
    let peerMessageBody = null;
    let sawPeerTyping = false;
    let ackSent = false;

    const onPeerEvent = async (event, room) => {
        const content = event.getWireContent();
        const marker = content[CROSS_MARKER];
        if (marker === "ready") peerReady.resolve();
        if (marker === "typing-seen" && content.about === myId) typingAcked.resolve();
        if (marker === "message") {
            peerMessageEvent = event;
            peerMessageBody = content.body;
            observe("message", JSON.stringify(content.body));
        }
        const relation = content["m.relates_to"];
        if (!relation) return;
        if (relation.rel_type === "m.replace" && relation.event_id === peerMessageEvent?.getId()) {
            const newBody = content["m.new_content"]?.body;
            if (!newBody || newBody === peerMessageBody) return;
            // The SDK applies the edit to the original event it holds.
            const original = room.findEventById(relation.event_id);
            if (!original) fail(`js: the edited event ${relation.event_id} is not in the SDK's room`);
            if (original.getContent().body !== newBody) {
                await withTimeout(
                    new Promise((resolve) => {
                        const onReplaced = () => {
                            if (original.getContent().body === newBody) resolve();
                        };
                        original.on(MatrixEventEvent.Replaced, onReplaced);
                        onReplaced();
                    }),
                    deadlineMs,
                    `the SDK to show ${peerName}'s edit on ${relation.event_id}`,
                );
            }
            observe("edit", `the SDK shows ${JSON.stringify(original.getContent().body)}`);
            return;
        }
        const mine = await mySent.promise;
        if (relation["m.in_reply_to"]?.event_id === mine) observe("reply", JSON.stringify(content.body));
        if (event.getType() === "m.reaction" && relation.rel_type === "m.annotation" && relation.event_id === mine) {
            observe("reaction", relation.key);
        }
    };
    me.on(RoomEvent.Timeline, (event, room, toStartOfTimeline) => {
        if (toStartOfTimeline || room?.roomId !== roomId || event.getSender() !== peerId) return;
        onPeerEvent(event, room).catch((error) => fail(`js: handling ${peerName}'s ${event.getType()}`, error));
    });
    me.on(RoomEvent.Receipt, (event, room) => {
        if (room.roomId !== roomId) return;
        const content = event.getContent();
        mySent.promise.then((mine) => {
            if (!content[mine]?.[ReceiptType.Read]?.[peerId]) return;
            // The SDK's room model holds it as the peer's (real, not synthesized) receipt.
            const kept = room.getReadReceiptForUserId(peerId, true, ReceiptType.Read);
            if (kept?.eventId !== mine) {
                fail(`js: the SDK's room does not hold ${peerName}'s receipt on ${mine}: ${JSON.stringify(kept)}`);
            }
            observe("read receipt", `on ${mine}, held by the SDK's room`);
        });
    });
    me.on(ClientEvent.Event, (event) => {
        if (event.getType() !== "m.presence" || event.getSender() !== peerId) return;
        const { presence, status_msg: statusMsg } = event.getContent();
        if (presence !== "online" || !statusMsg?.startsWith("cross:")) return;
        const user = me.getUser(peerId);
        if (user?.presence !== "online" || user.presenceStatusMsg !== statusMsg) {
            fail(`js: the SDK's User for ${peerId} does not show the presence it received: ${user?.presence} ${JSON.stringify(user?.presenceStatusMsg)}`);
        }
        observe("presence", JSON.stringify(statusMsg));
    });
    me.on(RoomMemberEvent.Typing, (event, member) => {
        if (member.roomId !== roomId || member.userId !== peerId) return;
        const listed = event.getContent().user_ids?.includes(peerId);
        if (member.typing && listed) {
            sawPeerTyping = true;
            observe("typing");
            if (!ackSent) {
                ackSent = true;
                me.sendEvent(roomId, "m.room.message", {
                    msgtype: "m.notice",
                    body: `js saw ${peerId} typing`,
                    [CROSS_MARKER]: "typing-seen",
                    about: peerId,
                }).catch((error) => fail("js: sending the typing-seen marker", error));
            }
        } else if (!member.typing && !listed && sawPeerTyping) {
            observe("typing stop");
        }
    });

    step("js: starting the sync loop");
    await startAndWaitPrepared(me, "js");
    const room = me.getRoom(roomId);
    if (room?.getMyMembership() !== "join") throw new Error(`js: the initial sync does not show ${roomId} as joined`);
    // The peer's `ready` may already be in the initial sync's timeline.
    if (room.getLiveTimeline().getEvents().some((e) => e.getSender() === peerId && e.getWireContent()[CROSS_MARKER] === "ready")) {
        peerReady.resolve();
    }
    await me.sendEvent(roomId, "m.room.message", { msgtype: "m.notice", body: "js is syncing", [CROSS_MARKER]: "ready" });
    await withTimeout(peerReady.promise, deadlineMs, `${peerName}'s ready marker (its sync loop running)`);

    step("js: both sync loops run; sending a message");
    const myBody = `hello from matrix-js-sdk ${Date.now().toString(36)}`;
    const { event_id: mine } = await me.sendEvent(roomId, "m.room.message", { msgtype: "m.text", body: myBody, [CROSS_MARKER]: "message" });
    mySent.resolve(mine);
    await withTimeout(featureSeen.message.promise, deadlineMs, `${peerName}'s message (feature "message")`);

    step("js: editing its message, replying to and reacting to the peer's, sending a read receipt and presence, typing");
    await me.sendEvent(roomId, "m.room.message", {
        msgtype: "m.text",
        body: `* ${myBody} (edited by js)`,
        "m.new_content": { msgtype: "m.text", body: `${myBody} (edited by js)` },
        "m.relates_to": { rel_type: "m.replace", event_id: mine },
    });
    await me.sendEvent(roomId, "m.room.message", {
        msgtype: "m.text",
        body: "js replies",
        "m.relates_to": { "m.in_reply_to": { event_id: peerMessageEvent.getId() } },
    });
    await me.sendEvent(roomId, "m.reaction", {
        "m.relates_to": { rel_type: "m.annotation", event_id: peerMessageEvent.getId(), key: "👍 js" },
    });
    await me.sendReceipt(peerMessageEvent, ReceiptType.Read);
    await me.setPresence({ presence: "online", status_msg: "cross: matrix-js-sdk is here" });
    await me.sendTyping(roomId, true, 2 * deadlineMs);
    await withTimeout(typingAcked.promise, deadlineMs, `${peerName}'s typing-seen marker (it never saw js typing)`);
    await me.sendTyping(roomId, false, 0);

    const everything = Promise.all(Object.values(featureSeen).map((d) => d.promise));
    await withTimeout(everything, deadlineMs, "every feature").catch(() => {
        const missing = Object.keys(CROSS_FEATURES).filter((f) => !seen.has(f));
        throw new Error(
            `js (matrix-js-sdk) did not see from ${peerName} through its sync loop within ${deadlineMs} ms: ` +
                missing.map((f) => `${f} [${CROSS_FEATURES[f]}]`).join("; "),
        );
    });
    me.stopClient();
    clearTimeout(overall);
    const summary = {
        client: "matrix-js-sdk",
        mode: "cross",
        version: createRequire(import.meta.url)("matrix-js-sdk/package.json").version,
        ok: true,
        seen: Object.fromEntries(seen),
        http_requests: httpLog.length,
        unexpected_http_errors: httpErrors,
        elapsed_ms: Date.now() - started,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
}

(process.argv[2] === "cross" ? crossMain() : main()).then(
    () => process.exit(0),
    (error) => fail(error?.message ?? String(error), error),
);
