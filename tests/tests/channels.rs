//! Channels end to end against a real `kefu serve`: a WeChat Official Account driven with signed
//! XML exactly as WeChat sends it (URL verification, passive replies in both languages, a retry
//! with the same MsgId committed once, media, refusals), agents' replies through a stand-in for
//! WeChat's customer-service API (which speaks its documented protocol — token, custom send,
//! an expired token refused once); and the API channel: a bearer-token REST inbound per external
//! user id whose replies — the bot's and an agent's — reach the integrator as signed event
//! webhooks naming the channel and the user; and erasing one channel user's data (PIPL/GDPR)
//! over the admin API and the CLI, with the audit log; attachments both ways (limits, sniffing,
//! thumbnails, expiring links, erasure), in the data directory or in a stand-in S3-compatible
//! bucket.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::Json;
use kefu_e2e::chat::Api;
use kefu_e2e::Server;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const WECHAT_TOKEN: &str = "kefuWechat2026";
const APP_ID: &str = "wx0123456789abcdef";
const APP_SECRET: &str = "app-secret-for-tests";

/// What the stand-in for WeChat's API saw.
#[derive(Default)]
struct WechatApi {
    tokens_issued: usize,
    /// Refuse the next custom send with errcode 40001 (the token was replaced elsewhere).
    expire_next: bool,
    /// (touser, content) of each accepted customer-service message.
    sent: Vec<(String, String)>,
}

async fn token(
    State(api): State<Arc<Mutex<WechatApi>>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    let mut api = api.lock().unwrap_or_else(|e| e.into_inner());
    if q.get("grant_type").map(String::as_str) != Some("client_credential")
        || q.get("appid").map(String::as_str) != Some(APP_ID)
        || q.get("secret").map(String::as_str) != Some(APP_SECRET)
    {
        return Json(json!({"errcode": 40013, "errmsg": "invalid appid"}));
    }
    api.tokens_issued += 1;
    Json(json!({"access_token": format!("ACCESS_{}", api.tokens_issued), "expires_in": 7200}))
}

async fn custom_send(
    State(api): State<Arc<Mutex<WechatApi>>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Json<Value> {
    let mut api = api.lock().unwrap_or_else(|e| e.into_inner());
    let current = format!("ACCESS_{}", api.tokens_issued);
    if api.expire_next || q.get("access_token") != Some(&current) {
        api.expire_next = false;
        return Json(json!({"errcode": 40001, "errmsg": "invalid credential"}));
    }
    let m: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(m["msgtype"], "text", "{m}");
    api.sent.push((
        m["touser"].as_str().unwrap_or("").to_string(),
        m["text"]["content"].as_str().unwrap_or("").to_string(),
    ));
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

fn start_wechat_api(api: Arc<Mutex<WechatApi>>, rt: &tokio::runtime::Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let app = axum::Router::new()
        .route("/cgi-bin/token", get(token))
        .route("/cgi-bin/message/custom/send", post(custom_send))
        .with_state(api);
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// WeChat's signature, written out from its documentation.
fn sign(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

fn signed_query(token: &str, extra: &str) -> String {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let nonce = "1514372846";
    format!(
        "signature={}&timestamp={timestamp}&nonce={nonce}{extra}",
        sign(token, &timestamp, nonce)
    )
}

fn text_xml(user: &str, text: &str, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_teashop]]></ToUserName>\
         <FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>1764979200</CreateTime>\
         <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>\
         <MsgId>{msg_id}</MsgId></xml>"
    )
}

/// The text of an XML element (CDATA or not).
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    let inner = &xml[start..end];
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner)
            .to_string(),
    )
}

fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_wechat_official_account_chats_with_the_bot_and_agents() {
    let rt = kefu_e2e::runtime();
    let api_state = Arc::new(Mutex::new(WechatApi::default()));
    let api_base = start_wechat_api(Arc::clone(&api_state), &rt);
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    kefu_e2e::add_agent(data, &[], "lin", "小林", "wechat-test-pw", &[]);
    let node = Server::start(data, &["--wechat-api-base", &api_base]);
    let http = reqwest::Client::new();
    let url = node.url("/v1/channels/wechat/demo");

    // Not set up yet; then bad settings are refused and good ones saved.
    let status = rt.block_on(async {
        let q = signed_query(WECHAT_TOKEN, "&echostr=abc");
        http.get(format!("{url}?{q}"))
            .send()
            .await
            .expect("GET")
            .status()
    });
    assert_eq!(status.as_u16(), 404, "the channel is not set up yet");
    let mut c = kefu_e2e::kefu(data);
    c.args(["site", "set", "demo", "--wechat-token", "x!"]);
    assert!(!kefu_e2e::run(c).status.success(), "a token WeChat refuses");
    let out = kefu_e2e::kefu_ok(
        data,
        &[
            "site",
            "set",
            "demo",
            "--wechat-token",
            WECHAT_TOKEN,
            "--wechat-app-id",
            APP_ID,
            "--wechat-app-secret",
            APP_SECRET,
            "--json",
        ],
    );
    let set: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(set["channels"], json!(["wechat"]), "{set}");

    rt.block_on(async {
        // URL verification: echostr back for the right signature only.
        let q = signed_query(WECHAT_TOKEN, "&echostr=6093124351218924181");
        let r = http.get(format!("{url}?{q}")).send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.text().await.expect("body"), "6093124351218924181");
        let q = signed_query("another-token", "&echostr=1");
        let r = http.get(format!("{url}?{q}")).send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 401);
        let body: Value = r.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], "unauthorized");
        let r = http
            .get(node.url(&format!(
                "/v1/channels/wechat/nosuchsite?{}",
                signed_query(WECHAT_TOKEN, "&echostr=1")
            )))
            .send()
            .await
            .expect("GET");
        let body: Value = r.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], "unknown_site");

        let post = |query: String, xml: String| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let r = http
                    .post(format!("{url}?{query}&openid=x"))
                    .header("content-type", "text/xml")
                    .body(xml)
                    .send()
                    .await
                    .expect("POST");
                (r.status().as_u16(), r.text().await.expect("body"))
            }
        };
        // A forged message (wrong signature) and malformed XML are refused.
        let (status, _) = post(signed_query("forged", ""), text_xml("oForger", "hello", 1)).await;
        assert_eq!(status, 401);
        let (status, body) = post(signed_query(WECHAT_TOKEN, ""), "<xml><oops".into()).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("invalid_input"), "{body}");

        // English and Chinese questions: passive replies, in the user's language.
        let started = Instant::now();
        let (status, xml) = post(
            signed_query(WECHAT_TOKEN, ""),
            text_xml("oUserEn", "How long does delivery take?", 7001),
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "inside WeChat's window"
        );
        assert_eq!(
            element(&xml, "ToUserName").as_deref(),
            Some("oUserEn"),
            "{xml}"
        );
        assert_eq!(element(&xml, "FromUserName").as_deref(), Some("gh_teashop"));
        assert_eq!(element(&xml, "MsgType").as_deref(), Some("text"));
        let answer = element(&xml, "Content").unwrap_or_default();
        assert!(answer.contains("1-2 days"), "{answer}");

        let (_, xml) = post(
            signed_query(WECHAT_TOKEN, ""),
            text_xml("oUserZh", "快递一般几天能到？", 7002),
        )
        .await;
        let answer = element(&xml, "Content").unwrap_or_default();
        assert!(answer.contains("1-2 天"), "{xml}");

        // WeChat retries a message it thinks went unanswered: committed once, no second reply.
        let (status, body) = post(
            signed_query(WECHAT_TOKEN, ""),
            text_xml("oUserEn", "How long does delivery take?", 7001),
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "success"));

        // Media is not read: a notice in both languages.
        let image = "<xml><ToUserName><![CDATA[gh_teashop]]></ToUserName>\
            <FromUserName><![CDATA[oUserEn]]></FromUserName><CreateTime>1764979300</CreateTime>\
            <MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.example/x]]></PicUrl>\
            <MediaId><![CDATA[media1]]></MediaId><MsgId>7003</MsgId></xml>";
        let (_, xml) = post(signed_query(WECHAT_TOKEN, ""), image.into()).await;
        let notice = element(&xml, "Content").unwrap_or_default();
        assert!(notice.contains("文字") && notice.contains("text"), "{xml}");

        // The Chinese user asks for a human; an agent answers through the customer-service API.
        let (status, _) = post(
            signed_query(WECHAT_TOKEN, ""),
            text_xml("oUserZh", "我要转人工", 7004),
        )
        .await;
        assert_eq!(status, 200);
        let api = Api::new(&node.base);
        let agent = api.agent("lin", "wechat-test-pw").await;
        let (status, list) = api
            .get("/v1/agent/conversations?state=queued", Some(&agent))
            .await;
        assert_eq!(status, 200, "{list}");
        let conv = list["conversations"]
            .as_array()
            .and_then(|l| l.first())
            .and_then(|c| c["id"].as_str())
            .expect("the WeChat user's conversation is queued")
            .to_string();
        let (status, transcript) = api
            .get(&format!("/v1/agent/conversations/{conv}"), Some(&agent))
            .await;
        assert_eq!(status, 200);
        let visitor_texts: Vec<String> = transcript["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|m| m["author"]["kind"] == "visitor")
                    .filter_map(|m| m["text"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            visitor_texts,
            ["快递一般几天能到？", "我要转人工"],
            "{transcript}"
        );
        let (status, body) = api.agent_action(&agent, &conv, "claim").await;
        assert_eq!(status, 200, "{body}");
        api_state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire_next = true;
        let (status, body) = api
            .post(
                &format!("/v1/agent/conversations/{conv}/messages"),
                Some(&agent),
                json!({"client_msg_id": "lin-1", "text": "您好，我是小林，请问订单号是多少？"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    });

    // The agent's message reaches the user after one token refresh; the English user's
    // conversation saw one question and one answer (the retry added nothing).
    let sent = wait_for(
        "the agent's reply reaches WeChat",
        Duration::from_secs(30),
        || {
            let api = api_state.lock().unwrap_or_else(|e| e.into_inner());
            api.sent
                .iter()
                .any(|(_, t)| t.contains("小林"))
                .then(|| api.sent.clone())
        },
    );
    let to_agent_reply: Vec<&(String, String)> =
        sent.iter().filter(|(_, t)| t.contains("小林")).collect();
    assert_eq!(to_agent_reply.len(), 1, "{sent:?}");
    assert_eq!(to_agent_reply[0].0, "oUserZh");
    assert!(
        sent.iter().all(|(u, _)| u == "oUserZh"),
        "the English user's answer went passively, not twice: {sent:?}"
    );
    assert_eq!(
        api_state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tokens_issued,
        2,
        "a refused token is fetched again once"
    );
}

/// The integrator's webhook receiver: every `message.created` body.
async fn receive(State(seen): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> &'static str {
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    "ok"
}

#[test]
fn the_api_channel_bridges_an_integrators_users_both_ways() {
    let rt = kefu_e2e::runtime();
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("address"));
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&seen));
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    kefu_e2e::add_agent(data, &[], "ana", "Ana", "api-channel-pw", &[]);
    let node = Server::start(data, &[]);
    let out = kefu_e2e::kefu_ok(data, &["site", "set", "demo", "--api-token", "--json"]);
    let set: Value = serde_json::from_str(&out).expect("JSON");
    let token = set["api_token"].as_str().expect("token").to_string();
    assert_eq!(set["channels"], json!(["api"]));
    kefu_e2e::kefu_ok(
        data,
        &[
            "webhook",
            "add",
            "--site",
            "demo",
            "--url",
            &hook,
            "--events",
            "message.created",
        ],
    );
    let user = "whatsapp:+8613800000000";
    let path = "/v1/channels/api/demo/messages";

    let conv = rt.block_on(async {
        let api = Api::new(&node.base);
        let msg = json!({"user_id": user, "text": "How long does delivery take?", "message_id": "wamid.1", "name": "Wang Fang"});
        // Refusals: no token, another token, an unknown site, bad bodies.
        let (status, body) = api.post(path, None, msg.clone()).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
        let (status, _) = api.post(path, Some("kefu_ch_wrong"), msg.clone()).await;
        assert_eq!(status, 401);
        let (_, body) = api
            .post("/v1/channels/api/nosuch/messages", Some(&token), msg.clone())
            .await;
        assert_eq!(body["error"]["code"], "unknown_site", "{body}");
        let (status, body) = api
            .post(path, Some(&token), json!({"user_id": user, "text": " \u{200b} "}))
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_input")));
        let (status, body) = api
            .post(path, Some(&token), json!({"user_id": "", "text": "hi"}))
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_input")));
        let (_, body) = api
            .post(path, Some(&token), json!({"user_id": user, "text": "x".repeat(4001)}))
            .await;
        assert_eq!(body["error"]["code"], "too_large", "{body}");

        // The message, then the same message again (a retry): one commit.
        let (status, first) = api.post(path, Some(&token), msg.clone()).await;
        assert_eq!(status, 200, "{first}");
        let (status, again) = api.post(path, Some(&token), msg.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(
            (&first["conversation_id"], &first["seq"]),
            (&again["conversation_id"], &again["seq"])
        );
        // A Chinese message from the same user joins the same conversation.
        let (_, zh) = api
            .post(path, Some(&token), json!({"user_id": user, "text": "可以货到付款吗？"}))
            .await;
        assert_eq!(zh["conversation_id"], first["conversation_id"]);
        first["conversation_id"].as_str().expect("id").to_string()
    });

    // The bot's answers reach the integrator, naming the channel and the user.
    let bot_replies = |seen: &[Value]| -> Vec<Value> {
        seen.iter()
            .filter(|e| e["type"] == "message.created" && e["data"]["author"]["kind"] == "bot")
            .map(|e| e["data"].clone())
            .collect()
    };
    let replies = wait_for(
        "two bot replies as webhooks",
        Duration::from_secs(30),
        || {
            let r = bot_replies(&seen.lock().unwrap_or_else(|e| e.into_inner()));
            (r.len() >= 2).then_some(r)
        },
    );
    assert_eq!(replies.len(), 2, "{replies:?}");
    for r in &replies {
        assert_eq!(r["channel"], "api");
        assert_eq!(r["channel_user"], user);
        assert_eq!(r["conversation_id"], conv.as_str());
    }
    let texts: Vec<&str> = replies.iter().filter_map(|r| r["text"].as_str()).collect();
    assert!(texts.iter().any(|t| t.contains("1-2 days")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("货到付款")), "{texts:?}");

    // The user asks for a human; the agent's reply reaches the integrator too.
    rt.block_on(async {
        let api = Api::new(&node.base);
        let (status, body) = api
            .post(
                "/v1/channels/api/demo/handoff",
                Some(&token),
                json!({"user_id": user}),
            )
            .await;
        assert_eq!(
            (status, body["conversation_id"].as_str()),
            (200, Some(conv.as_str()))
        );
        let agent = api.agent("ana", "api-channel-pw").await;
        let (status, body) = api.agent_action(&agent, &conv, "claim").await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = api
            .post(
                &format!("/v1/agent/conversations/{conv}/messages"),
                Some(&agent),
                json!({"client_msg_id": "ana-1", "text": "Hi, this is Ana. 我来帮您。"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    });
    wait_for(
        "the agent's reply as a webhook",
        Duration::from_secs(30),
        || {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|e| {
                    e["data"]["author"]["kind"] == "agent"
                        && e["data"]["channel_user"] == user
                        && e["data"]["text"] == "Hi, this is Ana. 我来帮您。"
                })
                .then_some(())
        },
    );

    // Turned off: the token no longer opens anything.
    kefu_e2e::kefu_ok(data, &["site", "set", "demo", "--no-api"]);
    rt.block_on(async {
        let api = Api::new(&node.base);
        let (_, body) = api
            .post(
                path,
                Some(&token),
                json!({"user_id": user, "text": "hello"}),
            )
            .await;
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    });
}

/// A PIPL/GDPR request: one API channel user is erased over the admin API — conversation,
/// messages and their copy in the training history — while another user keeps theirs; the
/// erasure, a retention change and a CLI erasure are in the audit log with counts, never texts.
#[test]
fn a_channel_user_is_erased_everywhere_and_the_audit_log_says_so() {
    let rt = kefu_e2e::runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let node = Server::start(data, &[]);
    let admin = kefu_e2e::admin_key(data);
    let out = kefu_e2e::kefu_ok(data, &["site", "set", "demo", "--api-token", "--json"]);
    let set: Value = serde_json::from_str(&out).expect("JSON");
    let token = set["api_token"].as_str().expect("token").to_string();
    let path = "/v1/channels/api/demo/messages";

    let (gone, kept) = rt.block_on(async {
        let api = Api::new(&node.base);
        let mut convs = Vec::new();
        for (user, text) in [
            ("line:U1", "我的订单号是 KF20261206，多久发货？"),
            ("line:U2", "How long does delivery take?"),
        ] {
            let (status, body) = api
                .post(path, Some(&token), json!({"user_id": user, "text": text}))
                .await;
            assert_eq!(status, 200, "{body}");
            convs.push(body["conversation_id"].as_str().expect("id").to_string());
        }
        // Both bot replies are in before the history is imported.
        for conv in &convs {
            let started = Instant::now();
            loop {
                let (_, t) = api
                    .get(&format!("/v1/admin/conversations/{conv}"), Some(&admin))
                    .await;
                if t["messages"].as_array().is_some_and(|m| m.len() >= 2) {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(20), "no bot reply");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        (convs[0].clone(), convs[1].clone())
    });
    let imported = kefu_e2e::kefu_ok(data, &["train", "import", "--from-kefu", "--json"]);
    assert!(imported.contains("\"added\":2"), "{imported}");

    rt.block_on(async {
        let api = Api::new(&node.base);
        let erase = "/v1/admin/visitors/erase";
        let (status, body) = api
            .post(
                erase,
                None,
                json!({"site_key": "demo", "user_id": "line:U1", "channel": "api"}),
            )
            .await;
        assert_eq!(status, 401, "{body}");
        let (status, body) = api
            .post(
                erase,
                Some(&admin),
                json!({"site_key": "demo", "user_id": "line:U1", "visitor_id": "v_x"}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_input"))
        );
        let (status, erased) = api
            .post(
                erase,
                Some(&admin),
                json!({"site_key": "demo", "user_id": "line:U1", "channel": "api"}),
            )
            .await;
        assert_eq!(status, 200, "{erased}");
        assert_eq!(erased["conversations"], 1);
        assert!(erased["messages"].as_u64() >= Some(2), "{erased}");
        assert_eq!(erased["history_conversations"], 1, "{erased}");
        assert!(erased["history_messages"].as_u64() >= Some(2), "{erased}");
        let (status, _) = api
            .get(&format!("/v1/admin/conversations/{gone}"), Some(&admin))
            .await;
        assert_eq!(status, 404, "the conversation is gone");
        let (status, _) = api
            .get(&format!("/v1/admin/conversations/{kept}"), Some(&admin))
            .await;
        assert_eq!(status, 200, "the other user's stays");
        // Nothing the user wrote is left in any file of the data directory (databases, their
        // write-ahead logs, attachments).
        assert_eq!(
            files_containing(data, "KF20261206"),
            Vec::<std::path::PathBuf>::new()
        );
        let (status, body) = api
            .post(
                erase,
                Some(&admin),
                json!({"site_key": "demo", "user_id": "line:U1", "channel": "api"}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
        // The user writes again: a new visitor and conversation.
        let (status, again) = api
            .post(
                path,
                Some(&token),
                json!({"user_id": "line:U1", "text": "hi again"}),
            )
            .await;
        assert_eq!(status, 200);
        assert_ne!(again["conversation_id"].as_str(), Some(gone.as_str()));

        let (status, body) = api
            .put(
                "/v1/admin/sites/demo/retention",
                Some(&admin),
                json!({"days": 99999}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_input"))
        );
        let (status, body) = api
            .put(
                "/v1/admin/sites/demo/retention",
                Some(&admin),
                json!({"days": 30}),
            )
            .await;
        assert_eq!((status, body["days"].as_u64()), (200, Some(30)));
    });

    // The training history no longer holds the erased conversation; the CLI erases the other.
    let history = kefu_e2e::kefu_ok(data, &["train", "import", "--from-kefu", "--json"]);
    assert!(history.contains("\"unchanged\":1"), "{history}");
    let cli: Value = serde_json::from_str(&kefu_e2e::kefu_ok(
        data,
        &[
            "visitor",
            "erase",
            "--site",
            "demo",
            "--user-id",
            "line:U2",
            "--channel",
            "api",
            "--json",
        ],
    ))
    .expect("JSON");
    assert_eq!(cli["conversations"], 1, "{cli}");
    let audit: Value =
        serde_json::from_str(&kefu_e2e::kefu_ok(data, &["audit", "--json"])).expect("JSON");
    let entries = audit.as_array().expect("entries");
    let has = |actor: &str, action: &str| {
        entries
            .iter()
            .any(|e| e["actor"] == actor && e["action"] == action)
    };
    assert!(has("admin-api", "visitor.erased"), "{audit}");
    assert!(has("admin-api", "training.erased"), "{audit}");
    assert!(has("admin-api", "retention.set"), "{audit}");
    assert!(has("cli", "visitor.erased"), "{audit}");
    assert!(!audit.to_string().contains("KF20261206"), "no erased text");
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (proleptic Gregorian, UTC).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Business hours: outside them, a user who asks for a human — with an agent online — leaves
/// an offline message and is told when agents are back; without hours the agent is called.
#[test]
fn outside_business_hours_a_handoff_takes_an_offline_message() {
    let rt = kefu_e2e::runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    kefu_e2e::add_agent(data, &[], "hu", "小胡", "hours-test-pw", &[]);
    let node = Server::start(data, &[]);
    let admin = kefu_e2e::admin_key(data);
    let out = kefu_e2e::kefu_ok(data, &["site", "set", "demo", "--api-token", "--json"]);
    let set: Value = serde_json::from_str(&out).expect("JSON");
    let token = set["api_token"].as_str().expect("token").to_string();
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 / 86_400)
        .unwrap_or(0);
    // Closed from yesterday to tomorrow (in UTC): open again the day after, at 09:00.
    let holidays: Vec<String> = (-1..=1).map(|d| civil(today + d)).collect();
    let back = format!("{}T09:00:00+00:00", civil(today + 2));

    rt.block_on(async {
        let api = Api::new(&node.base);
        let hours = "/v1/admin/sites/demo/hours";
        let (status, body) = api
            .put(
                hours,
                Some(&admin),
                json!({"time_zone": "Asia/Nowhere", "weekly": "mon-sun 09:00-18:00"}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_input"))
        );
        let (status, body) = api
            .put(
                hours,
                Some(&admin),
                json!({"time_zone": "UTC", "weekly": "mon-sun 09:00-18:00", "holidays": holidays}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["open_now"], false, "{body}");
        assert_eq!(body["reopens_at"].as_str(), Some(back.as_str()), "{body}");

        let agent = api.agent("hu", "hours-test-pw").await;
        let _console = kefu_e2e::chat::Chat::connect(&node.ws_url(), &agent).await;
        let handoff = |user: &'static str| {
            let api = &api;
            let token = &token;
            let admin = &admin;
            async move {
                let (status, body) = api
                    .post(
                        "/v1/channels/api/demo/handoff",
                        Some(token),
                        json!({"user_id": user}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                let conv = body["conversation_id"].as_str().expect("id").to_string();
                let (_, t) = api
                    .get(&format!("/v1/admin/conversations/{conv}"), Some(admin))
                    .await;
                let note = t["messages"]
                    .as_array()
                    .and_then(|m| m.iter().rev().find(|m| m["author"]["kind"] == "system"))
                    .and_then(|m| m["text"].as_str())
                    .unwrap_or_default()
                    .to_string();
                (t["conversation"]["offline"].clone(), note)
            }
        };
        let (offline, note) = handoff("mail:closed@example.com").await;
        assert_eq!(offline, true, "an offline message while closed");
        assert!(note.contains("closed") && note.contains("09:00"), "{note}");

        let (status, body) = api.delete(hours, Some(&admin)).await;
        assert_eq!((status, body["open_now"].as_bool()), (200, Some(true)));
        let (offline, note) = handoff("mail:open@example.com").await;
        assert_eq!(offline, false);
        assert!(note.contains("Connecting you"), "{note}");
    });
}

/// An upload: (status, body).
async fn upload(api: &Api, token: &str, conv: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = api
        .http
        .post(format!(
            "{}/v1/conversations/{conv}/attachments?name={name}",
            api.base
        ))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("upload");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// An upload's refusal: (status, error code).
fn refusal((status, body): (u16, Value)) -> (u16, String) {
    let code = body["error"]["code"].as_str().unwrap_or_default();
    (status, code.to_string())
}

/// A file by its link: (status, content type, content disposition, bytes).
async fn fetch(api: &Api, link: &str) -> (u16, String, String, Vec<u8>) {
    let r = api
        .http
        .get(format!("{}{link}", api.base))
        .send()
        .await
        .expect("fetch");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (ctype, disposition) = (header("content-type"), header("content-disposition"));
    let status = r.status().as_u16();
    (
        status,
        ctype,
        disposition,
        r.bytes().await.expect("body").to_vec(),
    )
}

#[test]
fn visitors_and_agents_send_files_served_by_expiring_links_and_erased_with_them() {
    let rt = kefu_e2e::runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let node = Server::start(data, &[]);
    let out = kefu_e2e::kefu_ok(
        data,
        &["site", "set", "demo", "--attachment-max-mb", "1", "--json"],
    );
    let set: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(set["attachments"]["max_bytes"], 1024 * 1024, "{set}");
    assert_eq!(set["attachments"]["kinds"], "image,pdf,office,text");
    kefu_e2e::add_agent(data, &[], "li", "小李", "agent-pass-2026", &[]);
    let png =
        std::fs::read(kefu_e2e::workspace_root().join("tests/fixtures/attachments/parcel.png"))
            .expect("fixture");

    let (visitor_id, sent_ids) = rt.block_on(async {
        let api = Api::new(&node.base);
        let (status, session) = api
            .post("/v1/visitor/sessions", None, json!({"site_key": "demo"}))
            .await;
        assert_eq!(status, 201, "{session}");
        let token = session["token"].as_str().expect("token").to_string();
        let conv = session["conversation_id"]
            .as_str()
            .expect("conv")
            .to_string();
        let (other, _) = api.visitor("demo").await;

        // Refusals, each with its code; nothing is kept.
        assert_eq!(
            refusal(upload(&api, &other, &conv, "x.png", png.clone()).await),
            (403, "forbidden".to_string())
        );
        assert_eq!(
            refusal(
                upload(
                    &api,
                    &token,
                    &conv,
                    "setup.exe",
                    b"MZ\x90\0\x03\0\0\0\x04\0".to_vec()
                )
                .await
            ),
            (400, "unsupported_file".to_string())
        );
        assert_eq!(
            refusal(upload(&api, &token, &conv, "big.txt", vec![b'a'; 1024 * 1024 + 1]).await),
            (413, "payload_too_large".to_string())
        );
        assert_eq!(
            refusal(upload(&api, &token, &conv, "empty.txt", vec![]).await),
            (400, "invalid_input".to_string())
        );
        let mut broken = png.clone();
        broken.truncate(200);
        assert_eq!(
            refusal(upload(&api, &token, &conv, "broken.png", broken).await),
            (400, "unsupported_file".to_string())
        );

        // A photo of the parcel: sniffed, measured, a thumbnail made.
        let (status, photo) =
            upload(&api, &token, &conv, "%E5%8C%85%E8%A3%B9.png", png.clone()).await;
        assert_eq!(status, 201, "{photo}");
        assert_eq!(photo["name"], "包裹.png");
        assert_eq!(photo["content_type"], "image/png");
        assert_eq!(
            (photo["width"].as_u64(), photo["height"].as_u64()),
            (Some(640), Some(400))
        );
        let id = photo["id"].as_str().expect("id").to_string();

        let mut chat = kefu_e2e::chat::Chat::connect(&node.ws_url(), &token).await;
        chat.subscribe(&conv, 0).await;
        chat.say(&conv, "m-1", "包裹到了，但是破损了").await;
        chat.message_by("bot").await;
        chat.send(
            json!({"type": "send", "conversation_id": conv, "client_msg_id": "m-2",
                         "text": "", "attachments": [id]}),
        )
        .await;
        let mine = chat
            .until("the photo", |v| {
                v["type"] == "message" && v["message"]["client_msg_id"] == "m-2"
            })
            .await["message"]
            .clone();
        let sent = &mine["attachments"][0];
        assert_eq!(sent["id"], id.as_str());
        // The bot cannot read it and offers a person, in the visitor's language.
        let bot = chat.message_by("bot").await;
        assert!(
            bot["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("收到您的文件")),
            "{bot}"
        );
        assert_eq!(bot["quick_replies"], json!(["转人工"]));

        let url = sent["url"].as_str().expect("url");
        let (status, ctype, disposition, bytes) = fetch(&api, url).await;
        assert_eq!((status, ctype.as_str()), (200, "image/png"));
        assert!(disposition.starts_with("inline"), "{disposition}");
        assert_eq!(bytes, png, "the same bytes come back");
        let thumb = sent["thumbnail_url"].as_str().expect("thumbnail");
        let (status, ctype, _, bytes) = fetch(&api, thumb).await;
        assert_eq!((status, ctype.as_str()), (200, "image/jpeg"));
        assert!(bytes.starts_with(&[0xFF, 0xD8]) && bytes.len() < png.len() * 4);
        let forged = url.replace("sig=", "sig=00");
        assert_eq!(fetch(&api, &forged).await.0, 403, "a forged link");
        let (status, ..) = fetch(&api, &format!("/v1/attachments/{id}?exp=1&sig=00")).await;
        assert_eq!(status, 403, "an expired, unsigned link");
        // History brings the file with the message, with working links.
        let (_, page) = api
            .get(&format!("/v1/conversations/{conv}/messages"), Some(&token))
            .await;
        let again = page["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["client_msg_id"] == "m-2"))
            .expect("in the history");
        let relink = again["attachments"][0]["url"].as_str().expect("url");
        assert_eq!(fetch(&api, relink).await.0, 200);
        // Another visitor cannot read this conversation (where the links are), and one file's
        // signature does not open another file.
        let (status, _) = api
            .get(&format!("/v1/conversations/{conv}/messages"), Some(&other))
            .await;
        assert_eq!(status, 403);
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let (status, ..) = fetch(
            &api,
            &format!("/v1/attachments/att_0123456789abcdef01234567?{query}"),
        )
        .await;
        assert_eq!(status, 403, "a signature is for one file");
        // One upload goes out once.
        chat.send(
            json!({"type": "send", "conversation_id": conv, "client_msg_id": "m-3",
                         "text": "again", "attachments": [id]}),
        )
        .await;
        assert_eq!(chat.error_code().await, "invalid_input");

        // An agent claims it and sends a PDF back (REST), which the visitor sees live.
        let agent = api.agent("li", "agent-pass-2026").await;
        assert_eq!(
            refusal(
                upload(
                    &api,
                    &agent,
                    &conv,
                    "label.pdf",
                    b"%PDF-1.4\n%\xe2\xe3\n".to_vec()
                )
                .await
            ),
            (409, "not_owner".to_string()),
            "claim first"
        );
        let (status, _) = api.agent_action(&agent, &conv, "claim").await;
        assert_eq!(status, 200);
        let (status, pdf) = upload(
            &api,
            &agent,
            &conv,
            "label.pdf",
            b"%PDF-1.4\n%\xe2\xe3\n".to_vec(),
        )
        .await;
        assert_eq!(status, 201, "{pdf}");
        assert_eq!(pdf["content_type"], "application/pdf");
        assert!(pdf["thumbnail_url"].is_null());
        let (status, body) = api
            .post(
                &format!("/v1/agent/conversations/{conv}/messages"),
                Some(&agent),
                json!({"text": "退货面单，请打印 / your return label", "attachments": [pdf["id"]]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let from_agent = chat.message_by("agent").await;
        let label = &from_agent["attachments"][0];
        assert_eq!(label["name"], "label.pdf");
        let (status, ctype, disposition, _) =
            fetch(&api, label["url"].as_str().expect("url")).await;
        assert_eq!((status, ctype.as_str()), (200, "application/pdf"));
        assert!(
            disposition.starts_with("attachment"),
            "downloaded, not shown: {disposition}"
        );
        chat.close().await;
        let visitor_id = session["visitor_id"].as_str().expect("visitor").to_string();
        (
            visitor_id,
            vec![
                (id, url.to_string()),
                (
                    pdf["id"].as_str().expect("id").to_string(),
                    label["url"].as_str().expect("url").to_string(),
                ),
            ],
        )
    });

    // Erasing the visitor deletes the files too.
    let files = data.join("attachments");
    assert!(files.join(&sent_ids[0].0).exists());
    let out = kefu_e2e::kefu_ok(
        data,
        &[
            "visitor",
            "erase",
            "--site",
            "demo",
            "--visitor-id",
            &visitor_id,
            "--json",
        ],
    );
    let erased: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(erased["attachments"], 2, "{erased}");
    for (id, url) in &sent_ids {
        assert!(!files.join(id).exists(), "{id} deleted");
        assert!(!files.join(format!("{id}.thumb")).exists());
        let status = rt.block_on(async { fetch(&Api::new(&node.base), url).await.0 });
        assert_eq!(status, 404, "{url}");
    }
    for marker in ["包裹到了，但是破损了", "退货面单"] {
        assert_eq!(
            files_containing(data, marker),
            Vec::<std::path::PathBuf>::new(),
            "{marker}"
        );
    }
}

/// The files under `dir` whose bytes contain `marker`.
fn files_containing(dir: &std::path::Path, marker: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|b| b.windows(marker.len()).any(|w| w == marker.as_bytes()))
            {
                found.push(path);
            }
        }
    }
    found
}

/// A stand-in for an S3-compatible bucket, speaking the part of the S3 REST API a client needs
/// for single objects (path-style `PUT`/`GET`/`DELETE /{bucket}/{key}`, `ETag` and
/// `Last-Modified` on reads), refusing requests not signed with AWS Signature V4 by the expected
/// access key. (It checks the signature's form and key id, not its HMAC.)
#[derive(Default)]
struct Bucket {
    objects: std::collections::HashMap<String, Vec<u8>>,
    unsigned: usize,
}

const S3_KEY_ID: &str = "kefu-test-key";

async fn s3(
    State(bucket): State<Arc<Mutex<Bucket>>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let signed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.starts_with(&format!("AWS4-HMAC-SHA256 Credential={S3_KEY_ID}/"))
                && a.contains("SignedHeaders=")
                && a.contains("Signature=")
        });
    let mut b = bucket.lock().expect("lock");
    if !signed {
        b.unsigned += 1;
        return (
            StatusCode::FORBIDDEN,
            "<Error><Code>AccessDenied</Code></Error>",
        )
            .into_response();
    }
    let Some(key) = uri.path().strip_prefix("/kefu-files/") else {
        return (
            StatusCode::NOT_FOUND,
            "<Error><Code>NoSuchBucket</Code></Error>",
        )
            .into_response();
    };
    let key = key.to_string();
    let etag = |bytes: &[u8]| format!("\"{}\"", hex::encode(&Sha1::digest(bytes)[..8]));
    match method.as_str() {
        "PUT" => {
            let tag = etag(&body);
            b.objects.insert(key, body.to_vec());
            (StatusCode::OK, [("etag", tag)]).into_response()
        }
        "GET" | "HEAD" => match b.objects.get(&key) {
            Some(bytes) => (
                StatusCode::OK,
                [
                    ("etag", etag(bytes)),
                    ("last-modified", "Sun, 06 Dec 2026 09:00:00 GMT".to_string()),
                    ("content-type", "application/octet-stream".to_string()),
                ],
                bytes.clone(),
            )
                .into_response(),
            None => (
                StatusCode::NOT_FOUND,
                "<Error><Code>NoSuchKey</Code></Error>",
            )
                .into_response(),
        },
        "DELETE" => {
            b.objects.remove(&key);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

#[test]
fn attachments_can_live_in_an_s3_compatible_bucket() {
    let rt = kefu_e2e::runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let bucket = Arc::new(Mutex::new(Bucket::default()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let app = axum::Router::new()
        .fallback(s3)
        .with_state(Arc::clone(&bucket));
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let flags = [
        "--attachments-s3-bucket",
        "kefu-files",
        "--attachments-s3-endpoint",
        endpoint.as_str(),
        "--attachments-s3-access-key-id",
        S3_KEY_ID,
        "--attachments-s3-secret-access-key",
        "kefu-test-secret",
    ];
    let node = Server::start(data, &flags);
    let png =
        std::fs::read(kefu_e2e::workspace_root().join("tests/fixtures/attachments/parcel.png"))
            .expect("fixture");

    let (visitor_id, id, url) = rt.block_on(async {
        let api = Api::new(&node.base);
        let (_, session) = api
            .post("/v1/visitor/sessions", None, json!({"site_key": "demo"}))
            .await;
        let token = session["token"].as_str().expect("token");
        let conv = session["conversation_id"].as_str().expect("conv");
        let (status, photo) = upload(&api, token, conv, "parcel.png", png.clone()).await;
        assert_eq!(status, 201, "{photo}");
        let id = photo["id"].as_str().expect("id").to_string();
        let (status, ctype, _, bytes) = fetch(&api, photo["url"].as_str().expect("url")).await;
        assert_eq!((status, ctype.as_str()), (200, "image/png"));
        assert_eq!(bytes, png, "read back from the bucket");
        let (status, _, _, _) = fetch(&api, photo["thumbnail_url"].as_str().expect("thumb")).await;
        assert_eq!(status, 200);
        let visitor = session["visitor_id"].as_str().expect("visitor").to_string();
        (visitor, id, photo["url"].as_str().expect("url").to_string())
    });
    {
        let b = bucket.lock().expect("lock");
        assert_eq!(b.objects.get(&format!("attachments/{id}")), Some(&png));
        assert!(b.objects.contains_key(&format!("attachments/{id}.thumb")));
        assert_eq!(b.unsigned, 0, "every request was signed");
    }
    assert!(
        !data.join("attachments").exists(),
        "nothing on the local disk"
    );

    // The CLI erases with the same settings: the objects go too.
    let mut args = vec![
        "visitor",
        "erase",
        "--site",
        "demo",
        "--visitor-id",
        &visitor_id,
    ];
    args.extend(flags);
    kefu_e2e::kefu_ok(data, &args);
    assert!(
        bucket.lock().expect("lock").objects.is_empty(),
        "deleted from the bucket"
    );
    let status = rt.block_on(async { fetch(&Api::new(&node.base), &url).await.0 });
    assert_eq!(status, 404);
}
