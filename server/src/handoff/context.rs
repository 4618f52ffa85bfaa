//! The agent's context pack: a conversation's console summary and its whole transcript with
//! route traces, as the console and the agent/admin APIs show it.

use kefu_protocol::{ConversationSummary, Message};

use super::Result;
use crate::store::{rfc3339, ConversationListing, Store};

/// Most messages a transcript returns.
pub const MAX_TRANSCRIPT_MESSAGES: usize = 5000;
const PAGE: u32 = 500;

/// A conversation's summary and transcript (with route traces).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Transcript {
    pub conversation: ConversationSummary,
    pub messages: Vec<Message>,
    /// The visitor's rating (CSAT), once given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<crate::store::Rating>,
}

/// The transcript of one conversation; `None` if there is no such conversation.
pub async fn transcript(store: &Store, conversation_id: &str) -> Result<Option<Transcript>> {
    let Some(listing) = store.conversation_listing_one(conversation_id).await? else {
        return Ok(None);
    };
    let mut messages: Vec<Message> = Vec::new();
    let mut after = 0;
    loop {
        let page = store.messages_after(conversation_id, after, PAGE).await?;
        let done = page.len() < PAGE as usize;
        for m in &page {
            after = m.seq;
            messages.push(m.to_wire(true));
        }
        if done || messages.len() >= MAX_TRANSCRIPT_MESSAGES {
            break;
        }
    }
    Ok(Some(Transcript {
        conversation: summary_of(listing),
        messages,
        rating: store.rating(conversation_id).await?,
    }))
}

/// The console's one-line view of a conversation.
pub fn summary_of(l: ConversationListing) -> ConversationSummary {
    let c = l.conversation;
    ConversationSummary {
        id: c.id,
        site_key: c.site_key,
        visitor_id: c.visitor_id,
        visitor_name: l.visitor_name,
        state: c.state,
        agent: l.agent_name,
        offline: c.offline,
        last_seq: c.last_seq,
        last_text: l.last_text.map(|t| t.chars().take(120).collect()),
        updated_at: rfc3339(c.updated_at),
    }
}
