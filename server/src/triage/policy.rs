//! What rules and intent routes do (reply, hand off, notify), and the handoff policy for repeated
//! fallbacks.

use super::rules::RuleAction;
use super::trace::{HandoffReason, RouteTrace};
use super::{DecisionKind, Reply};

/// Applies rule or intent-route actions: the first reply wins, a handoff overrides it, webhooks
/// accumulate.
pub fn apply_actions(
    actions: &[RuleAction],
    reason: HandoffReason,
    trace: &mut RouteTrace,
    decision: &mut Option<Reply>,
    webhooks: &mut Vec<String>,
) {
    for action in actions {
        match action {
            RuleAction::Reply { text } if decision.is_none() => {
                *decision = Some(Reply::text(DecisionKind::RuleReply, text.clone()));
            }
            RuleAction::Handoff => {
                trace.handoff = Some(reason.clone());
                *decision = Some(Reply::handoff());
            }
            RuleAction::Webhook { url } => webhooks.push(url.clone()),
            RuleAction::Reply { .. } | RuleAction::Intent { .. } => {}
        }
    }
}

/// Counts consecutive fallbacks and turns `reply` into a handoff once they reach
/// `fallbacks_before_handoff` (0 = never).
pub fn repeated_fallbacks(
    reply: Reply,
    trace: &mut RouteTrace,
    fallbacks_so_far: u32,
    fallbacks_before_handoff: u32,
) -> Reply {
    if reply.kind != DecisionKind::Fallback {
        trace.fallbacks = 0;
        return reply;
    }
    trace.fallbacks = fallbacks_so_far + 1;
    if fallbacks_before_handoff > 0 && trace.fallbacks >= fallbacks_before_handoff {
        trace.handoff = Some(HandoffReason::RepeatedFallback {
            count: trace.fallbacks,
        });
        return Reply::handoff();
    }
    reply
}
