//! The knowledge step's reply: the composed answer, choices or the fallback text, from a retrieval.

use kefu_kb::{Band, Retrieval};
use kefu_protocol::Source;

use super::trace::{HitTrace, KbTrace};
use super::{DecisionKind, Reply};
use crate::lang::Lang;

/// Composes the reply to `r` in the visitor's language and records the knowledge step in a trace.
pub fn from_retrieval(lang: Lang, r: &Retrieval, mut trace: KbTrace) -> (Reply, KbTrace) {
    let composed = kefu_kb::answer::compose(&r.query, lang, &r.hits, &r.thresholds, r.answer_mode);
    trace.band = Some(composed.band);
    trace.mode = Some(composed.mode);
    trace.thresholds = Some(r.thresholds);
    trace.hits = r
        .hits
        .iter()
        .map(|h| HitTrace {
            id: h.id.clone(),
            question: h.question.clone(),
            score: h.score,
            source: h.source.clone(),
        })
        .collect();
    let kind = match composed.band {
        Band::Answer => DecisionKind::Answer,
        Band::Suggest => DecisionKind::Suggest,
        Band::None => return (fallback(lang), trace),
    };
    let Some(text) = composed.text else {
        return (fallback(lang), trace);
    };
    let sources = composed.citations.into_iter().map(source).collect();
    let reply = Reply {
        kind,
        text: Some(text),
        sources,
        quick_replies: composed.quick_replies,
    };
    (reply, trace)
}

/// A citation as the wire message carries it.
pub fn source(c: kefu_kb::answer::Citation) -> Source {
    Source {
        id: c.id,
        title: c.title,
        source: c.source,
        score: c.score,
    }
}

/// The reply to files sent without a question: the bot cannot read them, a person can.
pub fn file_received(lang: Lang) -> Reply {
    Reply {
        kind: DecisionKind::RuleReply,
        text: Some(
            lang.pick(
                "收到您的文件。我还看不懂图片和文件；如需人工客服查看，请点“转人工”，也可以用文字描述您的问题。",
                "Got your file. I can't read images or files yet: tap \"Talk to a human\" and an agent will look at it, or describe your question in words.",
            )
            .to_string(),
        ),
        sources: vec![],
        quick_replies: vec![lang.pick("转人工", "Talk to a human").to_string()],
    }
}

/// The reply when the bot has no answer.
pub fn fallback(lang: Lang) -> Reply {
    Reply {
        kind: DecisionKind::Fallback,
        text: Some(
            lang.pick(
                "抱歉，我暂时无法回答这个问题。您可以换个说法，或输入“转人工”联系人工客服。",
                "Sorry, I don't have an answer for that yet. You can rephrase, or type \"human\" to reach a person.",
            )
            .to_string(),
        ),
        sources: vec![],
        quick_replies: vec![],
    }
}
