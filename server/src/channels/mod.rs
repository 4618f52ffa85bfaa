//! Channels besides the web widget. An inbound message from a channel user becomes a visitor
//! message of that user's conversation (the visitor found or created by the channel's user id),
//! so triage, handoff, the console and the webhooks work exactly as for the widget. Replies go
//! back out through the channel: the API channel's as `message.created` event webhooks, WeChat's
//! passively within its 5-second window or else through the outbox (`ChannelSender`).

pub mod wechat;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_protocol::{ConversationState, MAX_CLIENT_MSG_ID_BYTES, MAX_TEXT_CHARS};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::accounts::credentials::{new_token, token_hash, AuthError};
use crate::accounts::{AccountError, Accounts, Principal, MAX_NAME_CHARS, MAX_USER_ID_BYTES};
use crate::conversation::{AttemptFailure, ChannelSender, ConversationError, Conversations};
use crate::store::{Channel, ChannelReply, Conversation, Store, StoreError, StoredMessage};
use wechat::{WechatApi, WechatSettings};

/// How long a WeChat request waits for the bot's reply to answer passively (WeChat gives up
/// after 5 s and retries; a later reply goes out as a customer-service message).
pub const PASSIVE_WAIT: Duration = Duration::from_millis(4_000);
/// How often the waiting request looks for the reply.
const PASSIVE_POLL: Duration = Duration::from_millis(100);
/// The answer WeChat expects when there is no passive reply.
pub const WECHAT_NO_REPLY: &str = "success";
/// The passive reply to what the bot cannot read (images, voice, …).
const TEXT_ONLY: &str =
    "目前只能处理文字消息，请用文字描述您的问题。\nI can only read text messages for now — please type your question.";

/// Why a channel request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("no site `{0}`")]
    UnknownSite(String),
    #[error("the {0} channel is not set up for this site")]
    NotSetUp(&'static str),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Invalid(String),
    /// A message text or id the chat protocol refuses (blank, too long).
    #[error("{}", .0.message)]
    Message(kefu_protocol::FrameError),
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] AuthError),
}

type Result<T> = std::result::Result<T, ChannelError>;

/// The API channel's settings as stored: only the token's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ApiSettings {
    token_sha256: String,
}

/// A message from a channel user.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub site_key: &'a str,
    pub channel: Channel,
    /// The channel's id of the user.
    pub user: &'a str,
    pub name: Option<&'a str>,
    /// The channel's id of the message (dedupes retries); none: every post is a new message.
    pub message_id: Option<&'a str>,
    pub text: &'a str,
}

/// A committed inbound message and its conversation.
#[derive(Debug, Clone)]
pub struct Received {
    pub conversation: Conversation,
    pub message: StoredMessage,
}

/// A site's channel settings (for the CLI, and read by `Channels`).
#[derive(Clone)]
pub struct ChannelSettings {
    store: Store,
    accounts: Accounts,
}

/// The channel service, for the HTTP layer and the outbox's worker.
pub struct Channels {
    settings: ChannelSettings,
    store: Store,
    accounts: Accounts,
    conversations: Arc<Conversations>,
    wechat: WechatApi,
}

impl ChannelSettings {
    pub fn new(store: Store, accounts: Accounts) -> Self {
        Self { store, accounts }
    }

    /// Issues a new API channel token for a site (shown once; the previous one stops working).
    pub async fn issue_api_token(&self, site_key: &str) -> Result<String> {
        self.require_site(site_key).await?;
        let token = new_token("kefu_ch_")?;
        let settings = serde_json::to_string(&ApiSettings {
            token_sha256: token_hash(&token),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .set_site_channel(site_key, Channel::Api, Some(&settings))
            .await?;
        Ok(token)
    }

    /// Sets up (or changes) a site's WeChat account.
    pub async fn set_wechat(&self, site_key: &str, settings: WechatSettings) -> Result<()> {
        self.require_site(site_key).await?;
        let token_ok = (3..=32).contains(&settings.token.len())
            && settings.token.chars().all(|c| c.is_ascii_alphanumeric());
        if !token_ok {
            return Err(ChannelError::Invalid(
                "the WeChat token is 3-32 letters and digits".into(),
            ));
        }
        if settings.app_id.is_some() != settings.app_secret.is_some() {
            return Err(ChannelError::Invalid(
                "give the WeChat app id and app secret together".into(),
            ));
        }
        let json =
            serde_json::to_string(&settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .set_site_channel(site_key, Channel::Wechat, Some(&json))
            .await?;
        Ok(())
    }

    /// Turns a channel off for a site.
    pub async fn remove(&self, site_key: &str, channel: Channel) -> Result<()> {
        self.require_site(site_key).await?;
        Ok(self.store.set_site_channel(site_key, channel, None).await?)
    }

    /// The channels a site has set up.
    pub async fn of_site(&self, site_key: &str) -> Result<Vec<Channel>> {
        Ok(self.store.site_channels(site_key).await?)
    }

    async fn require_site(&self, site_key: &str) -> Result<()> {
        match self.accounts.site(site_key).await? {
            Some(_) => Ok(()),
            None => Err(ChannelError::UnknownSite(site_key.to_string())),
        }
    }

    /// A site's settings for `channel`: `unknown_site`, or `not_found` when it is not set up.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        site_key: &str,
        channel: Channel,
    ) -> Result<T> {
        let Some(json) = self.store.site_channel(site_key, channel).await? else {
            self.require_site(site_key).await?;
            return Err(ChannelError::NotSetUp(channel.as_str()));
        };
        serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("{} settings: {e}", channel.as_str())).into())
    }
}

impl Channels {
    pub fn new(
        store: Store,
        accounts: Accounts,
        conversations: Arc<Conversations>,
        wechat_api_base: &str,
    ) -> Arc<Self> {
        Arc::new(Self {
            settings: ChannelSettings::new(store.clone(), accounts.clone()),
            store,
            accounts,
            conversations,
            wechat: WechatApi::new(wechat_api_base),
        })
    }

    /// Checks the API channel's bearer token for a site.
    pub async fn check_api_token(&self, site_key: &str, token: Option<&str>) -> Result<()> {
        let stored = self
            .settings
            .get::<ApiSettings>(site_key, Channel::Api)
            .await?;
        let token = token.ok_or(ChannelError::Unauthorized(
            "send the site's API channel token as a bearer token",
        ))?;
        let same: bool = token_hash(token)
            .as_bytes()
            .ct_eq(stored.token_sha256.as_bytes())
            .into();
        if same {
            Ok(())
        } else {
            Err(ChannelError::Unauthorized(
                "this is not the site's API channel token",
            ))
        }
    }

    /// Commits a channel user's message in their open conversation (a new one after the last
    /// was resolved); the bot answers as it does on the web.
    pub async fn receive(&self, m: Inbound<'_>) -> Result<Received> {
        check_user(m.user)?;
        if m.name.is_some_and(|n| n.chars().count() > MAX_NAME_CHARS) {
            return Err(ChannelError::Invalid(format!(
                "name exceeds {MAX_NAME_CHARS} characters"
            )));
        }
        let client_msg_id = match m.message_id {
            Some(id) => format!("{}:{id}", m.channel.as_str()),
            None => crate::store::new_id(&format!("{}:", m.channel.as_str())),
        };
        kefu_protocol::validate_message(&client_msg_id, m.text).map_err(ChannelError::Message)?;
        let (who, conversation) = self.open_for(m.site_key, m.channel, m.user, m.name).await?;
        let message = self
            .conversations
            .visitor_send(&who, &conversation.id, &client_msg_id, m.text, &[])
            .await?;
        Ok(Received {
            conversation,
            message,
        })
    }

    /// A channel user asks for a human (the API channel's handoff button).
    pub async fn request_human(
        &self,
        site_key: &str,
        channel: Channel,
        user: &str,
    ) -> Result<Conversation> {
        check_user(user)?;
        let (who, conversation) = self.open_for(site_key, channel, user, None).await?;
        self.conversations
            .request_human(&who, &conversation.id)
            .await?;
        Ok(conversation)
    }

    /// The channel user's visitor (created on first contact) as a principal, and their open
    /// conversation.
    async fn open_for(
        &self,
        site_key: &str,
        channel: Channel,
        user: &str,
        name: Option<&str>,
    ) -> Result<(Principal, Conversation)> {
        let visitor = self
            .store
            .channel_visitor(site_key, channel, user, name)
            .await?;
        let conversation = self.accounts.open_conversation(&visitor).await?;
        let who = Principal::Visitor {
            visitor_id: visitor.id,
            site_key: site_key.to_string(),
        };
        Ok((who, conversation))
    }

    // ----- WeChat -----

    /// WeChat's URL verification (`GET`): `echostr` back when the signature is the account's.
    pub async fn wechat_verify(&self, site_key: &str, q: &WechatQuery) -> Result<String> {
        self.wechat_check(site_key, q).await?;
        q.echostr
            .clone()
            .ok_or_else(|| ChannelError::Invalid("echostr is missing".into()))
    }

    /// A message WeChat posted (`POST`): the passive XML reply, or `success` when the bot does
    /// not answer within `PASSIVE_WAIT` (its reply then goes out through the outbox).
    pub async fn wechat_message(
        &self,
        site_key: &str,
        q: &WechatQuery,
        xml: &str,
    ) -> Result<String> {
        let started = Instant::now();
        self.wechat_check(site_key, q).await?;
        let m = wechat::parse_message(xml).map_err(|e| {
            if q.encrypt_type.as_deref() == Some("aes") {
                ChannelError::Invalid(format!(
                    "{e}: the encrypted (safe) mode is not supported; set the account's message \
                     encryption to plain (明文模式) or compatible (兼容模式)"
                ))
            } else {
                ChannelError::Invalid(e)
            }
        })?;
        let now = crate::store::now_ms() / 1000;
        if m.kind != "text" {
            // Events (subscribe, menu clicks) need no answer; media is not read.
            return Ok(if m.kind == "event" {
                WECHAT_NO_REPLY.to_string()
            } else {
                wechat::text_reply(&m.user, &m.account, TEXT_ONLY, now)
            });
        }
        let text: String = m
            .content
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(MAX_TEXT_CHARS)
            .collect();
        if kefu_protocol::is_blank(&text) {
            return Ok(WECHAT_NO_REPLY.to_string());
        }
        // WeChat retries a message it got no answer for with the same MsgId.
        let message_id = m
            .msg_id
            .clone()
            .or_else(|| m.create_time.map(|t| format!("{}-{t}", m.user)))
            .map(|id| {
                id.chars()
                    .take(MAX_CLIENT_MSG_ID_BYTES - 8)
                    .collect::<String>()
            });
        let received = self
            .receive(Inbound {
                site_key,
                channel: Channel::Wechat,
                user: &m.user,
                name: None,
                message_id: message_id.as_deref(),
                text: &text,
            })
            .await?;
        // A repeated MsgId (WeChat lost our answer) is not answered again: its reply was taken
        // by the first request or goes out as a customer-service message.
        let fresh = received.message.seq > received.conversation.last_seq;
        if !fresh || received.conversation.state != ConversationState::Bot {
            return Ok(WECHAT_NO_REPLY.to_string());
        }
        while started.elapsed() < PASSIVE_WAIT {
            let reply = self
                .store
                .take_queued_reply(&received.conversation.id, received.message.seq)
                .await?;
            if let Some(reply) = reply {
                return Ok(wechat::text_reply(&m.user, &m.account, &reply.text, now));
            }
            tokio::time::sleep(PASSIVE_POLL).await;
        }
        Ok(WECHAT_NO_REPLY.to_string())
    }

    async fn wechat_check(&self, site_key: &str, q: &WechatQuery) -> Result<WechatSettings> {
        let settings = self
            .settings
            .get::<WechatSettings>(site_key, Channel::Wechat)
            .await?;
        let signed = wechat::signature_matches(
            &settings.token,
            q.timestamp.as_deref().unwrap_or(""),
            q.nonce.as_deref().unwrap_or(""),
            q.signature.as_deref().unwrap_or(""),
        );
        if signed {
            Ok(settings)
        } else {
            Err(ChannelError::Unauthorized(
                "the signature does not match this account's token",
            ))
        }
    }
}

/// A channel's user id: 1-`MAX_USER_ID_BYTES` bytes.
fn check_user(user: &str) -> Result<()> {
    if user.is_empty() || user.len() > MAX_USER_ID_BYTES {
        return Err(ChannelError::Invalid(format!(
            "user_id must be 1-{MAX_USER_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

/// WeChat's query parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WechatQuery {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    /// URL verification only.
    pub echostr: Option<String>,
    /// Sent with messages; the body's `FromUserName` is what counts.
    pub openid: Option<String>,
    /// `aes` (encrypted mode) is refused: set the account to plain mode.
    pub encrypt_type: Option<String>,
    pub msg_signature: Option<String>,
}

#[async_trait::async_trait]
impl ChannelSender for Channels {
    async fn send(
        &self,
        channel: Channel,
        reply: &ChannelReply,
    ) -> std::result::Result<(), AttemptFailure> {
        if channel != Channel::Wechat {
            return Err(AttemptFailure::permanent(format!(
                "the {} channel takes no queued replies",
                channel.as_str()
            )));
        }
        let settings = self
            .settings
            .get::<WechatSettings>(&reply.site_key, Channel::Wechat)
            .await
            .map_err(|e| match e {
                ChannelError::Store(StoreError::Unavailable(_)) => {
                    AttemptFailure::transient(e.to_string())
                }
                other => AttemptFailure::permanent(other.to_string()),
            })?;
        let (Some(app_id), Some(secret)) = (&settings.app_id, &settings.app_secret) else {
            return Err(AttemptFailure::permanent(
                "no WeChat app id and secret: only passive replies can be sent",
            ));
        };
        self.wechat
            .send_text(app_id, secret, &reply.user, &reply.text)
            .await
    }
}
