//! Replay after `subscribe`: the messages after the client's last seq, page by page, and the seq
//! bookkeeping that keeps a live message from being sent twice when replay and live overlap.

use axum::extract::ws::{Message as WsMessage, Utf8Bytes};
use futures_util::SinkExt;
use kefu_protocol::ServerFrame;

use super::{send, Session, REPLAY_PAGE};
use crate::conversation::Outbound;
use crate::http::error::ApiError;

impl Session {
    /// Sends a live item unless the replay already sent that seq.
    pub(super) async fn forward<S>(&mut self, sink: &mut S, item: Outbound) -> Result<(), ()>
    where
        S: SinkExt<WsMessage> + Unpin,
    {
        let text = match item {
            Outbound::Message {
                conversation_id,
                seq,
                visitor_json,
                agent_json,
            } => {
                let last = self
                    .sent_seq
                    .entry(conversation_id.to_string())
                    .or_insert(0);
                if seq <= *last {
                    return Ok(());
                }
                *last = seq;
                if self.agent.is_some() {
                    agent_json
                } else {
                    visitor_json
                }
            }
            Outbound::Frame(f) => f,
        };
        sink.send(WsMessage::Text(Utf8Bytes::from(&*text)))
            .await
            .map_err(|_| ())
    }

    /// Sends the replays of subscriptions made by the last frame, oldest first.
    pub(super) async fn flush_replays<S>(
        &mut self,
        sink: &mut S,
    ) -> Result<(), Option<(u16, &'static str)>>
    where
        S: SinkExt<WsMessage> + Unpin,
    {
        let pending = std::mem::take(&mut self.pending_replays);
        let Some(who) = self.principal.clone() else {
            return Ok(());
        };
        for (conv, after) in pending {
            let mut after = after;
            loop {
                let page = match self
                    .conversations
                    .messages_after(&who, &conv, after, REPLAY_PAGE)
                    .await
                {
                    Ok((_, p)) => p,
                    Err(e) => {
                        let frame = ApiError::from(e).to_frame(None);
                        send(sink, &frame).await.map_err(|_| None)?;
                        break;
                    }
                };
                let with_trace = self.agent.is_some();
                for m in &page {
                    after = m.seq;
                    let frame = ServerFrame::Message {
                        message: m.to_wire(with_trace),
                    };
                    send(sink, &frame).await.map_err(|_| None)?;
                }
                let last = self.sent_seq.entry(conv.clone()).or_insert(0);
                *last = (*last).max(after);
                if page.len() < REPLAY_PAGE as usize {
                    break;
                }
            }
        }
        Ok(())
    }
}
