"""The real client library through its generated Python bindings, against a real `kefu serve`.

Run by tests/tests/bindings.rs, which starts the server and restarts it when this script prints
`STOP` / `START` (it answers `STOPPED` / `STARTED` on stdin). Environment: KEFU_URL, KEFU_AGENT,
KEFU_AGENT_PASSWORD, and PYTHONPATH holding the generated `kefu_sdk.py` beside libkefu_sdk.so.

Steps: ask the bot (answer with sources), request a human, get the agent's reply sent through the
agent REST API, send a photo (upload, then a message carrying it), then queue a message while the server is down and see it delivered exactly once
after the restart; the agent resolves and the visitor rates the conversation.
"""

import asyncio
import hashlib
import hmac
import json
import os
import sys
import urllib.request

import kefu_sdk as k

URL = os.environ["KEFU_URL"]
TIMEOUT = 60


def step(msg):
    print(f"[python] {msg}", file=sys.stderr, flush=True)


def rest(method, path, token=None, body=None):
    req = urllib.request.Request(URL + path, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(req, data=data, timeout=20) as r:
        return json.loads(r.read() or b"null")


class Events(k.ChatListener):
    """Collects every event; the asyncio side waits on it."""

    def __init__(self, loop):
        self.loop = loop
        self.queue = asyncio.Queue()
        self.messages = []

    def on_event(self, event):
        # Called on the SDK's thread: hop to the event loop.
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def wait_for(self, what, pred):
        async def loop():
            while True:
                e = await self.queue.get()
                if e.is_message():
                    self.messages.append(e.message)
                if pred(e):
                    return e

        try:
            return await asyncio.wait_for(loop(), TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}")


async def control(word, answer):
    print(word, flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    assert line.strip() == answer, f"expected {answer}, got {line!r}"


async def main():
    events = Events(asyncio.get_running_loop())
    client = k.ChatClient(k.ChatConfig(server_url=URL, site_key="demo", name="Python 测试"), events)
    try:
        await chat(client, events)
    finally:
        # Stop the client's thread before the interpreter tears down.
        client.disconnect()


async def chat(client, events):

    started = await events.wait_for("session", lambda e: e.is_session_started())
    session = started.session
    await events.wait_for("connected", lambda e: e.is_connection() and e.status.is_connected())
    step(f"connected, conversation {session.conversation_id}")

    # Ask the bot: the async send resolves with the committed seq.
    seq = await client.send("How long does delivery take?")
    assert seq >= 1, seq
    # The knowledge base answers through the (scripted) LLM: pieces stream in first.
    delta = await events.wait_for("a streamed piece of the answer", lambda e: e.is_message_delta())
    assert delta.text and delta.stream_id, delta
    answer = await events.wait_for(
        "the bot's answer", lambda e: e.is_message() and e.message.author == k.AuthorKind.BOT
    )
    assert answer.message.text.startswith(delta.text), (delta.text, answer.message.text)
    assert answer.message.seq > seq
    assert answer.message.sources, f"a knowledge-base answer cites its sources: {answer.message}"
    step(f"bot: {answer.message.text[:60]}… ({answer.message.sources[0].title})")

    # Chinese too.
    await client.send("多久发货？")
    zh = await events.wait_for(
        "the bot's Chinese answer",
        lambda e: e.is_message() and e.message.author == k.AuthorKind.BOT and "发货" in e.message.text,
    )
    assert zh.message.sources

    # Hand off to a human.
    client.request_human()
    await events.wait_for(
        "queued", lambda e: e.is_state_changed() and e.state == k.ConversationState.QUEUED
    )
    agent = rest("POST", "/v1/agent/login", body={
        "name": os.environ["KEFU_AGENT"], "password": os.environ["KEFU_AGENT_PASSWORD"]})["token"]
    rest("POST", f"/v1/agent/conversations/{session.conversation_id}/claim", agent, {})
    await events.wait_for(
        "agent state", lambda e: e.is_state_changed() and e.state == k.ConversationState.AGENT
    )
    rest("POST", f"/v1/agent/conversations/{session.conversation_id}/messages", agent,
         {"text": "您好，我是客服王小二 (agent Wang)."})
    reply = await events.wait_for(
        "the agent's reply", lambda e: e.is_message() and e.message.author == k.AuthorKind.AGENT
    )
    assert "王小二" in reply.message.text
    assert reply.message.author_name, "agent messages carry the agent's name"
    step("agent replied")

    # A photo of the parcel: uploaded, sent with a caption, delivered with an expiring link that
    # serves the same bytes and a thumbnail; a program is refused with the server's code.
    root = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(root, "../../../tests/fixtures/attachments/parcel.png"), "rb") as f:
        photo = f.read()
    attachment = await client.upload_attachment("破损包裹.png", photo)
    assert attachment.content_type == "image/png" and attachment.width == 640, attachment
    assert attachment.name == "破损包裹.png" and attachment.thumbnail_url, attachment
    sent_id = client.send_with_attachments("包裹破损 / the parcel arrived broken", [attachment.id])
    delivered = await events.wait_for(
        "the photo", lambda e: e.is_message() and e.message.client_msg_id == sent_id
    )
    files = delivered.message.attachments
    assert [a.id for a in files] == [attachment.id], files
    with urllib.request.urlopen(URL + files[0].url, timeout=20) as r:
        assert r.read() == photo, "the link serves the photo as sent"
    try:
        await client.upload_attachment("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00")
        raise AssertionError("a program was accepted")
    except k.ChatError.Server as e:
        assert e.code == "unsupported_file", e
    step("photo sent and served; a program refused")

    # The server goes away: a message sent now waits in the outbox.
    await control("STOP", "STOPPED")
    await events.wait_for("waiting", lambda e: e.is_connection() and e.status.is_waiting())
    queued_text = "Sent while the server was down / 服务器重启时发送"
    msg_id = client.send_text(queued_text)
    await events.wait_for("queued locally", lambda e: e.is_message_queued() and e.client_msg_id == msg_id)
    await control("START", "STARTED")
    acked = await events.wait_for(
        "the ack after the restart", lambda e: e.is_message_acked() and e.client_msg_id == msg_id
    )
    await events.wait_for(
        "the queued message", lambda e: e.is_message() and e.message.client_msg_id == msg_id
    )
    step(f"queued message committed as seq {acked.seq} after the restart")

    # Every seq once, in order; the server stored the queued message exactly once.
    seqs = [m.seq for m in events.messages]
    assert seqs == sorted(set(seqs)), f"duplicates or disorder: {seqs}"
    stored = rest("GET", f"/v1/conversations/{session.conversation_id}/messages", session.token)
    texts = [m["text"] for m in stored["messages"]]
    assert texts.count(queued_text) == 1, texts
    assert [m["seq"] for m in stored["messages"]] == list(range(1, len(texts) + 1))

    # The agent resolves; the visitor rates the conversation (CSAT), which the agent then sees.
    rest("POST", f"/v1/agent/conversations/{session.conversation_id}/resolve", agent, {})
    await events.wait_for(
        "resolved", lambda e: e.is_state_changed() and e.state == k.ConversationState.RESOLVED
    )
    try:
        await client.rate(9, None)
        raise AssertionError("a rating of 9 was accepted")
    except k.ChatError.InvalidInput:
        pass
    await client.rate(5, "很满意 / very helpful")
    rating = rest("GET", f"/v1/agent/conversations/{session.conversation_id}", agent)["rating"]
    assert rating["score"] == 5 and rating["comment"] == "很满意 / very helpful", rating
    step("rated 5/5 after the agent resolved")

    # Bad input gets a clear error; closing stops the client.
    try:
        client.send_text("   ")
        raise AssertionError("an empty message was accepted")
    except k.ChatError.InvalidInput:
        pass
    client.disconnect()
    await events.wait_for("stopped", lambda e: e.is_connection() and e.status.is_stopped())
    try:
        client.send_text("after close")
        raise AssertionError("sending after close was accepted")
    except k.ChatError.Closed:
        pass
    await identity_and_resume(session)
    print("PASS", flush=True)


async def identity_and_resume(session):
    """A saved session resumes the same conversation; a site that enforces identity takes a
    verified user and refuses a wrong hash with a clear error."""
    loop = asyncio.get_running_loop()
    events = Events(loop)
    saved = k.SavedSession(token=session.token, visitor_id=session.visitor_id,
                           conversation_id=session.conversation_id)
    resumed = k.ChatClient(k.ChatConfig(server_url=URL, site_key="demo", resume=saved), events)
    try:
        await events.wait_for("resumed", lambda e: e.is_connection() and e.status.is_connected())
        first = await events.wait_for("the replayed first message", lambda e: e.is_message())
        assert first.message.conversation_id == session.conversation_id
        assert first.message.seq == 1
    finally:
        resumed.disconnect()
    step("a saved session resumed the same conversation")

    secret = os.environ["KEFU_MEMBERS_SECRET"].encode()
    good = hmac.new(secret, b"member-42", hashlib.sha256).hexdigest()
    events = Events(loop)
    member = k.ChatClient(k.ChatConfig(server_url=URL, site_key="members", user_id="member-42",
                                       user_hash=good), events)
    try:
        await events.wait_for("verified session", lambda e: e.is_session_started())
        assert await member.send("会员积分怎么用？") >= 1
    finally:
        member.disconnect()
    events = Events(loop)
    forged = k.ChatClient(k.ChatConfig(server_url=URL, site_key="members", user_id="member-42",
                                       user_hash="00" * 32), events)
    try:
        refused = await events.wait_for("the refusal", lambda e: e.is_error())
        assert isinstance(refused.error, k.ChatError.Server), refused.error
        assert refused.error.code == "identity_invalid", refused.error
        await events.wait_for("stopped", lambda e: e.is_connection() and e.status.is_stopped())
    finally:
        forged.disconnect()
    step("identity verified, a forged hash refused with identity_invalid")


asyncio.run(main())
# Exit without interpreter teardown: a late SDK callback during finalisation crashed one CI run
# after PASS (recorded in the issue note as an open problem).
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
