// The real client library through its generated Kotlin bindings (JNA, kotlinx-coroutines), on the
// JVM, against a real `kefu serve`. Run by tests/tests/bindings.rs, which restarts the server when
// this program prints STOP / START (answered STOPPED / STARTED on stdin).
// Environment: KEFU_URL, KEFU_AGENT, KEFU_AGENT_PASSWORD; -Djna.library.path holds libkefu_sdk.so.

import io.kefu.sdk.*
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

val url: String = System.getenv("KEFU_URL")
val http: HttpClient = HttpClient.newHttpClient()

fun step(msg: String) = System.err.println("[kotlin] $msg")

fun check(ok: Boolean, what: () -> String) {
    if (!ok) throw AssertionError(what())
}

/** A REST call; returns the body. */
fun rest(method: String, path: String, token: String?, body: String?): String {
    val b = HttpRequest.newBuilder(URI.create(url + path)).header("Content-Type", "application/json")
    if (token != null) b.header("Authorization", "Bearer $token")
    b.method(method, if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(body))
    val r = http.send(b.build(), HttpResponse.BodyHandlers.ofString())
    check(r.statusCode() in 200..299) { "$method $path -> ${r.statusCode()} ${r.body()}" }
    return r.body()
}

fun jsonField(json: String, key: String): String =
    Regex("\"$key\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)
        ?: throw AssertionError("no $key in $json")

/** Every event, handed from the SDK's thread to the test coroutine. */
class Events : ChatListener {
    val channel = Channel<ChatEvent>(Channel.UNLIMITED)
    val messages = mutableListOf<ChatMessage>()
    override fun onEvent(event: ChatEvent) {
        channel.trySend(event)
    }

    suspend fun waitFor(what: String, pred: (ChatEvent) -> Boolean): ChatEvent =
        try {
            withTimeout(60_000) {
                while (true) {
                    val e = channel.receive()
                    if (e is ChatEvent.Message) messages.add(e.message)
                    if (pred(e)) return@withTimeout e
                }
                @Suppress("UNREACHABLE_CODE")
                throw IllegalStateException()
            }
        } catch (t: kotlinx.coroutines.TimeoutCancellationException) {
            throw AssertionError("timed out waiting for $what")
        }
}

fun control(word: String, answer: String) {
    println(word)
    System.out.flush()
    val line = readLine()?.trim()
    check(line == answer) { "expected $answer, got $line" }
}

fun main() = runBlocking {
    val events = Events()
    val client = ChatClient(ChatConfig(serverUrl = url, siteKey = "demo", name = "Kotlin 测试"), events)
    try {
        val session = (events.waitFor("session") { it is ChatEvent.SessionStarted } as ChatEvent.SessionStarted).session
        events.waitFor("connected") { it is ChatEvent.Connection && it.status is ConnectionStatus.Connected }
        step("connected, conversation ${session.conversationId}")

        // Ask the bot in Chinese: the suspend send returns the committed seq.
        val seq = client.send("多久发货？")
        // The knowledge base answers through the (scripted) LLM: pieces stream in first.
        val delta = events.waitFor("a streamed piece of the answer") { it is ChatEvent.MessageDelta } as ChatEvent.MessageDelta
        check(delta.text.isNotEmpty() && delta.streamId.isNotEmpty()) { "a delta has text: $delta" }
        val answer = (events.waitFor("the bot's answer") {
            it is ChatEvent.Message && it.message.author == AuthorKind.BOT
        } as ChatEvent.Message).message
        check(answer.text.startsWith(delta.text)) { "the answer continues the stream: $delta / $answer" }
        check(answer.seq > seq) { "answer after question" }
        check(answer.sources.isNotEmpty()) { "a knowledge-base answer cites its sources: $answer" }
        step("bot: ${answer.text.take(40)}… (${answer.sources[0].title})")

        // Hand off; the agent answers through the agent REST API.
        client.requestHuman()
        events.waitFor("queued") { it is ChatEvent.StateChanged && it.state == ConversationState.QUEUED }
        val login = rest("POST", "/v1/agent/login", null,
            """{"name":"${System.getenv("KEFU_AGENT")}","password":"${System.getenv("KEFU_AGENT_PASSWORD")}"}""")
        val agent = jsonField(login, "token")
        rest("POST", "/v1/agent/conversations/${session.conversationId}/claim", agent, "{}")
        rest("POST", "/v1/agent/conversations/${session.conversationId}/messages", agent,
            """{"text":"Hello from agent Wang 王小二"}""")
        val reply = (events.waitFor("the agent's reply") {
            it is ChatEvent.Message && it.message.author == AuthorKind.AGENT
        } as ChatEvent.Message).message
        check(reply.text.contains("王小二")) { reply.text }
        step("agent replied")

        // A receipt as a PDF: uploaded, then sent in a message that carries it.
        val receipt = "%PDF-1.4\n%\u00e2\u00e3\n".toByteArray(Charsets.ISO_8859_1)
        val file = client.uploadAttachment("收据.pdf", receipt)
        check(file.contentType == "application/pdf" && file.size == receipt.size.toULong()) { "$file" }
        check(file.thumbnailUrl == null) { "no thumbnail for a PDF: $file" }
        val fileMsgId = client.sendWithAttachments("", listOf(file.id))
        val carried = (events.waitFor("the receipt") {
            it is ChatEvent.Message && it.message.clientMsgId == fileMsgId
        } as ChatEvent.Message).message
        check(carried.attachments.map { it.name } == listOf("收据.pdf")) { "$carried" }
        step("receipt sent")

        // The server restarts while a message waits in the outbox.
        control("STOP", "STOPPED")
        events.waitFor("waiting") { it is ChatEvent.Connection && it.status is ConnectionStatus.Waiting }
        val queuedText = "Queued in Kotlin while the server was down / 离线排队"
        val id = client.sendText(queuedText)
        control("START", "STARTED")
        val acked = events.waitFor("the ack after the restart") {
            it is ChatEvent.MessageAcked && it.clientMsgId == id
        } as ChatEvent.MessageAcked
        events.waitFor("the queued message") { it is ChatEvent.Message && it.message.clientMsgId == id }
        step("queued message committed as seq ${acked.seq} after the restart")

        val seqs = events.messages.map { it.seq }
        check(seqs == seqs.distinct().sorted()) { "duplicates or disorder: $seqs" }
        val stored = rest("GET", "/v1/conversations/${session.conversationId}/messages", session.token, null)
        check(stored.split(queuedText).size == 2) { "the queued message is stored exactly once: $stored" }

        // The agent resolves; the visitor rates the conversation, which the agent then sees.
        rest("POST", "/v1/agent/conversations/${session.conversationId}/resolve", agent, "{}")
        events.waitFor("resolved") { it is ChatEvent.StateChanged && it.state == ConversationState.RESOLVED }
        client.rate(4u, "Kotlin 评价: good")
        val transcript = rest("GET", "/v1/agent/conversations/${session.conversationId}", agent, null)
        check(transcript.contains("\"score\":4") && transcript.contains("Kotlin 评价: good")) {
            "the rating is stored with the conversation: $transcript"
        }
        try {
            client.rate(0u, null)
            throw AssertionError("a rating of 0 was accepted")
        } catch (e: ChatException.InvalidInput) {
        }
        step("rated 4/5 after the agent resolved")

        try {
            client.sendText("")
            throw AssertionError("an empty message was accepted")
        } catch (e: ChatException.InvalidInput) {
        }
    } finally {
        client.disconnect()
    }
    events.waitFor("stopped") { it is ChatEvent.Connection && it.status is ConnectionStatus.Stopped }
    client.destroy()
    println("PASS")
}
