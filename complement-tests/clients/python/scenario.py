"""matrix-nio (AsyncClient) against a running Myelin homeserver.

    MYELIN_URL=http://127.0.0.1:8008 .venv/bin/python scenario.py

Registers alice (nio's one-shot m.login.dummy registration) and bob (the
two-step UIA flow: a first /register without auth answers 401 with the flows
and a session, then nio completes m.login.dummy with that session), logs both
in, uploads a sync filter and runs `sync_forever` for both; alice creates a
room and invites bob, bob joins from his invite callback (see `join` for
the one deviation from nio's own method), alice sends five
messages, bob's `RoomMessageText` callback must see all five, in order, within
MESSAGE_DEADLINE seconds; bob then paginates back with `room_messages` (from
his sync token to the room's creation) and finds them again; both log out.

`scenario.py cross` is the matrix-nio half of the scenario where one user runs
matrix-nio and the other matrix-js-sdk (js/scenario.mjs cross), see `cross_main`.

Exit 0 and a one-line JSON summary on stdout on success; on any failure or
timeout, exit 1 with the reason (and the last HTTP exchanges) on stderr.
Run by complement-tests/tests/it/other_clients.rs; no end-to-end encryption.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import string
import sys
import time
from importlib.metadata import version as package_version

import aiohttp
from nio import (
    Api,
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    InviteMemberEvent,
    JoinResponse,
    LoginResponse,
    LogoutResponse,
    MessageDirection,
    PresenceEvent,
    PresenceSetResponse,
    RegisterResponse,
    RoomCreateEvent,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomMemberEvent,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    RoomTypingResponse,
    TypingNoticeEvent,
    UpdateReceiptMarkerResponse,
    UploadFilterResponse,
)
from nio.events import Event, ReceiptEvent

BASE_URL = os.environ.get("MYELIN_URL", "")
MESSAGE_DEADLINE = 15.0
STEP_DEADLINE = 20.0
OVERALL_DEADLINE = float(os.environ.get("SCENARIO_DEADLINE_SECS", "75"))
MESSAGE_COUNT = 5
SYNC_TIMEOUT_MS = 30_000

STARTED = time.monotonic()
HTTP_LOG: list[str] = []  # every exchange: "alice GET /path -> 200 (12 ms)"
HTTP_ERRORS: list[str] = []  # unexpected non-2xx exchanges with their bodies


class ScenarioError(Exception):
    pass


def step(message: str) -> None:
    elapsed = int((time.monotonic() - STARTED) * 1000)
    print(f"[nio +{elapsed}ms] {message}", file=sys.stderr, flush=True)


def report_failure(message: str) -> None:
    print(f"\nFAILED: {message}", file=sys.stderr)
    if HTTP_ERRORS:
        print(f"\nunexpected HTTP error responses ({len(HTTP_ERRORS)}):", file=sys.stderr)
        for line in HTTP_ERRORS[-20:]:
            print(f"  {line}", file=sys.stderr)
    print("\nlast HTTP exchanges:", file=sys.stderr)
    for line in HTTP_LOG[-40:]:
        print(f"  {line}", file=sys.stderr)
    sys.stderr.flush()


def record_http(client: AsyncClient, label: str) -> None:
    """Wraps the client's `send` so that every exchange is logged."""
    original = client.send

    async def send(method, path, data=None, headers=None, trace_context=None, timeout=None):
        shown = path.split("?")[0] + ("?" + "&".join(
            p for p in path.split("?", 1)[1].split("&") if not p.startswith("access_token=")
        ) if "?" in path else "")
        t0 = time.monotonic()
        try:
            response = await original(method, path, data, headers, trace_context, timeout)
        except BaseException as error:  # cancelled long-polls land here too
            HTTP_LOG.append(f"{label} {method} {shown} -> {type(error).__name__} ({int((time.monotonic() - t0) * 1000)} ms)")
            raise
        HTTP_LOG.append(f"{label} {method} {shown} -> {response.status} ({int((time.monotonic() - t0) * 1000)} ms)")
        if response.status >= 400:
            body = await response.text()
            sent = f"body={str(data)[:300]} " if data else ""
            HTTP_ERRORS.append(f"{label} {method} {shown} {sent}-> {response.status} {body[:500]}")
        return response

    client.send = send


def expect(response, kind, what: str):
    """Returns `response` when it is a `kind`, raises with the error otherwise."""
    if isinstance(response, kind):
        return response
    if isinstance(response, ErrorResponse):
        raise ScenarioError(
            f"{what} failed: {type(response).__name__} status={response.status_code} message={response.message!r}"
        )
    raise ScenarioError(f"{what} answered {type(response).__name__}: {response!r}")


def new_client(label: str, user: str = "") -> AsyncClient:
    client = AsyncClient(
        BASE_URL,
        user=user,
        config=AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False, request_timeout=60),
    )
    record_http(client, label)
    return client


async def register_one_shot(username: str, password: str) -> str:
    """nio's `register`: m.login.dummy on the first request (no session)."""
    client = new_client(f"register({username})")
    try:
        response = expect(await client.register(username, password, device_name="nio register"), RegisterResponse, "register")
        return response.user_id
    finally:
        await client.close()


async def register_two_step(username: str, password: str) -> str:
    """The UIA dance: 401 with flows and a session, then nio's `register`
    completing m.login.dummy in that session."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{BASE_URL}/_matrix/client/v3/register",
            json={"username": username, "password": password},
        ) as response:
            body = await response.json(content_type=None)
            HTTP_LOG.append(f"register({username}) POST /_matrix/client/v3/register -> {response.status}")
            if response.status != 401 or "flows" not in body or "session" not in body:
                raise ScenarioError(f"/register without auth answered {response.status} {body}, expected 401 with flows and a session")
    if not any(flow.get("stages") == ["m.login.dummy"] for flow in body["flows"]):
        raise ScenarioError(f"no m.login.dummy flow offered: {body['flows']}")
    client = new_client(f"register({username})")
    try:
        response = await client.register(username, password, device_name="nio register", session_token=body["session"])
        return expect(response, RegisterResponse, "register (dummy stage with session)").user_id
    finally:
        await client.close()


async def join(client: AsyncClient, room_id: str) -> JoinResponse:
    """`POST /join/{roomIdOrAlias}` through nio's request plumbing, with `{}` as the body.

    nio 0.26's `AsyncClient.join()` sends this POST with no body at all. The
    spec requires a (potentially empty) JSON object as the body of every
    client-server POST (API standards), and Myelin answers the bodiless join
    with 400 M_BAD_JSON, which the spec allows. So the script sends the same
    request nio builds (`Api.join`), plus the `{}` the spec asks for, and lets
    nio parse the answer and update its state (`_send`, `JoinResponse`).
    """
    method, path = Api.join(client.access_token, room_id)
    response = await client._send(JoinResponse, method, path, Api.to_json({}))
    return expect(response, JoinResponse, "bob's join")


async def login(label: str, username: str, password: str) -> AsyncClient:
    client = new_client(label, username)
    expect(await client.login(password, device_name=f"nio {label}"), LoginResponse, f"{label}'s login")
    return client


async def main() -> dict:
    if not BASE_URL:
        raise ScenarioError("MYELIN_URL is not set (the homeserver's base URL)")
    stamp = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
    alice_name, bob_name = f"nio_alice_{stamp}", f"nio_bob_{stamp}"

    step(f"registering {alice_name} and {bob_name} at {BASE_URL}")
    alice_id = await register_one_shot(alice_name, "pw-alice-nio")
    bob_id = await register_two_step(bob_name, "pw-bob-nio")

    step("logging in")
    alice = await login("alice", alice_name, "pw-alice-nio")
    bob = await login("bob", bob_name, "pw-bob-nio")
    clients = [alice, bob]
    tasks: list[asyncio.Task] = []
    try:
        if (alice.user_id, bob.user_id) != (alice_id, bob_id):
            raise ScenarioError(f"login answered other user IDs than register: {alice.user_id} / {bob.user_id}")

        # Sync filters, uploaded through the filter API.
        filters = {}
        for label, client in (("alice", alice), ("bob", bob)):
            uploaded = expect(
                await client.upload_filter(room={"timeline": {"limit": 10}}, presence={"not_types": ["*"]}),
                UploadFilterResponse,
                f"{label}'s filter upload",
            )
            filters[label] = uploaded.filter_id

        room_id: str | None = None
        loop = asyncio.get_running_loop()
        bob_joined = loop.create_future()
        alice_sees_join = loop.create_future()
        all_received = loop.create_future()
        received: list[tuple[str, str, str]] = []  # (body, event_id, sender)

        joining = False

        async def on_bob_invite(room, event: InviteMemberEvent) -> None:
            nonlocal joining
            if event.state_key != bob_id or event.membership != "invite" or joining:
                return
            if room_id is not None and room.room_id != room_id:
                return
            joining = True
            step(f"bob: invited to {room.room_id} by {event.sender}, joining")
            try:
                joined = await join(bob, room.room_id)
                if not bob_joined.done():
                    bob_joined.set_result(joined.room_id)
            except Exception as error:  # noqa: BLE001 - handed to the waiting step
                if not bob_joined.done():
                    bob_joined.set_exception(error)

        async def on_alice_member(room, event: RoomMemberEvent) -> None:
            if event.state_key == bob_id and event.membership == "join" and not alice_sees_join.done():
                alice_sees_join.set_result(room.room_id)

        async def on_bob_message(room, event: RoomMessageText) -> None:
            if room.room_id != room_id:
                return
            received.append((event.body, event.event_id, event.sender))
            if len(received) >= MESSAGE_COUNT and not all_received.done():
                all_received.set_result(None)

        bob.add_event_callback(on_bob_invite, InviteMemberEvent)
        alice.add_event_callback(on_alice_member, RoomMemberEvent)
        bob.add_event_callback(on_bob_message, RoomMessageText)

        step("starting both sync loops")
        for label, client in (("alice", alice), ("bob", bob)):
            tasks.append(asyncio.create_task(
                client.sync_forever(timeout=SYNC_TIMEOUT_MS, sync_filter=filters[label]),
                name=f"{label}-sync",
            ))
        await wait_step(asyncio.gather(alice.synced.wait(), bob.synced.wait()), "both initial syncs", tasks)

        step("alice creates a room and invites bob")
        created = expect(
            await alice.room_create(name="nio scenario", preset=RoomPreset.private_chat),
            RoomCreateResponse,
            "room_create",
        )
        room_id = created.room_id
        expect(await alice.room_invite(room_id, bob_id), RoomInviteResponse, "room_invite")
        joined_room = await wait_step(bob_joined, "bob's invite to arrive through /sync and his join", tasks)
        if joined_room != room_id:
            raise ScenarioError(f"bob joined {joined_room}, expected {room_id}")
        seen = await wait_step(alice_sees_join, "alice's sync to show bob's join", tasks)
        if seen != room_id:
            raise ScenarioError(f"alice saw bob join {seen}, expected {room_id}")

        step(f"alice sends {MESSAGE_COUNT} messages")
        sent_at = time.monotonic()
        bodies, sent_ids = [], []
        for i in range(1, MESSAGE_COUNT + 1):
            body = f"nio message {i} of {MESSAGE_COUNT}"
            bodies.append(body)
            sent = expect(
                await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body}),
                RoomSendResponse,
                f"room_send #{i}",
            )
            sent_ids.append(sent.event_id)

        try:
            await wait_step(all_received, f"bob's sync to deliver {MESSAGE_COUNT} messages", tasks, MESSAGE_DEADLINE)
        except ScenarioError as error:
            raise ScenarioError(f"{error}; received so far: {[r[0] for r in received]}") from None
        live_latency_ms = int((time.monotonic() - sent_at) * 1000)
        if [r[0] for r in received] != bodies:
            raise ScenarioError(f"bob's callback saw {[r[0] for r in received]}, sent {bodies}")
        if [r[1] for r in received] != sent_ids:
            raise ScenarioError(f"event IDs differ: received {[r[1] for r in received]}, sent {sent_ids}")
        if any(r[2] != alice_id for r in received):
            raise ScenarioError(f"unexpected senders: {received}")

        # Back-pagination from bob's sync token to the room's creation.
        step("bob paginates back with room_messages")
        token = bob.next_batch
        paged = []
        pages = 0
        reached_create = False
        while pages < 20:
            page = expect(
                await bob.room_messages(room_id, start=token, direction=MessageDirection.back, limit=3),
                RoomMessagesResponse,
                f"room_messages page {pages + 1}",
            )
            pages += 1
            paged.extend(page.chunk)
            if any(isinstance(e, RoomCreateEvent) for e in page.chunk):
                reached_create = True
            if not page.end or not page.chunk:
                break
            token = page.end
        if not reached_create:
            raise ScenarioError(f"back-pagination never reached m.room.create after {pages} pages")
        paged_bodies = [e.body for e in reversed(paged) if isinstance(e, RoomMessageText)]
        if paged_bodies != bodies:
            raise ScenarioError(f"room_messages returned {paged_bodies}, expected {bodies}")
        paged_ids = [e.event_id for e in paged]
        if len(set(paged_ids)) != len(paged_ids):
            raise ScenarioError(f"back-pagination returned duplicates: {paged_ids}")
        if not isinstance(paged[-1], RoomCreateEvent):
            raise ScenarioError(f"the oldest event is {type(paged[-1]).__name__}, not m.room.create")

        step("stopping the sync loops and logging out")
        await stop_syncs(clients, tasks)
        for label, client in (("alice", alice), ("bob", bob)):
            expect(await client.logout(), LogoutResponse, f"{label}'s logout")

        return {
            "client": "matrix-nio",
            "version": package_version("matrix-nio"),
            "ok": True,
            "room_id": room_id,
            "live_messages": len(received),
            "live_latency_ms": live_latency_ms,
            "paginated_events": len(paged),
            "pages": pages,
            "http_requests": len(HTTP_LOG),
            "elapsed_ms": int((time.monotonic() - STARTED) * 1000),
        }
    finally:
        await stop_syncs(clients, tasks)
        for client in clients:
            await client.close()


async def wait_step(awaitable, what: str, sync_tasks: list[asyncio.Task], deadline: float = STEP_DEADLINE):
    """Waits for `awaitable`, failing early when a sync loop died."""
    waiter = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait([waiter, *sync_tasks], timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        return waiter.result()
    waiter.cancel()
    for task in sync_tasks:
        if task in done:
            error = task.exception() if not task.cancelled() else None
            raise ScenarioError(f"the sync loop {task.get_name()} stopped while waiting for {what}: {error!r}")
    raise ScenarioError(f"timed out after {deadline:.0f} s waiting for {what}")


async def stop_syncs(clients: list[AsyncClient], tasks: list[asyncio.Task]) -> None:
    for client in clients:
        client.stop_sync_forever()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()


# The content field that marks the cross scenario's coordination messages.
CROSS_MARKER = "org.myelin.cross"
# What the peer must show through this client's sync loop, with how it is recognised.
CROSS_FEATURES = {
    "message": "the peer's text message (m.room.message in the sync timeline)",
    "edit": "the peer's edit of its message (m.replace with m.new_content)",
    "reply": "the peer's reply to this client's message (m.relates_to.m.in_reply_to)",
    "reaction": "the peer's reaction to this client's message (m.reaction, m.annotation)",
    "read receipt": "the peer's m.read receipt on this client's message (m.receipt ephemeral event)",
    "typing": "the peer typing (m.typing listing the peer)",
    "typing stop": "the peer no longer typing (m.typing without the peer)",
    "presence": "the peer online with its status message (m.presence)",
}


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ScenarioError(f"{name} is not set (the cross scenario is run by other_clients.rs)")
    return value


async def cross_main() -> dict:
    """`scenario.py cross`: this client is one of the two users of a room the test
    prepared (CROSS_ROOM, both joined); the other one runs matrix-js-sdk at the same
    time. Both run their library's sync loop, coordinate through marker messages in
    the room (`ready`, `typing-seen`), and must each see every one of CROSS_FEATURES
    from the other live, through the sync loop."""
    if not BASE_URL:
        raise ScenarioError("MYELIN_URL is not set (the homeserver's base URL)")
    username, password = required_env("CROSS_USERNAME"), required_env("CROSS_PASSWORD")
    peer_id, room_id = required_env("CROSS_PEER"), required_env("CROSS_ROOM")
    peer_name = os.environ.get("CROSS_PEER_CLIENT", "the peer")
    deadline = float(os.environ.get("CROSS_STEP_DEADLINE_SECS", "60"))

    me = await login("nio", username, password)
    tasks: list[asyncio.Task] = []
    loop = asyncio.get_running_loop()
    seen: dict[str, int] = {}  # feature -> when (ms since start)
    feature_seen = {feature: loop.create_future() for feature in CROSS_FEATURES}
    peer_ready = loop.create_future()
    typing_acked = loop.create_future()
    my_message_id: str | None = None  # known once the send returned
    # Checks of peer events against my message's ID that came before the ID did.
    # (Callbacks must not wait for it: they run inside nio's sync loop.)
    waiting_for_my_message: list = []
    peer_message: dict = {}
    saw_peer_typing = False
    ack_sent = False

    def about_my_message(check) -> None:
        if my_message_id is None:
            waiting_for_my_message.append(check)
        else:
            check(my_message_id)

    def observe(feature: str, detail: str = "") -> None:
        if feature in seen:
            return
        seen[feature] = int((time.monotonic() - STARTED) * 1000)
        step(f"nio saw {peer_name}'s {feature}{': ' + detail if detail else ''}")
        feature_seen[feature].set_result(None)

    async def send(event_type: str, content: dict, what: str) -> str:
        return expect(await me.room_send(room_id, event_type, content), RoomSendResponse, what).event_id

    async def on_event(room, event: Event) -> None:
        if room.room_id != room_id or event.sender != peer_id:
            return
        content = event.source.get("content", {})
        marker = content.get(CROSS_MARKER)
        if marker == "ready" and not peer_ready.done():
            peer_ready.set_result(None)
        if marker == "typing-seen" and content.get("about") == me.user_id and not typing_acked.done():
            typing_acked.set_result(None)
        if marker == "message":
            peer_message.update(event_id=event.event_id, body=content.get("body"))
            observe("message", repr(content.get("body")))
        relation = content.get("m.relates_to")
        if not isinstance(relation, dict):
            return
        if relation.get("rel_type") == "m.replace" and relation.get("event_id") == peer_message.get("event_id"):
            new_body = (content.get("m.new_content") or {}).get("body")
            if new_body and new_body != peer_message.get("body"):
                observe("edit", f"m.new_content.body {new_body!r}")
            return

        def check(mine: str) -> None:
            if (relation.get("m.in_reply_to") or {}).get("event_id") == mine:
                observe("reply", repr(content.get("body")))
            if event.source.get("type") == "m.reaction" and relation.get("rel_type") == "m.annotation" and relation.get("event_id") == mine:
                observe("reaction", repr(relation.get("key")))

        about_my_message(check)

    async def on_receipt(room, event: ReceiptEvent) -> None:
        if room.room_id != room_id:
            return

        def check(mine: str) -> None:
            for receipt in event.receipts:
                if receipt.user_id == peer_id and receipt.receipt_type == "m.read" and receipt.event_id == mine:
                    # nio's room keeps it too, unthreaded or for the main timeline.
                    kept = room.read_receipts.get(peer_id) or room.threaded_read_receipts.get(peer_id, {}).get("main")
                    if kept is None or kept.event_id != mine:
                        raise ScenarioError(f"nio's room does not keep {peer_name}'s receipt on {mine}: {kept!r}")
                    observe("read receipt", f"on {mine}, kept by nio's room")

        about_my_message(check)

    async def on_typing(room, event: TypingNoticeEvent) -> None:
        nonlocal saw_peer_typing, ack_sent
        if room.room_id != room_id:
            return
        if peer_id in event.users:
            saw_peer_typing = True
            observe("typing")
            if not ack_sent:
                ack_sent = True
                await send(
                    "m.room.message",
                    {"msgtype": "m.notice", "body": f"nio saw {peer_id} typing", CROSS_MARKER: "typing-seen", "about": peer_id},
                    "the typing-seen marker",
                )
        elif saw_peer_typing:
            observe("typing stop")

    async def on_presence(event: PresenceEvent) -> None:
        if event.user_id == peer_id and event.presence == "online" and (event.status_msg or "").startswith("cross:"):
            observe("presence", repr(event.status_msg))

    me.add_presence_callback(on_presence, PresenceEvent)
    me.add_event_callback(on_event, Event)
    me.add_ephemeral_callback(on_receipt, ReceiptEvent)
    me.add_ephemeral_callback(on_typing, TypingNoticeEvent)
    try:
        step("nio: starting the sync loop")
        tasks.append(asyncio.create_task(me.sync_forever(timeout=SYNC_TIMEOUT_MS), name="nio-sync"))
        await wait_step(me.synced.wait(), "nio's initial sync", tasks, deadline)
        if room_id not in me.rooms:
            raise ScenarioError(f"nio: the initial sync does not show {room_id} as joined")
        await send("m.room.message", {"msgtype": "m.notice", "body": "nio is syncing", CROSS_MARKER: "ready"}, "the ready marker")
        await wait_step(asyncio.shield(peer_ready), f"{peer_name}'s ready marker (its sync loop running)", tasks, deadline)

        step("nio: both sync loops run; sending a message")
        my_body = f"hello from matrix-nio {int(time.time() * 1000):x}"
        mine = await send("m.room.message", {"msgtype": "m.text", "body": my_body, CROSS_MARKER: "message"}, "the message")
        my_message_id = mine
        for check in waiting_for_my_message:
            check(mine)
        await wait_step(asyncio.shield(feature_seen["message"]), f'{peer_name}\'s message (feature "message")', tasks, deadline)

        step("nio: editing its message, replying to and reacting to the peer's, sending a read receipt and presence, typing")
        peer_event = peer_message["event_id"]
        await send(
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": f"* {my_body} (edited by nio)",
                "m.new_content": {"msgtype": "m.text", "body": f"{my_body} (edited by nio)"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": mine},
            },
            "the edit",
        )
        await send(
            "m.room.message",
            {"msgtype": "m.text", "body": "nio replies", "m.relates_to": {"m.in_reply_to": {"event_id": peer_event}}},
            "the reply",
        )
        await send(
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": peer_event, "key": "👍 nio"}},
            "the reaction",
        )
        expect(await me.update_receipt_marker(room_id, peer_event), UpdateReceiptMarkerResponse, "the read receipt")
        expect(await me.set_presence("online", "cross: matrix-nio is here"), PresenceSetResponse, "presence")
        expect(await me.room_typing(room_id, True, int(2 * deadline * 1000)), RoomTypingResponse, "typing")
        await wait_step(asyncio.shield(typing_acked), f"{peer_name}'s typing-seen marker (it never saw nio typing)", tasks, deadline)
        expect(await me.room_typing(room_id, False), RoomTypingResponse, "typing stop")

        try:
            await wait_step(asyncio.gather(*(asyncio.shield(f) for f in feature_seen.values())), "every feature", tasks, deadline)
        except ScenarioError as error:
            missing = [f"{f} [{CROSS_FEATURES[f]}]" for f in CROSS_FEATURES if f not in seen]
            if not missing:
                raise
            raise ScenarioError(
                f"nio (matrix-nio) did not see from {peer_name} through its sync loop within {deadline:.0f} s: "
                + "; ".join(missing)
            ) from error
        return {
            "client": "matrix-nio",
            "mode": "cross",
            "version": package_version("matrix-nio"),
            "ok": True,
            "seen": seen,
            "http_requests": len(HTTP_LOG),
            "unexpected_http_errors": HTTP_ERRORS,
            "elapsed_ms": int((time.monotonic() - STARTED) * 1000),
        }
    finally:
        await stop_syncs([me], tasks)
        await me.close()


def run() -> int:
    scenario = cross_main if sys.argv[1:] == ["cross"] else main
    try:
        summary = asyncio.run(asyncio.wait_for(scenario(), OVERALL_DEADLINE))
    except asyncio.TimeoutError:
        report_failure(f"the scenario did not finish within {OVERALL_DEADLINE:.0f} s")
        return 1
    except ScenarioError as error:
        report_failure(str(error))
        return 1
    except Exception as error:  # noqa: BLE001 - any failure is reported
        import traceback

        traceback.print_exc()
        report_failure(f"{type(error).__name__}: {error}")
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run())
