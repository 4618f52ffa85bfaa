//! FAQ mining from past conversations: visitor question -> agent answer pairs, near-duplicate
//! questions clustered by embedding (per language), one proposed FAQ entry per cluster
//! (representative question, alternates, the most typical answer, support count) for review; and
//! the most frequent questions the knowledge base cannot answer (gaps).

use std::collections::HashMap;
use std::sync::Arc;

use crate::embed::{cosine, Embedder, LanguageCentering, TextRole};
use crate::error::Result;
use crate::intent::cache::EmbeddingCache;
use crate::knowledge::Knowledge;
use crate::retrieve::Band;
use crate::train::history::{HistoryConversation, Role};

/// Mining settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MineConfig {
    /// Smallest cluster proposed.
    pub min_support: usize,
    /// Cosine similarity (of centred query embeddings) at which questions join a cluster.
    pub similarity: f32,
    /// Most alternates kept per proposal.
    pub max_alternates: usize,
}

impl Default for MineConfig {
    fn default() -> Self {
        Self {
            min_support: 2,
            similarity: 0.72,
            max_alternates: 5,
        }
    }
}

/// A visitor question and the agent's answer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub question: String,
    pub answer: String,
    pub conversation: String,
}

/// Greetings, thanks and acknowledgements are not questions worth an FAQ entry: a text that is
/// nothing but small talk (after removing those words and punctuation) is chit-chat.
fn is_chit_chat(text: &str) -> bool {
    const SMALL_TALK_ZH: &[&str] = &[
        "你好",
        "您好",
        "在吗",
        "在么",
        "谢谢你",
        "谢谢",
        "多谢",
        "好的",
        "好吧",
        "嗯嗯",
        "嗯",
        "哦",
        "收到",
        "再见",
        "拜拜",
        "是的",
        "没有了",
        "不客气",
        "麻烦了",
        "辛苦了",
        "好",
    ];
    const SMALL_TALK_EN: &[&str] = &[
        "hi", "hello", "hey", "thanks", "thank", "you", "thx", "ok", "okay", "bye", "goodbye",
        "yes", "no", "great", "cool", "sure", "alright", "got", "it", "much", "a", "lot",
    ];
    let mut rest = normalise(text);
    for w in SMALL_TALK_ZH {
        rest = rest.replace(w, " ");
    }
    let words: Vec<&str> = rest
        .split(|c: char| {
            c.is_whitespace()
                || (c.is_ascii_punctuation() && c != '\'')
                || "？！。，、~～…".contains(c)
        })
        .filter(|w| !w.is_empty() && !SMALL_TALK_EN.contains(w))
        .collect();
    words.concat().chars().count() < 2
}

/// Lower-cased, whitespace collapsed, end punctuation trimmed: near-identical texts compare equal.
pub fn normalise(text: &str) -> String {
    let t: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    t.join(" ")
        .trim_end_matches(|c: char| c.is_ascii_punctuation() || "？！。，、~～…".contains(c))
        .to_string()
}

/// The question's language tag (`zh` when mainly CJK, else `en`).
pub fn lang_of(text: &str) -> &'static str {
    if LanguageCentering::is_cjk(text) {
        "zh"
    } else {
        "en"
    }
}

/// Extracts (question, answer) pairs: consecutive visitor messages form the question, the agent
/// messages that follow (before the visitor speaks again) form the answer. Bot turns in between
/// are skipped; chit-chat questions are dropped.
pub fn extract_pairs(conversations: &[HistoryConversation]) -> Vec<Pair> {
    let mut out = Vec::new();
    for c in conversations {
        let mut question: Vec<&str> = Vec::new();
        let mut answer: Vec<&str> = Vec::new();
        let mut flush = |q: &mut Vec<&str>, a: &mut Vec<&str>| {
            if !q.is_empty() && !a.is_empty() {
                let question = q.join(" ");
                if !is_chit_chat(&question) {
                    out.push(Pair {
                        question,
                        answer: a.join("\n"),
                        conversation: c.id.clone(),
                    });
                }
            }
            q.clear();
            a.clear();
        };
        for m in &c.messages {
            match m.role {
                Role::Visitor => {
                    if !answer.is_empty() {
                        flush(&mut question, &mut answer);
                    }
                    if !is_chit_chat(&m.text) {
                        question.push(&m.text);
                    }
                }
                Role::Agent => {
                    if !question.is_empty() {
                        answer.push(&m.text);
                    }
                }
                Role::Bot => {}
            }
        }
        flush(&mut question, &mut answer);
    }
    out
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Indices of `vectors` grouped greedily: each joins the most similar cluster centroid at or above
/// `similarity` within its language, else starts a cluster.
pub fn cluster(vectors: &[Vec<f32>], langs: &[&str], similarity: f32) -> Vec<Vec<usize>> {
    struct Cluster {
        lang: String,
        sum: Vec<f32>,
        members: Vec<usize>,
    }
    let mut clusters: Vec<Cluster> = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let best = clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.lang == langs[i])
            .map(|(ci, c)| (ci, dot(&c.sum, v) / norm(&c.sum)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((ci, sim)) if sim >= similarity => {
                let c = &mut clusters[ci];
                c.sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
                c.members.push(i);
            }
            _ => clusters.push(Cluster {
                lang: langs[i].to_string(),
                sum: v.clone(),
                members: vec![i],
            }),
        }
    }
    // Greedy assignment depends on order: merge clusters whose centroids are close enough.
    loop {
        let mut merged = false;
        'outer: for a in 0..clusters.len() {
            for b in a + 1..clusters.len() {
                if clusters[a].lang != clusters[b].lang {
                    continue;
                }
                let (sa, sb) = (&clusters[a].sum, &clusters[b].sum);
                let sim = dot(sa, sb) / (norm(sa) * norm(sb));
                if sim >= similarity {
                    let gone = clusters.remove(b);
                    let c = &mut clusters[a];
                    c.sum.iter_mut().zip(&gone.sum).for_each(|(s, x)| *s += x);
                    c.members.extend(gone.members);
                    merged = true;
                    break 'outer;
                }
            }
        }
        if !merged {
            break;
        }
    }
    clusters
        .into_iter()
        .map(|mut c| {
            c.members.sort_unstable();
            c.members
        })
        .collect()
}

/// A proposed FAQ entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Proposal {
    pub lang: String,
    pub question: String,
    pub alternates: Vec<String>,
    pub answer: String,
    pub support: usize,
    /// Conversations it came from (`source/id`, the first `EXAMPLE_CONVERSATIONS`), as examples
    /// for the reviewer.
    pub conversations: Vec<String>,
}

/// Source conversations kept with a proposal.
pub const EXAMPLE_CONVERSATIONS: usize = 3;

/// The member closest to the group's centroid.
fn medoid(vectors: &[&Vec<f32>]) -> usize {
    let dim = vectors.first().map(|v| v.len()).unwrap_or(0);
    let mut centroid = vec![0f32; dim];
    for v in vectors {
        centroid.iter_mut().zip(v.iter()).for_each(|(c, x)| *c += x);
    }
    vectors
        .iter()
        .enumerate()
        .max_by(|a, b| cosine(a.1, &centroid).total_cmp(&cosine(b.1, &centroid)))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Reports (done, total) for the embedding steps.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

/// Clusters the pairs and proposes one entry per cluster with at least `min_support` pairs,
/// largest first.
pub async fn propose(
    embedder: &Arc<dyn Embedder>,
    cache: &EmbeddingCache,
    pairs: &[Pair],
    cfg: &MineConfig,
    progress: Progress<'_>,
) -> Result<Vec<Proposal>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let questions: Vec<String> = pairs.iter().map(|p| p.question.clone()).collect();
    let qv = cache
        .embed(embedder, &questions, TextRole::Query, workers, progress)
        .await?;
    let langs: Vec<&str> = questions.iter().map(|q| lang_of(q)).collect();
    let mut groups: Vec<Vec<usize>> = cluster(&qv, &langs, cfg.similarity)
        .into_iter()
        .filter(|g| g.len() >= cfg.min_support.max(1))
        .collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let answers: Vec<String> = groups
        .iter()
        .flatten()
        .map(|&i| pairs[i].answer.clone())
        .collect();
    let av = cache
        .embed(embedder, &answers, TextRole::Passage, workers, progress)
        .await?;
    let mut offset = 0;
    let mut out = Vec::with_capacity(groups.len());
    for g in &groups {
        let answer_vecs: Vec<&Vec<f32>> = av[offset..offset + g.len()].iter().collect();
        offset += g.len();
        // Question variants by frequency (normalised), most frequent first; ties: nearest the
        // centroid.
        let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
        for (rank, &i) in g.iter().enumerate() {
            let e = counts
                .entry(normalise(&pairs[i].question))
                .or_insert((0, rank));
            e.0 += 1;
        }
        let q_vecs: Vec<&Vec<f32>> = g.iter().map(|&i| &qv[i]).collect();
        let central = normalise(&pairs[g[medoid(&q_vecs)]].question);
        let mut variants: Vec<(String, usize, usize)> = counts
            .into_iter()
            .map(|(k, (n, first))| (k, n, first))
            .collect();
        variants.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| (b.0 == central).cmp(&(a.0 == central)))
                .then_with(|| a.2.cmp(&b.2))
        });
        // Show each variant as first written.
        let original = |norm: &str| -> String {
            g.iter()
                .map(|&i| pairs[i].question.clone())
                .find(|q| normalise(q) == norm)
                .unwrap_or_else(|| norm.to_string())
        };
        let question = original(&variants[0].0);
        let alternates = variants
            .iter()
            .skip(1)
            .take(cfg.max_alternates)
            .map(|v| original(&v.0))
            .collect();
        let answer = pairs[g[medoid(&answer_vecs)]].answer.clone();
        let mut conversations: Vec<String> = Vec::new();
        for &i in g {
            let c = &pairs[i].conversation;
            if conversations.len() < EXAMPLE_CONVERSATIONS && !conversations.contains(c) {
                conversations.push(c.clone());
            }
        }
        out.push(Proposal {
            lang: lang_of(&question).to_string(),
            question,
            alternates,
            answer,
            support: g.len(),
            conversations,
        });
    }
    Ok(out)
}

/// A frequent question the knowledge base has no answer for.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Gap {
    pub question: String,
    pub count: usize,
    pub examples: Vec<String>,
    /// The best knowledge-base score among its questions.
    pub best_score: f32,
}

/// Visitor questions (from every stored conversation) that `kb` does not answer outright (band
/// `none`, or only suggestions), clustered, most frequent first.
pub async fn gaps(
    knowledge: &Knowledge,
    cache: &EmbeddingCache,
    kb: &str,
    conversations: &[HistoryConversation],
    cfg: &MineConfig,
    top: usize,
    progress: Progress<'_>,
) -> Result<Vec<Gap>> {
    let questions: Vec<String> = conversations
        .iter()
        .flat_map(|c| c.messages.iter())
        .filter(|m| m.role == Role::Visitor && !is_chit_chat(&m.text))
        .map(|m| m.text.clone())
        .collect();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let embedder = knowledge.embedder();
    let vectors = cache
        .embed(embedder, &questions, TextRole::Query, workers, progress)
        .await?;
    let results = knowledge
        .search_many(kb, &questions, &vectors, 1, &[])
        .await?;
    let mut unanswered = Vec::new();
    for ((q, v), r) in questions.iter().zip(&vectors).zip(results) {
        if r.band != Band::Answer {
            unanswered.push((
                q.clone(),
                v.clone(),
                r.hits.first().map(|h| h.score).unwrap_or(0.0),
            ));
        }
    }
    let vecs: Vec<Vec<f32>> = unanswered.iter().map(|u| u.1.clone()).collect();
    let langs: Vec<&str> = unanswered.iter().map(|u| lang_of(&u.0)).collect();
    let mut groups = cluster(&vecs, &langs, cfg.similarity);
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    Ok(groups
        .into_iter()
        .take(top)
        .map(|g| {
            let mut examples: Vec<String> = Vec::new();
            for &i in &g {
                let q = &unanswered[i].0;
                if !examples.iter().any(|e| normalise(e) == normalise(q)) && examples.len() < 5 {
                    examples.push(q.clone());
                }
            }
            Gap {
                question: examples.first().cloned().unwrap_or_default(),
                count: g.len(),
                best_score: g.iter().map(|&i| unanswered[i].2).fold(f32::MIN, f32::max),
                examples,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::history::HistoryMessage;

    fn msg(role: Role, text: &str) -> HistoryMessage {
        HistoryMessage {
            role,
            text: text.into(),
            time: None,
        }
    }

    #[test]
    fn pairs_join_consecutive_turns_and_skip_chit_chat() {
        let c = HistoryConversation {
            id: "c".into(),
            messages: vec![
                msg(Role::Visitor, "你好"),
                msg(Role::Agent, "您好，请问有什么可以帮您？"),
                msg(Role::Visitor, "我的订单"),
                msg(Role::Visitor, "什么时候发货？"),
                msg(Role::Bot, "抱歉，我暂时无法回答。"),
                msg(Role::Agent, "一般48小时内发货。"),
                msg(Role::Agent, "节假日顺延。"),
                msg(Role::Visitor, "谢谢"),
                msg(Role::Agent, "不客气"),
                msg(Role::Visitor, "Can I pay by card?"),
            ],
        };
        let pairs = extract_pairs(&[c]);
        assert_eq!(pairs.len(), 1, "{pairs:?}");
        assert_eq!(pairs[0].question, "我的订单 什么时候发货？");
        assert_eq!(pairs[0].answer, "一般48小时内发货。\n节假日顺延。");
    }

    #[test]
    fn clusters_stay_within_a_language() {
        let v = vec![
            vec![1.0, 0.0],
            vec![0.99, 0.14],
            vec![1.0, 0.0],
            vec![0.0, 1.0],
        ];
        let groups = cluster(&v, &["en", "en", "zh", "en"], 0.9);
        assert_eq!(groups, vec![vec![0, 1], vec![2], vec![3]]);
        assert_eq!(normalise("  Where IS my  order?? "), "where is my order");
        // Centroids of [0, 1] and [2] (other language) never merge; two close ones do.
        let v = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.8, 0.6]];
        assert_eq!(
            cluster(&v, &["en", "en", "en"], 0.75),
            vec![vec![0, 2], vec![1]]
        );
        for chat in ["好的谢谢", "OK, thanks a lot!", "嗯嗯 好的", "hi"] {
            assert!(is_chit_chat(chat), "{chat}");
        }
        for q in [
            "谢谢，发票怎么开？",
            "Thanks, how do I return this?",
            "你们招代理吗",
        ] {
            assert!(!is_chit_chat(q), "{q}");
        }
    }
}
