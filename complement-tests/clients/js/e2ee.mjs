// matrix-js-sdk's Rust crypto (the WASM build of matrix-sdk-crypto) against a running Myelin.
//
//   MYELIN_URL=http://127.0.0.1:8008 node e2ee.mjs '<accounts JSON>'
//
// The accounts JSON is `{"alice": {user_id, access_token, device_id}, "bob": {…}}`, made by
// the Rust test (other_clients.rs). Both clients run `initRustCrypto` (in memory) and the
// SDK's sync loop; alice creates an encrypted room and invites bob, who joins from his sync;
// each sends one message, and the other's SDK must decrypt it (through /keys/upload,
// /keys/query, /keys/claim, to-device room keys and device lists on the server). Exit 0 with
// a one-line JSON summary, or exit 1 naming the step that failed.

import { ClientEvent, MatrixEventEvent, RoomMemberEvent, createClient } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

const BASE_URL = process.env.MYELIN_URL;
const STEP_DEADLINE_MS = 30_000;
const started = Date.now();
const clients = [];

logger.setLevel(process.env.SDK_LOG_LEVEL ?? "error");

function step(message) {
    process.stderr.write(`[e2ee +${Date.now() - started}ms] ${message}\n`);
}

function fail(message, error) {
    process.stderr.write(`\nFAILED: ${message}\n`);
    if (error) process.stderr.write(`${error?.stack ?? error}\n`);
    for (const client of clients) client.stopClient();
    process.exit(1);
}

process.on("unhandledRejection", (error) => fail("unhandled promise rejection", error));

/** Resolves with the first value `probe` returns (re-run on each `emitter` `event`). */
function waitFor(emitter, event, probe, what) {
    return new Promise((resolve, reject) => {
        const check = (...args) => {
            const found = probe(...args);
            if (found !== undefined) {
                emitter.off(event, check);
                clearTimeout(timer);
                resolve(found);
            }
        };
        const timer = setTimeout(() => {
            emitter.off(event, check);
            reject(new Error(`timed out after ${STEP_DEADLINE_MS} ms waiting for ${what}`));
        }, STEP_DEADLINE_MS);
        emitter.on(event, check);
        check();
    });
}

async function start(account) {
    const client = createClient({
        baseUrl: BASE_URL,
        userId: account.user_id,
        accessToken: account.access_token,
        deviceId: account.device_id,
    });
    clients.push(client);
    await client.initRustCrypto({ useIndexedDB: false });
    const prepared = waitFor(client, ClientEvent.Sync, (state) => (state === "PREPARED" ? true : undefined), "the first sync");
    await client.startClient({ initialSyncLimit: 10 });
    await prepared;
    return client;
}

/** The decrypted body of the first encrypted message from `sender` in `roomId`. */
function decryptedFrom(client, roomId, sender, what) {
    return waitFor(
        client,
        MatrixEventEvent.Decrypted,
        (event) => {
            if (!event || event.getRoomId() !== roomId || event.getSender() !== sender) return undefined;
            if (event.isDecryptionFailure()) fail(`${what}: could not decrypt (${event.decryptionFailureReason})`);
            return event.getType() === "m.room.message" ? event.getContent().body : undefined;
        },
        what,
    );
}

async function main() {
    if (!BASE_URL) fail("MYELIN_URL is not set");
    const accounts = JSON.parse(process.argv[2] ?? "{}");
    const alice = await start(accounts.alice);
    const bob = await start(accounts.bob);
    step("both clients syncing with Rust crypto");

    const bobJoins = waitFor(
        bob,
        RoomMemberEvent.Membership,
        (_, member) => (member?.userId === bob.getUserId() && member.membership === "invite" ? member.roomId : undefined),
        "bob's invite",
    ).then((roomId) => bob.joinRoom(roomId));
    const { room_id: roomId } = await alice.createRoom({
        invite: [bob.getUserId()],
        initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    await bobJoins;
    await waitFor(
        alice,
        RoomMemberEvent.Membership,
        () => (alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join" ? true : undefined),
        "bob's join in alice's view",
    );
    step(`encrypted room ${roomId} with both members`);

    const atBob = decryptedFrom(bob, roomId, alice.getUserId(), "alice's message at bob");
    await alice.sendMessage(roomId, { msgtype: "m.text", body: "hello bob, encrypted" });
    const bobGot = await atBob;
    if (bobGot !== "hello bob, encrypted") fail(`bob decrypted ${JSON.stringify(bobGot)}`);
    step("bob decrypted alice's message");

    const atAlice = decryptedFrom(alice, roomId, bob.getUserId(), "bob's reply at alice");
    await bob.sendMessage(roomId, { msgtype: "m.text", body: "hello alice, encrypted too" });
    const aliceGot = await atAlice;
    if (aliceGot !== "hello alice, encrypted too") fail(`alice decrypted ${JSON.stringify(aliceGot)}`);
    step("alice decrypted bob's reply");

    for (const client of clients) client.stopClient();
    console.log(JSON.stringify({ ok: true, room_id: roomId, bob_decrypted: bobGot, alice_decrypted: aliceGot, ms: Date.now() - started }));
    process.exit(0);
}

main().catch((error) => fail("the scenario threw", error));
