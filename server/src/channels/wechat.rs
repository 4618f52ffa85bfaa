//! The WeChat Official Account (公众号) protocol, server side, plain mode: the signature over the
//! account's token, the timestamp and the nonce; the XML messages WeChat posts and the passive
//! XML reply; and the customer-service message API (`/cgi-bin/message/custom/send`) for replies
//! that come after WeChat's 5-second window, with the access token cached per app.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::conversation::AttemptFailure;

/// The public API's address (`--wechat-api-base` points tests at a local stand-in).
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";
/// Longest text sent in one WeChat message, in bytes (WeChat's limit is 2048).
const MAX_REPLY_BYTES: usize = 2000;
/// An access token is fetched again this long before WeChat says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// Time allowed to one call of WeChat's API.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A site's WeChat account as stored (`kefu site set KEY --wechat-token …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WechatSettings {
    /// The token entered in the account's server settings (3-32 letters and digits).
    pub token: String,
    /// AppID and AppSecret: needed for replies after the passive window.
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub app_secret: Option<String>,
}

/// WeChat's signature: hex SHA-1 of the token, timestamp and nonce sorted and joined.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// True when `given` is the signature of this request (compared in constant time).
pub fn signature_matches(token: &str, timestamp: &str, nonce: &str, given: &str) -> bool {
    let expected = signature(token, timestamp, nonce);
    expected
        .as_bytes()
        .ct_eq(given.to_ascii_lowercase().as_bytes())
        .into()
}

/// One message WeChat posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The official account (`ToUserName`).
    pub account: String,
    /// The user's openid (`FromUserName`).
    pub user: String,
    /// `text`, `image`, `voice`, `event`, …
    pub kind: String,
    pub content: Option<String>,
    pub msg_id: Option<String>,
    /// For `event`: `subscribe`, `unsubscribe`, `CLICK`, …
    pub event: Option<String>,
    pub create_time: Option<i64>,
}

/// Reads WeChat's XML (no DTD is accepted, so no entity tricks).
pub fn parse_message(xml: &str) -> Result<Incoming, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "xml" {
        return Err("the root element is not <xml>".into());
    }
    let field = |name: &str| {
        root.children()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .map(|n| n.text().unwrap_or("").to_string())
    };
    let required = |name: &str| {
        field(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("<{name}> is missing"))
    };
    Ok(Incoming {
        account: required("ToUserName")?,
        user: required("FromUserName")?,
        kind: required("MsgType")?,
        content: field("Content"),
        msg_id: field("MsgId").filter(|v| !v.trim().is_empty()),
        event: field("Event"),
        create_time: field("CreateTime").and_then(|t| t.trim().parse().ok()),
    })
}

/// `text` cut to what one WeChat message holds.
pub fn fit(text: &str) -> String {
    if text.len() <= MAX_REPLY_BYTES {
        return text.to_string();
    }
    let mut end = MAX_REPLY_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Text inside CDATA: a `]]>` in it is split across two sections.
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// The passive reply to `to` (the user) from `from` (the account).
pub fn text_reply(to: &str, from: &str, text: &str, now_secs: i64) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName>\
         <CreateTime>{now_secs}</CreateTime><MsgType>{}</MsgType><Content>{}</Content></xml>",
        cdata(to),
        cdata(from),
        cdata("text"),
        cdata(&fit(text)),
    )
}

/// WeChat's API: access tokens (cached per app) and customer-service text messages.
pub struct WechatApi {
    base: String,
    http: reqwest::Client,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// WeChat's error codes that mean the access token is no longer valid.
const TOKEN_INVALID: [i64; 3] = [40001, 40014, 42001];
/// Error codes that no retry can fix: the user cannot be written to (left, or silent for
/// 48 hours), or the app's credentials are wrong.
const PERMANENT: [i64; 6] = [40003, 45015, 45047, 48001, 40013, 40125];

impl WechatApi {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("kefu/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_string(),
            http,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `text` to `user` as a customer-service message; an access token WeChat no longer
    /// accepts (another process fetched a new one) is fetched again once.
    pub async fn send_text(
        &self,
        app_id: &str,
        app_secret: &str,
        user: &str,
        text: &str,
    ) -> Result<(), AttemptFailure> {
        let body = json!({"touser": user, "msgtype": "text", "text": {"content": fit(text)}});
        for fresh in [false, true] {
            let token = self.access_token(app_id, app_secret, fresh).await?;
            let url = format!("{}/cgi-bin/message/custom/send", self.base);
            let answer = self
                .call(
                    self.http
                        .post(url)
                        .query(&[("access_token", &token)])
                        .json(&body),
                )
                .await?;
            match errcode(&answer) {
                0 => return Ok(()),
                code if TOKEN_INVALID.contains(&code) && !fresh => self.forget_token(app_id),
                code => return Err(api_failure("custom/send", code, &answer)),
            }
        }
        Err(AttemptFailure::transient(
            "the access token was refused twice",
        ))
    }

    async fn access_token(
        &self,
        app_id: &str,
        app_secret: &str,
        fresh: bool,
    ) -> Result<String, AttemptFailure> {
        if !fresh {
            let cached = self.lock_tokens().get(app_id).cloned();
            if let Some((token, until)) = cached {
                if Instant::now() < until {
                    return Ok(token);
                }
            }
        }
        let url = format!("{}/cgi-bin/token", self.base);
        let answer = self
            .call(self.http.get(url).query(&[
                ("grant_type", "client_credential"),
                ("appid", app_id),
                ("secret", app_secret),
            ]))
            .await?;
        let Some(token) = answer["access_token"].as_str() else {
            return Err(api_failure("token", errcode(&answer), &answer));
        };
        let lifetime = Duration::from_secs(answer["expires_in"].as_u64().unwrap_or(7200));
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        self.lock_tokens()
            .insert(app_id.to_string(), (token.to_string(), until));
        Ok(token.to_string())
    }

    fn forget_token(&self, app_id: &str) {
        self.lock_tokens().remove(app_id);
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, AttemptFailure> {
        let response = request
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| AttemptFailure::transient(format!("WeChat API: {e}")))?;
        response
            .json()
            .await
            .map_err(|e| AttemptFailure::transient(format!("WeChat API answer: {e}")))
    }
}

fn errcode(answer: &Value) -> i64 {
    answer["errcode"].as_i64().unwrap_or(0)
}

fn api_failure(call: &str, code: i64, answer: &Value) -> AttemptFailure {
    let message = format!(
        "WeChat {call}: errcode {code} {}",
        answer["errmsg"].as_str().unwrap_or("")
    );
    if PERMANENT.contains(&code) {
        AttemptFailure::permanent(message)
    } else {
        AttemptFailure::transient(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_sha1_over_the_sorted_parts() {
        // sorted: "1409304348" < "test" < "xxxxxx"
        let expected = hex::encode(Sha1::digest(b"1409304348testxxxxxx"));
        assert_eq!(signature("test", "1409304348", "xxxxxx"), expected);
        assert!(signature_matches("test", "1409304348", "xxxxxx", &expected));
        assert!(signature_matches(
            "test",
            "1409304348",
            "xxxxxx",
            &expected.to_uppercase()
        ));
        assert!(!signature_matches(
            "test",
            "1409304349",
            "xxxxxx",
            &expected
        ));
        assert!(!signature_matches("test", "1409304348", "xxxxxx", ""));
    }

    #[test]
    fn messages_are_read_as_wechat_sends_them() {
        let xml = "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName>\
            <FromUserName><![CDATA[oUser1]]></FromUserName><CreateTime>1348831860</CreateTime>\
            <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[多久发货？]]></Content>\
            <MsgId>1234567890123456</MsgId></xml>";
        let m = parse_message(xml).expect("parsed");
        assert_eq!(
            (m.account.as_str(), m.user.as_str(), m.kind.as_str()),
            ("gh_shop", "oUser1", "text")
        );
        assert_eq!(m.content.as_deref(), Some("多久发货？"));
        assert_eq!(m.msg_id.as_deref(), Some("1234567890123456"));
        assert_eq!(m.create_time, Some(1348831860));
    }

    #[test]
    fn bad_xml_is_refused_without_expanding_entities() {
        assert!(parse_message("not xml").is_err());
        assert!(parse_message("<root><ToUserName>a</ToUserName></root>").is_err());
        assert!(
            parse_message("<xml><ToUserName>a</ToUserName><MsgType>text</MsgType></xml>").is_err(),
            "no FromUserName"
        );
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY a \"aaaaaaaa\">]>\
            <xml><ToUserName>&a;</ToUserName><FromUserName>u</FromUserName><MsgType>text</MsgType></xml>";
        assert!(parse_message(bomb).is_err(), "a DTD is refused");
    }

    #[test]
    fn replies_escape_cdata_and_fit_one_message() {
        let xml = text_reply("oUser1", "gh_shop", "a ]]> b", 1);
        let m = parse_message(&xml).expect("our reply is valid XML");
        assert_eq!(m.content.as_deref(), Some("a ]]> b"));
        assert_eq!((m.user.as_str(), m.account.as_str()), ("gh_shop", "oUser1"));
        let long = "好".repeat(1000);
        let cut = fit(&long);
        assert!(
            cut.len() <= MAX_REPLY_BYTES && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert_eq!(fit("short"), "short");
    }
}
