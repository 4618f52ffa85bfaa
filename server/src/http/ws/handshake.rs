//! `hello`: the token names a visitor (whose page origin must be on the site's allow-list) or an
//! agent (from this server's own origin); the session then joins the live hub.

use kefu_protocol::{ErrorCode, ServerFrame, PROTOCOL_VERSION};
use tokio::sync::mpsc;

use super::{error_frame, Next, Session};
use crate::accounts::{AccountError, Principal};
use crate::conversation::{Outbound, Role};
use crate::http::auth::origin;
use crate::http::error::ApiError;

impl Session {
    pub(super) async fn hello(
        &mut self,
        token: &str,
        out: &mut Vec<ServerFrame>,
        rx: &mut Option<mpsc::Receiver<Outbound>>,
    ) -> Next {
        let principal = match self.accounts.resolve_token(token).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                out.push(error_frame(
                    ErrorCode::Unauthorized,
                    "the token is invalid, expired or revoked",
                    None,
                ));
                return Next::Continue;
            }
            Err(e) => return handshake_fault(e, out),
        };
        let (role, id) = match &principal {
            Principal::Visitor {
                visitor_id,
                site_key,
            } => {
                let site = match self.accounts.site(site_key).await {
                    Ok(site) => site,
                    Err(e) => return handshake_fault(e, out),
                };
                if !self
                    .accounts
                    .origin_allowed(origin(&self.headers), site.as_ref())
                {
                    out.push(error_frame(
                        ErrorCode::OriginNotAllowed,
                        "this page's origin is not on the site's allow-list",
                        None,
                    ));
                    return Next::Close(1008, "origin not allowed");
                }
                (Role::Visitor, visitor_id.clone())
            }
            Principal::Agent { agent_id } => {
                if origin(&self.headers).is_some_and(|o| !self.accounts.is_own_origin(o)) {
                    out.push(error_frame(
                        ErrorCode::OriginNotAllowed,
                        "agent consoles connect from this server's own origin",
                        None,
                    ));
                    return Next::Close(1008, "origin not allowed");
                }
                match self.accounts.agent(agent_id).await {
                    Ok(Some(agent)) => {
                        let name = agent.name.clone();
                        self.agent = Some(agent);
                        (Role::Agent, name)
                    }
                    Ok(None) => {
                        out.push(error_frame(
                            ErrorCode::Unauthorized,
                            "the agent account no longer exists",
                            None,
                        ));
                        return Next::Continue;
                    }
                    Err(e) => return handshake_fault(e, out),
                }
            }
            Principal::Admin => {
                out.push(error_frame(
                    ErrorCode::Forbidden,
                    "admin keys are for the REST API only",
                    None,
                ));
                return Next::Continue;
            }
        };
        let (handle, receiver) = self.conversations.connect(role);
        self.handle = Some(handle);
        *rx = Some(receiver);
        self.principal = Some(principal);
        out.push(ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            role: match role {
                Role::Visitor => "visitor".into(),
                Role::Agent => "agent".into(),
            },
            id,
        });
        if let Some(agent) = &self.agent {
            self.conversations.agent_online(agent).await;
        }
        Next::Continue
    }
}

/// A fault while checking a `hello` (a database hiccup) is not a refusal: the client is told
/// `internal` and the connection closes with 1011, so it reconnects with backoff.
fn handshake_fault(e: AccountError, out: &mut Vec<ServerFrame>) -> Next {
    out.push(ApiError::from(e).to_frame(None));
    Next::Close(1011, "internal error: reconnect")
}
