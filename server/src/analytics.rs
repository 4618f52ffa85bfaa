//! Analytics over a period of days: conversations and visitor messages, what the bot did with
//! them, conversations resolved without an agent, handoffs by reason, agents' first-response and
//! resolution times, busiest hours, the questions the bot could not answer (grouped), and CSAT.
//! Read from the conversation store (`store::analytics`); counted here. Unanswered questions are
//! grouped by their words, then (with the running model) clustered by meaning: wordings whose
//! embeddings are close become one gap with its other wordings as examples.
//!
//! Messages count on the day they were sent; conversation-level figures (handoffs, resolution,
//! agent times, ratings) belong to the day the conversation started. A conversation is resolved
//! without an agent when the visitor wrote in it, it was never handed to a human, and nothing was
//! said in it for the resolution window (24 h by default) — it was not reopened.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kefu_kb::{Embedder, TextRole};

use crate::lang::Lang;

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{now_ms, ConversationFacts, Period, Store, StoreError};

/// Longest period one report covers.
pub const MAX_DAYS: i64 = 366;
/// Unanswered questions read per report (the newest).
const UNANSWERED_SCAN: u32 = 5000;
/// Groups of unanswered questions reported.
const TOP_GAPS: usize = 20;
/// Word groups clustered by meaning per report (the most frequent); the rest stay word groups.
const CLUSTER_GROUPS: usize = 300;
/// Cosine similarity at which two wordings are the same question (as mining groups them).
const SAME_QUESTION: f32 = 0.72;
/// Other wordings kept with a gap.
const GAP_EXAMPLES: usize = 5;
/// Question vectors remembered between reports.
const VECTOR_MEMO: usize = 20_000;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a report covers: days `from` to `to` (inclusive, `YYYY-MM-DD`) in the time zone
/// `offset_minutes` east of UTC, optionally one site.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub from: String,
    pub to: String,
    pub offset_minutes: i32,
    pub site: Option<String>,
}

/// The analytics of one period.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Report {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub tz_offset_minutes: i32,
    /// Conversations started.
    pub conversations: u64,
    pub visitor_messages: u64,
    pub bot_replies: BotReplies,
    /// Conversations with visitor messages, never handed off and not reopened (see the module).
    pub resolved_without_agent: u64,
    /// `resolved_without_agent` over conversations with visitor messages (0 when none).
    pub resolution_rate: f64,
    pub handoffs: Handoffs,
    pub agents: AgentTimes,
    pub csat: Csat,
    /// Visitor messages per hour of the day (0–23, in the report's time zone).
    pub busiest_hours: Vec<u64>,
    pub days: Vec<Day>,
    /// The questions most often answered with suggestions or a fallback, grouped by their
    /// normalised text, most frequent first.
    pub top_unanswered: Vec<Gap>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct BotReplies {
    pub answered: u64,
    pub suggested: u64,
    pub fallback: u64,
    /// Replies a rule wrote.
    pub rule_replies: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct Handoffs {
    pub total: u64,
    /// `total` over conversations started (0 when none).
    pub rate: f64,
    /// `requested`, `rule`, `intent`, `repeated_fallback`.
    pub by_reason: BTreeMap<String, u64>,
}

/// Seconds from handoff to the first agent reply, and to resolution.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct AgentTimes {
    pub first_response_s: Spread,
    pub time_to_resolve_s: Spread,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct Spread {
    pub count: u64,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct Csat {
    pub count: u64,
    pub mean: Option<f64>,
    /// Ratings of 1, 2, 3, 4 and 5.
    #[schema(value_type = Vec<u64>, min_items = 5, max_items = 5)]
    pub scores: [u64; 5],
}

/// One day of the period.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct Day {
    pub date: String,
    pub conversations: u64,
    pub visitor_messages: u64,
    pub answered: u64,
    pub suggested: u64,
    pub fallback: u64,
    pub handoffs: u64,
    pub resolved_without_agent: u64,
}

/// A group of unanswered questions.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Gap {
    /// The most frequent wording (ties: the most recent).
    pub question: String,
    pub count: u64,
    pub suggested: u64,
    pub fallback: u64,
    /// Other wordings of the same question, most frequent first.
    pub examples: Vec<String>,
}

/// The analytics service.
#[derive(Clone)]
pub struct Analytics {
    store: Store,
    /// Quiet time after which a conversation the bot handled counts as resolved.
    resolution_window: Duration,
    /// Clusters unanswered questions by meaning when set.
    embedder: Option<Arc<dyn Embedder>>,
    memo: Arc<Mutex<HashMap<String, Vec<f32>>>>,
}

impl Analytics {
    pub fn new(store: Store, resolution_window: Duration) -> Self {
        Self {
            store,
            resolution_window,
            embedder: None,
            memo: Arc::default(),
        }
    }

    /// Clusters unanswered questions by meaning with `embedder` (the running model).
    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    /// Drops the question texts (and their vectors) remembered between reports: after an
    /// erasure, nothing of an erased visitor stays in memory.
    pub fn forget_questions(&self) {
        self.memo.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Word groups clustered by meaning (without an embedder, or if embedding fails, the word
    /// groups as they are), the `TOP_GAPS` largest.
    async fn clustered(&self, groups: Vec<WordGroup>) -> Vec<Gap> {
        let Some(embedder) = &self.embedder else {
            return top_gaps(groups.into_iter().map(WordGroup::into_cluster).collect());
        };
        let (head, tail) = groups.split_at(groups.len().min(CLUSTER_GROUPS));
        let texts: Vec<String> = head.iter().map(|g| g.gap.question.clone()).collect();
        let embedder = Arc::clone(embedder);
        let memo = Arc::clone(&self.memo);
        let vectors = tokio::task::spawn_blocking(move || vectors_of(&*embedder, &memo, &texts))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let vectors = match vectors {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "could not cluster unanswered questions by meaning");
                return top_gaps(groups.into_iter().map(WordGroup::into_cluster).collect());
            }
        };
        let mut clusters = cluster(head.to_vec(), &vectors);
        clusters.extend(tail.iter().cloned().map(WordGroup::into_cluster));
        top_gaps(clusters)
    }

    /// The report for `req`.
    pub async fn report(&self, req: &ReportRequest) -> Result<Report, AnalyticsError> {
        let period = period_of(req)?;
        let counts = self.store.message_counts(&period).await?;
        let facts = self.store.conversation_facts(&period).await?;
        let unanswered = self.store.unanswered(&period, UNANSWERED_SCAN).await?;

        let mut days: Vec<Day> = (0..(period.to_ms - period.from_ms) / DAY_MS)
            .map(|i| Day {
                date: date_of(period.from_ms + period.offset_ms + i * DAY_MS),
                ..Day::default()
            })
            .collect();
        let day_count = days.len();
        let day_index = |utc_ms: i64| -> Option<usize> {
            let i = (utc_ms - period.from_ms).div_euclid(DAY_MS);
            usize::try_from(i).ok().filter(|i| *i < day_count)
        };
        let mut bot = BotReplies::default();
        let mut visitor_messages = 0;
        let mut busiest_hours = vec![0u64; 24];
        for c in &counts {
            let n = c.count.max(0) as u64;
            // `hour` counts local hours since the epoch: back to UTC for the day.
            let Some(d) = day_index(c.hour * HOUR_MS - period.offset_ms) else {
                continue;
            };
            match (c.author_kind.as_str(), c.outcome.as_deref()) {
                ("visitor", _) => {
                    visitor_messages += n;
                    days[d].visitor_messages += n;
                    busiest_hours[c.hour.rem_euclid(24) as usize] += n;
                }
                ("bot", Some("answer")) => {
                    bot.answered += n;
                    days[d].answered += n;
                }
                ("bot", Some("suggest")) => {
                    bot.suggested += n;
                    days[d].suggested += n;
                }
                ("bot", Some("fallback")) => {
                    bot.fallback += n;
                    days[d].fallback += n;
                }
                ("bot", Some("rule_reply")) => bot.rule_replies += n,
                _ => {}
            }
        }

        let now = now_ms();
        let window = self.resolution_window.as_millis() as i64;
        let mut handoffs = Handoffs::default();
        let mut resolved_without_agent = 0;
        let mut engaged = 0;
        let mut first_response = Vec::new();
        let mut to_resolve = Vec::new();
        let mut csat = Csat::default();
        for c in &facts {
            let d = day_index(c.created_at);
            if let Some(d) = d {
                days[d].conversations += 1;
            }
            if c.visitor_messages > 0 {
                engaged += 1;
            }
            if resolved_by_bot(c, now, window) {
                resolved_without_agent += 1;
                if let Some(d) = d {
                    days[d].resolved_without_agent += 1;
                }
            }
            if let (Some(reason), Some(at)) = (&c.handoff_reason, c.handed_off_at) {
                handoffs.total += 1;
                *handoffs.by_reason.entry(reason.clone()).or_default() += 1;
                if let Some(d) = d {
                    days[d].handoffs += 1;
                }
                if let Some(reply) = c.first_agent_reply_at {
                    first_response.push((reply - at).max(0) as f64 / 1e3);
                }
                if let Some(done) = c.resolved_at {
                    to_resolve.push((done - at).max(0) as f64 / 1e3);
                }
            }
            if let Some(score @ 1..=5) = c.rating {
                csat.count += 1;
                csat.scores[score as usize - 1] += 1;
            }
        }
        if csat.count > 0 {
            let sum: u64 = (1..=5u64).zip(csat.scores).map(|(s, n)| s * n).sum();
            csat.mean = Some(round2(sum as f64 / csat.count as f64));
        }
        let conversations = facts.len() as u64;
        handoffs.rate = ratio(handoffs.total, conversations);
        Ok(Report {
            from: req.from.clone(),
            to: req.to.clone(),
            site: req.site.clone(),
            tz_offset_minutes: req.offset_minutes,
            conversations,
            visitor_messages,
            bot_replies: bot,
            resolved_without_agent,
            resolution_rate: ratio(resolved_without_agent, engaged),
            handoffs,
            agents: AgentTimes {
                first_response_s: spread(first_response),
                time_to_resolve_s: spread(to_resolve),
            },
            csat,
            busiest_hours,
            days,
            top_unanswered: self.clustered(word_groups(&unanswered)).await,
        })
    }
}

/// Whether the bot resolved conversation `c` by `now` (see the module).
fn resolved_by_bot(c: &ConversationFacts, now: i64, window: i64) -> bool {
    c.visitor_messages > 0
        && c.handoff_reason.is_none()
        && c.state != "queued"
        && c.state != "agent"
        && c.last_message_at.is_some_and(|t| now - t >= window)
}

/// The period a request names, checked.
fn period_of(req: &ReportRequest) -> Result<Period, AnalyticsError> {
    if !(-14 * 60..=14 * 60).contains(&req.offset_minutes) {
        return Err(AnalyticsError::Invalid(
            "tz_offset_minutes must be between -840 and 840".into(),
        ));
    }
    let offset_ms = req.offset_minutes as i64 * 60_000;
    let from = day_start(&req.from, "from")?;
    let to = day_start(&req.to, "to")? + DAY_MS;
    if to <= from {
        return Err(AnalyticsError::Invalid("`to` is before `from`".into()));
    }
    if (to - from) / DAY_MS > MAX_DAYS {
        return Err(AnalyticsError::Invalid(format!(
            "a report covers at most {MAX_DAYS} days"
        )));
    }
    if req.site.as_ref().is_some_and(|s| s.len() > 64) {
        return Err(AnalyticsError::Invalid("no such site key".into()));
    }
    Ok(Period {
        from_ms: from - offset_ms,
        to_ms: to - offset_ms,
        offset_ms,
        site: req.site.clone(),
    })
}

/// Milliseconds at 00:00 UTC of day `date` (`YYYY-MM-DD`).
fn day_start(date: &str, name: &str) -> Result<i64, AnalyticsError> {
    let bad = || AnalyticsError::Invalid(format!("`{name}` must be a date like 2026-12-01"));
    let well_formed = date.len() == 10
        && date.char_indices().all(|(i, c)| {
            matches!(i, 4 | 7) && c == '-' || !matches!(i, 4 | 7) && c.is_ascii_digit()
        });
    if !well_formed {
        return Err(bad());
    }
    let t = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).map_err(|_| bad())?;
    let ms = t.duration_since(UNIX_EPOCH).map_err(|_| bad())?.as_millis();
    i64::try_from(ms).map_err(|_| bad())
}

/// `YYYY-MM-DD` (UTC) of a time given as milliseconds since the epoch.
pub fn date_of(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round2(part as f64 / whole as f64 * 100.0) / 100.0
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| -> Option<f64> {
        let last = values.len().checked_sub(1)?;
        Some(round2(values[((last as f64) * q).round() as usize]))
    };
    Spread {
        count: values.len() as u64,
        median: at(0.5),
        p90: at(0.9),
    }
}

/// A question's text as grouped: lower-case letters and digits (any script), nothing else.
fn normalised(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Unanswered questions with the same words: the counts, the newest wording and when it was
/// asked.
#[derive(Debug, Clone)]
struct WordGroup {
    gap: Gap,
    last: i64,
}

impl WordGroup {
    fn into_cluster(self) -> Cluster {
        Cluster {
            lang: Lang::detect(&self.gap.question),
            last: self.last,
            members: vec![(self.gap.question.clone(), self.gap.count)],
            gap: self.gap,
        }
    }
}

/// Word groups clustered together (one language: an FAQ answers in the visitor's).
struct Cluster {
    gap: Gap,
    lang: Lang,
    last: i64,
    /// Each wording with its count.
    members: Vec<(String, u64)>,
}

/// Unanswered questions grouped by normalised text, most frequent first (ties: most recent).
fn word_groups(unanswered: &[crate::store::Unanswered]) -> Vec<WordGroup> {
    let mut groups: HashMap<String, WordGroup> = HashMap::new();
    for u in unanswered {
        let key = normalised(&u.text);
        if key.is_empty() {
            continue;
        }
        let g = groups.entry(key).or_insert_with(|| WordGroup {
            gap: Gap {
                question: u.text.clone(),
                count: 0,
                suggested: 0,
                fallback: 0,
                examples: vec![],
            },
            last: u.created_at,
        });
        g.gap.count += 1;
        match u.outcome.as_str() {
            "suggest" => g.gap.suggested += 1,
            _ => g.gap.fallback += 1,
        }
        if u.created_at > g.last {
            g.last = u.created_at;
            g.gap.question = u.text.clone();
        }
    }
    let mut list: Vec<WordGroup> = groups.into_values().collect();
    list.sort_by(|a, b| b.gap.count.cmp(&a.gap.count).then(b.last.cmp(&a.last)));
    list
}

/// Joins each group (most frequent first) to the first cluster of its language whose leading
/// wording is within `SAME_QUESTION` of it, else starts a cluster.
fn cluster(groups: Vec<WordGroup>, vectors: &[Vec<f32>]) -> Vec<Cluster> {
    let mut clusters: Vec<(Cluster, usize)> = Vec::new();
    for (i, g) in groups.into_iter().enumerate() {
        let group = g.into_cluster();
        let near = clusters.iter_mut().find(|(c, lead)| {
            c.lang == group.lang && cosine(&vectors[*lead], &vectors[i]) >= SAME_QUESTION
        });
        match near {
            Some((c, _)) => c.absorb(group),
            None => clusters.push((group, i)),
        }
    }
    clusters.into_iter().map(|(c, _)| c).collect()
}

impl Cluster {
    /// Adds another cluster's counts and wordings to this one.
    fn absorb(&mut self, other: Cluster) {
        self.gap.count += other.gap.count;
        self.gap.suggested += other.gap.suggested;
        self.gap.fallback += other.gap.fallback;
        self.last = self.last.max(other.last);
        self.members.extend(other.members);
    }
}

/// The largest clusters as gaps, each with its other wordings.
fn top_gaps(clusters: Vec<Cluster>) -> Vec<Gap> {
    let mut clusters = clusters;
    clusters.sort_by(|a, b| b.gap.count.cmp(&a.gap.count).then(b.last.cmp(&a.last)));
    clusters
        .into_iter()
        .take(TOP_GAPS)
        .map(|mut c| {
            c.gap.examples = c
                .members
                .iter()
                .skip(1)
                .take(GAP_EXAMPLES)
                .map(|(text, _)| text.clone())
                .collect();
            c.gap
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let n = norm(a) * norm(b);
    if n > 0.0 {
        dot / n
    } else {
        0.0
    }
}

/// The vectors of `texts`, embedding only those not remembered from earlier reports.
fn vectors_of(
    embedder: &dyn Embedder,
    memo: &Mutex<HashMap<String, Vec<f32>>>,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, kefu_kb::KbError> {
    let missing: Vec<&str> = {
        let m = memo.lock().unwrap_or_else(|p| p.into_inner());
        texts
            .iter()
            .filter(|t| !m.contains_key(t.as_str()))
            .map(String::as_str)
            .collect()
    };
    let fresh = if missing.is_empty() {
        vec![]
    } else {
        embedder.embed(&missing, TextRole::Query)?
    };
    let mut m = memo.lock().unwrap_or_else(|p| p.into_inner());
    if m.len() + fresh.len() > VECTOR_MEMO {
        m.clear();
    }
    for (t, v) in missing.iter().zip(fresh) {
        m.insert(t.to_string(), v);
    }
    Ok(texts
        .iter()
        .map(|t| m.get(t).cloned().unwrap_or_default())
        .collect())
}

/// The per-day rows of a report as CSV (header first).
pub fn days_csv(report: &Report) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "date",
        "conversations",
        "visitor_messages",
        "answered",
        "suggested",
        "fallback",
        "handoffs",
        "resolved_without_agent",
    ])?;
    for d in &report.days {
        w.write_record([
            d.date.clone(),
            d.conversations.to_string(),
            d.visitor_messages.to_string(),
            d.answered.to_string(),
            d.suggested.to_string(),
            d.fallback.to_string(),
            d.handoffs.to_string(),
            d.resolved_without_agent.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(from: &str, to: &str, offset: i32) -> ReportRequest {
        ReportRequest {
            from: from.into(),
            to: to.into(),
            offset_minutes: offset,
            site: None,
        }
    }

    #[test]
    fn periods_are_whole_days_in_the_operators_time_zone() {
        let p = period_of(&req("2026-12-01", "2026-12-02", 480)).expect("period");
        let utc = day_start("2026-12-01", "from").expect("day");
        assert_eq!(
            p.from_ms,
            utc - 8 * HOUR_MS,
            "00:00 in UTC+8 is 16:00 UTC the day before"
        );
        assert_eq!(p.to_ms - p.from_ms, 2 * DAY_MS);
        assert_eq!(date_of(utc), "2026-12-01");
        for bad in [
            req("2026-12-1", "2026-12-02", 0),
            req("2026-12-03", "2026-12-02", 0),
            req("2025-01-01", "2026-12-02", 0),
            req("2026-12-01", "2026-12-02", 900),
            req("2026-13-01", "2026-12-02", 0),
        ] {
            assert!(period_of(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unanswered_questions_group_by_words_then_meaning_and_spreads_read_sorted_values() {
        let u = |text: &str, outcome: &str, at: i64| crate::store::Unanswered {
            text: text.into(),
            outcome: outcome.into(),
            created_at: at,
        };
        let groups = word_groups(&[
            u("Do you sell laptops?", "fallback", 1),
            u("do you sell laptops", "suggest", 3),
            u("你们卖笔记本电脑吗？", "fallback", 2),
            u("???", "fallback", 4),
        ]);
        let list = top_gaps(
            groups
                .iter()
                .cloned()
                .map(WordGroup::into_cluster)
                .collect(),
        );
        assert_eq!(list.len(), 2);
        assert_eq!(
            (
                list[0].question.as_str(),
                list[0].count,
                list[0].suggested,
                list[0].fallback
            ),
            ("do you sell laptops", 2, 1, 1)
        );
        assert_eq!(list[1].question, "你们卖笔记本电脑吗？");
        // By meaning, within a language: close wordings become one gap, the most frequent
        // leading; another language or a distant wording stays apart.
        let groups = word_groups(&[
            u("Do you sell laptops?", "fallback", 1),
            u("do you sell laptops", "suggest", 3),
            u("你们卖笔记本电脑吗？", "fallback", 2),
            u("Are laptops sold here?", "fallback", 5),
            u("Can I pay with bitcoin?", "fallback", 6),
        ]);
        let near = vec![1.0, 0.0];
        let vectors = vec![near.clone(), vec![0.0, 1.0], near.clone(), vec![0.9, 0.1]];
        let order: Vec<&str> = groups.iter().map(|g| g.gap.question.as_str()).collect();
        assert_eq!(
            order,
            [
                "do you sell laptops",
                "Can I pay with bitcoin?",
                "Are laptops sold here?",
                "你们卖笔记本电脑吗？"
            ]
        );
        let clustered = top_gaps(cluster(groups, &vectors));
        assert_eq!(clustered.len(), 3);
        assert_eq!(
            (
                clustered[0].question.as_str(),
                clustered[0].count,
                clustered[0].fallback
            ),
            ("do you sell laptops", 3, 2)
        );
        assert_eq!(
            clustered[0].examples,
            vec!["Are laptops sold here?".to_string()]
        );
        assert_eq!(
            clustered[2].question, "你们卖笔记本电脑吗？",
            "another language stays apart"
        );
        let s = spread(vec![30.0, 10.0, 20.0]);
        assert_eq!((s.count, s.median, s.p90), (3, Some(20.0), Some(30.0)));
        assert_eq!(spread(vec![]).median, None);
    }
}
