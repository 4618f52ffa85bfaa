//! The frames of a session: decoding (stable error codes for bad frames), the `hello` gate, and
//! subscribe / send / typing / read / request_human / history for a signed-in client.

use kefu_protocol::{decode_client_frame, Author, AuthorKind, ClientFrame, ErrorCode, ServerFrame};
use tokio::sync::mpsc;

use super::{client_msg_id_of, error_frame, Next, Session};
use crate::accounts::Principal;
use crate::conversation::{ConversationError, Outbound};
use crate::http::error::ApiError;

impl Session {
    pub(super) async fn handle_text(
        &mut self,
        text: &str,
        out: &mut Vec<ServerFrame>,
        rx: &mut Option<mpsc::Receiver<Outbound>>,
    ) -> Next {
        let frame = match decode_client_frame(text) {
            Ok(f) => f,
            Err(e) => {
                metrics::counter!("kefu_ws_frames_rejected_total", "code" => e.code.as_str())
                    .increment(1);
                out.push(e.to_frame(client_msg_id_of(text)));
                return Next::Continue;
            }
        };
        let Some(principal) = self.principal.clone() else {
            return match frame {
                ClientFrame::Hello { token, .. } => self.hello(&token, out, rx).await,
                ClientFrame::Ping {} => {
                    out.push(ServerFrame::Pong);
                    Next::Continue
                }
                _ => {
                    out.push(error_frame(
                        ErrorCode::Unauthorized,
                        "say hello with a token first",
                        None,
                    ));
                    Next::Continue
                }
            };
        };
        let result = self.dispatch(&principal, frame, out).await;
        if let Err((e, id)) = result {
            metrics::counter!("kefu_ws_frames_rejected_total", "code" => e.code.as_str())
                .increment(1);
            out.push(e.to_frame(id));
        }
        Next::Continue
    }

    async fn dispatch(
        &mut self,
        who: &Principal,
        frame: ClientFrame,
        out: &mut Vec<ServerFrame>,
    ) -> Result<(), (ApiError, Option<String>)> {
        let conv = &self.conversations;
        match frame {
            ClientFrame::Hello { .. } => Err((ApiError::invalid_input("already said hello"), None)),
            ClientFrame::Ping {} => {
                out.push(ServerFrame::Pong);
                Ok(())
            }
            ClientFrame::Subscribe {
                conversation_id,
                after_seq,
            } => {
                let Some(handle) = &self.handle else {
                    return Err((ApiError::unauthorized("say hello with a token first"), None));
                };
                let state = conv
                    .subscribe(who, handle, &conversation_id)
                    .await
                    .map_err(no_id)?;
                out.push(state);
                // Replay after the frames of this turn; live messages up to then are skipped by seq.
                self.pending_replays.push((conversation_id, after_seq));
                Ok(())
            }
            ClientFrame::Send {
                conversation_id,
                client_msg_id,
                text,
                attachments,
            } => {
                let id = Some(client_msg_id.clone());
                let m = match (&self.agent, who) {
                    (Some(agent), _) => {
                        conv.agent_send(
                            agent,
                            &conversation_id,
                            &client_msg_id,
                            &text,
                            &attachments,
                        )
                        .await
                    }
                    (None, Principal::Visitor { .. }) => {
                        conv.visitor_send(
                            who,
                            &conversation_id,
                            &client_msg_id,
                            &text,
                            &attachments,
                        )
                        .await
                    }
                    _ => Err(ConversationError::Forbidden),
                }
                .map_err(|e| with_id(e, id))?;
                out.push(ServerFrame::Ack {
                    client_msg_id,
                    conversation_id,
                    seq: m.seq,
                });
                Ok(())
            }
            ClientFrame::Typing {
                conversation_id,
                typing,
            } => {
                conv.authorize(who, &conversation_id).await.map_err(no_id)?;
                let frame = ServerFrame::Typing {
                    conversation_id: conversation_id.clone(),
                    author: self.author(),
                    typing,
                };
                self.publish_except_self(&conversation_id, &frame);
                Ok(())
            }
            ClientFrame::Read {
                conversation_id,
                seq,
            } => {
                conv.authorize(who, &conversation_id).await.map_err(no_id)?;
                let frame = ServerFrame::Read {
                    conversation_id: conversation_id.clone(),
                    author: self.author(),
                    seq,
                };
                self.publish_except_self(&conversation_id, &frame);
                Ok(())
            }
            ClientFrame::RequestHuman { conversation_id } => {
                if self.agent.is_some() {
                    return Err((ApiError::forbidden("only visitors ask for a human"), None));
                }
                conv.request_human(who, &conversation_id)
                    .await
                    .map_err(no_id)
            }
            ClientFrame::History {
                conversation_id,
                before_seq,
                limit,
            } => {
                let page = conv
                    .messages_before(who, &conversation_id, before_seq, limit + 1)
                    .await
                    .map_err(no_id)?;
                let has_more = page.len() > limit as usize;
                let with_trace = self.agent.is_some();
                let messages = page
                    .iter()
                    .skip(usize::from(has_more))
                    .map(|m| m.to_wire(with_trace))
                    .collect();
                out.push(ServerFrame::History {
                    conversation_id,
                    messages,
                    has_more,
                });
                Ok(())
            }
        }
    }

    fn author(&self) -> Author {
        match &self.agent {
            Some(a) => Author {
                kind: AuthorKind::Agent,
                name: Some(a.display_name.clone()),
            },
            None => Author {
                kind: AuthorKind::Visitor,
                name: None,
            },
        }
    }

    fn publish_except_self(&self, conversation_id: &str, frame: &ServerFrame) {
        if let Ok(json) = serde_json::to_string(frame) {
            let me = self.handle.as_ref().map(|h| h.id);
            self.conversations.relay(conversation_id, &json, me);
        }
    }
}

fn no_id(e: ConversationError) -> (ApiError, Option<String>) {
    (e.into(), None)
}

fn with_id(e: ConversationError, id: Option<String>) -> (ApiError, Option<String>) {
    (e.into(), id)
}
