//! Operator rules: keyword / regex / exact-phrase matchers with priorities and actions (reply, set
//! intent, hand off, call a webhook), loaded from a TOML or YAML file, plus canned replies for agents.

use std::path::Path;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("rules file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleAction {
    /// Reply with this text (the bot's answer for this message).
    Reply { text: String },
    /// Record this intent for the message (shown in the route trace).
    Intent { name: String },
    /// Hand the conversation to a human agent.
    Handoff,
    /// POST the message as JSON to this URL (fire and forget, retried).
    Webhook { url: String },
}

/// One rule as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    /// Higher runs first; equal priorities keep file order.
    #[serde(default)]
    pub priority: i32,
    /// Matches when the message contains any keyword (case-insensitive; whole words for Latin text).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Matches when the message equals a phrase (case-insensitive, ignoring surrounding
    /// whitespace and end punctuation).
    #[serde(default)]
    pub exact: Vec<String>,
    /// Matches when the regular expression matches anywhere (case-insensitive).
    #[serde(default)]
    pub regex: Option<String>,
    pub actions: Vec<RuleAction>,
}

/// An action whose fields cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAction {
    #[error("webhook url `{0}` must be http(s)")]
    WebhookNotHttp(String),
    #[error("reply text is empty")]
    EmptyReply,
}

/// Checks one action's fields.
fn check_action(a: &RuleAction) -> Result<(), BadAction> {
    match a {
        RuleAction::Webhook { url }
            if !(url.starts_with("http://") || url.starts_with("https://")) =>
        {
            Err(BadAction::WebhookNotHttp(url.clone()))
        }
        RuleAction::Reply { text } if text.trim().is_empty() => Err(BadAction::EmptyReply),
        _ => Ok(()),
    }
}

/// A canned reply agents can insert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedReply {
    pub title: String,
    pub text: String,
}

/// What the bot does when the intent model (or a rule) names an intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentRoute {
    /// The intent name, as in the training data.
    pub name: String,
    /// Actions as for rules (reply, handoff, webhook); none lets retrieval answer.
    #[serde(default)]
    pub actions: Vec<RuleAction>,
    /// Restrict retrieval to knowledge-base entries with any of these tags (falls back to the
    /// whole knowledge base when they hold no answer).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Act only when the model's probability is at least this (default: its calibrated threshold).
    #[serde(default)]
    pub min_confidence: Option<f32>,
}

/// The rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    /// Keep the built-in rules (handoff words, greetings) beside the file's; default true.
    #[serde(default = "yes")]
    builtin_rules: bool,
    #[serde(default)]
    rules: Vec<RuleSpec>,
    #[serde(default)]
    canned: Vec<CannedReply>,
    #[serde(default)]
    intents: Vec<IntentRoute>,
}

fn yes() -> bool {
    true
}

/// A compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    id: String,
    priority: i32,
    keywords: Vec<(String, Regex)>,
    exact: Vec<String>,
    regex: Option<Regex>,
    actions: Vec<RuleAction>,
}

/// The first matching rule for a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleMatch {
    pub rule_id: String,
    /// The keyword, phrase or regex that matched.
    pub matched: String,
    pub actions: Vec<RuleAction>,
}

/// Every rule, in evaluation order, and the canned replies.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    canned: Vec<CannedReply>,
    intents: Vec<IntentRoute>,
}

const BUILTIN: &str = r#"
[[rules]]
id = "builtin-handoff"
priority = 100
keywords = ["转人工", "人工客服", "人工服务", "找人工", "要人工", "真人客服", "human", "agent", "real person", "representative", "live agent"]
actions = [{ type = "handoff" }]

[[rules]]
id = "builtin-greeting-zh"
priority = 10
exact = ["你好", "您好", "在吗", "在么", "哈喽"]
actions = [{ type = "reply", text = "您好！我是智能客服，请问有什么可以帮您？需要人工服务请输入“转人工”。" }]

[[rules]]
id = "builtin-greeting-en"
priority = 10
exact = ["hi", "hello", "hey", "hi there", "hello there"]
actions = [{ type = "reply", text = "Hello! I'm the virtual assistant. How can I help? Type \"human\" at any time to reach a person." }]

[[canned]]
title = "问候"
text = "您好，我是人工客服，很高兴为您服务。"

[[canned]]
title = "Greeting"
text = "Hi, this is a member of our support team. How can I help?"

[[canned]]
title = "稍等"
text = "好的，请稍等，我帮您查询一下。"

[[canned]]
title = "One moment"
text = "Thanks, give me a moment while I look into this."

[[canned]]
title = "Closing"
text = "Is there anything else I can help you with?"
"#;

impl RuleSet {
    /// The built-in rules only.
    pub fn builtin() -> Self {
        // The built-in text is a constant checked by a unit test.
        Self::parse_toml(BUILTIN, "<builtin>")
            .unwrap_or_else(|e| unreachable!("built-in rules are valid: {e}"))
    }

    /// Loads a rules file (`.toml`, `.yaml` or `.yml`).
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &kefu_kb::ingest::extension(path), &shown)
    }

    /// Parses and checks the text of a rules file in `format` (`toml`, `yaml` or `yml`);
    /// `shown` names it in errors.
    pub fn parse(text: &str, format: &str, shown: &str) -> Result<Self, RulesError> {
        let file: RulesFile = match format {
            "toml" => toml::from_str(text).map_err(|e| invalid(shown, e.to_string()))?,
            "yaml" | "yml" => {
                serde_yaml_ng::from_str(text).map_err(|e| invalid(shown, e.to_string()))?
            }
            _ => {
                return Err(invalid(
                    shown,
                    "use a .toml, .yaml or .yml file".to_string(),
                ))
            }
        };
        let mut set = if file.builtin_rules {
            Self::builtin()
        } else {
            Self {
                rules: vec![],
                canned: vec![],
                intents: vec![],
            }
        };
        let own = Self::compile(file.rules, file.canned, shown)?;
        set.rules.extend(own.rules);
        set.canned.extend(own.canned);
        set.intents = Self::check_intents(file.intents, shown)?;
        set.sort();
        Ok(set)
    }

    /// How many rules, canned replies and intent routes the set holds.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.rules.len(), self.canned.len(), self.intents.len())
    }

    fn parse_toml(text: &str, shown: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| invalid(shown, e.to_string()))?;
        let mut set = Self::compile(file.rules, file.canned, shown)?;
        set.sort();
        Ok(set)
    }

    fn compile(
        specs: Vec<RuleSpec>,
        canned: Vec<CannedReply>,
        shown: &str,
    ) -> Result<Self, RulesError> {
        let mut rules = Vec::with_capacity(specs.len());
        for spec in specs {
            let bad = |m: String| invalid(shown, format!("rule `{}`: {m}", spec.id));
            if spec.id.trim().is_empty() {
                return Err(invalid(shown, "every rule needs an `id`".into()));
            }
            if spec.keywords.is_empty() && spec.exact.is_empty() && spec.regex.is_none() {
                return Err(bad("needs `keywords`, `exact` or `regex`".into()));
            }
            if spec.actions.is_empty() {
                return Err(bad("needs at least one action".into()));
            }
            for a in &spec.actions {
                check_action(a).map_err(|e| bad(e.to_string()))?;
            }
            let mut keywords = Vec::new();
            for k in &spec.keywords {
                let k = k.trim();
                if k.is_empty() {
                    return Err(bad("empty keyword".into()));
                }
                keywords.push((
                    k.to_string(),
                    keyword_regex(k).map_err(|e| bad(e.to_string()))?,
                ));
            }
            let regex = match &spec.regex {
                Some(r) => Some(
                    RegexBuilder::new(r)
                        .case_insensitive(true)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| bad(format!("regex: {e}")))?,
                ),
                None => None,
            };
            rules.push(Rule {
                id: spec.id,
                priority: spec.priority,
                keywords,
                exact: spec.exact.iter().map(|p| normalise(p)).collect(),
                regex,
                actions: spec.actions,
            });
        }
        for c in &canned {
            if c.title.trim().is_empty() || c.text.trim().is_empty() {
                return Err(invalid(
                    shown,
                    "canned replies need a title and a text".into(),
                ));
            }
        }
        Ok(Self {
            rules,
            canned,
            intents: vec![],
        })
    }

    fn check_intents(
        routes: Vec<IntentRoute>,
        shown: &str,
    ) -> Result<Vec<IntentRoute>, RulesError> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(routes.len());
        for mut r in routes {
            r.name = r.name.trim().to_lowercase();
            let bad = |m: String| invalid(shown, format!("intent `{}`: {m}", r.name));
            if r.name.is_empty() {
                return Err(invalid(shown, "every intent route needs a `name`".into()));
            }
            if !seen.insert(r.name.clone()) {
                return Err(bad("listed twice".into()));
            }
            if r.actions.is_empty() && r.tags.is_empty() {
                return Err(bad("needs `actions` or `tags`".into()));
            }
            for a in &r.actions {
                if matches!(a, RuleAction::Intent { .. }) {
                    return Err(bad("an intent route cannot set another intent".into()));
                }
                check_action(a).map_err(|e| bad(e.to_string()))?;
            }
            if let Some(c) = r.min_confidence {
                if !(0.0..=1.0).contains(&c) {
                    return Err(bad("min_confidence must be between 0 and 1".into()));
                }
            }
            r.tags = r.tags.iter().map(|t| t.trim().to_lowercase()).collect();
            out.push(r);
        }
        Ok(out)
    }

    /// The route for an intent, if the rules file has one.
    pub fn intent_route(&self, name: &str) -> Option<&IntentRoute> {
        self.intents.iter().find(|r| r.name == name)
    }

    fn sort(&mut self) {
        // Stable: equal priorities keep their order.
        self.rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
    }

    /// The highest-priority rule matching `text`.
    pub fn evaluate(&self, text: &str) -> Option<RuleMatch> {
        let norm = normalise(text);
        self.rules.iter().find_map(|r| {
            let matched = r
                .exact
                .iter()
                .find(|p| **p == norm)
                .cloned()
                .or_else(|| {
                    r.keywords
                        .iter()
                        .find(|(_, re)| re.is_match(text))
                        .map(|(k, _)| k.clone())
                })
                .or_else(|| {
                    r.regex
                        .as_ref()
                        .and_then(|re| re.find(text).map(|m| m.as_str().to_string()))
                })?;
            Some(RuleMatch {
                rule_id: r.id.clone(),
                matched,
                actions: r.actions.clone(),
            })
        })
    }

    pub fn canned(&self) -> &[CannedReply] {
        &self.canned
    }
}

fn invalid(path: &str, message: String) -> RulesError {
    RulesError::Invalid {
        path: path.to_string(),
        message,
    }
}

/// Latin keywords match whole words ("agent" but not "agents" or "reagent"); others (Chinese)
/// match anywhere.
fn keyword_regex(k: &str) -> Result<Regex, regex::Error> {
    let escaped = regex::escape(k);
    let latin = k.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ');
    let pattern = if latin {
        format!(r"\b{escaped}\b")
    } else {
        escaped
    };
    RegexBuilder::new(&pattern).case_insensitive(true).build()
}

/// Lower case, trimmed, without end punctuation (ASCII and full-width).
fn normalise(s: &str) -> String {
    s.trim()
        .trim_end_matches(['?', '!', '.', '？', '！', '。', '~', '～', ','])
        .trim()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_hand_off_in_both_languages() {
        let rules = RuleSet::builtin();
        for text in [
            "转人工",
            "我要人工客服！",
            "Can I talk to a human?",
            "AGENT please",
        ] {
            let m = rules.evaluate(text).expect(text);
            assert_eq!(m.rule_id, "builtin-handoff", "{text}");
            assert_eq!(m.actions, vec![RuleAction::Handoff]);
        }
        assert!(
            rules.evaluate("our agents are great").is_none(),
            "whole words"
        );
        assert!(rules.evaluate("多久发货？").is_none());
        assert_eq!(
            rules.evaluate("你好！").map(|m| m.rule_id),
            Some("builtin-greeting-zh".into())
        );
        assert_eq!(
            rules.evaluate("Hello.").map(|m| m.rule_id),
            Some("builtin-greeting-en".into())
        );
        assert!(
            rules.evaluate("hello, where is my order").is_none(),
            "exact only"
        );
        assert!(!rules.canned().is_empty());
    }

    #[test]
    fn file_rules_load_with_priorities_and_errors_name_the_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rules.yaml");
        std::fs::write(
            &path,
            "rules:\n  - id: refund\n    priority: 200\n    regex: 'refund|退款'\n    actions:\n      - type: intent\n        name: refund\n      - type: webhook\n        url: http://127.0.0.1:9/hook\n  - id: order-no\n    keywords: [\"订单号\"]\n    actions: [{type: reply, text: \"请提供订单号\"}]\ncanned:\n  - {title: t, text: x}\n",
        )
        .expect("write");
        let rules = RuleSet::load(&path).expect("load");
        let m = rules.evaluate("我要退款，也想转人工").expect("match");
        assert_eq!(m.rule_id, "refund", "priority 200 beats the handoff rule");
        assert_eq!(m.matched, "退款");
        assert_eq!(
            rules.evaluate("订单号是多少").map(|m| m.rule_id),
            Some("order-no".into())
        );
        assert!(rules.canned().iter().any(|c| c.title == "t"));

        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "[[rules]]\nid = \"x\"\nregex = \"(\"\nactions = [{ type = \"handoff\" }]\n",
        )
        .expect("write");
        let err = RuleSet::load(&bad).expect_err("bad regex").to_string();
        assert!(err.contains("rule `x`") && err.contains("regex"), "{err}");
        std::fs::write(
            &bad,
            "[[rules]]\nid = \"y\"\nkeywords = [\"a\"]\nactions = []\n",
        )
        .expect("write");
        assert!(RuleSet::load(&bad).is_err());
        std::fs::write(
            &bad,
            "[[rules]]\nid = \"y\"\nkeywords = [\"a\"]\nactions = [{ type = \"dance\" }]\n",
        )
        .expect("write");
        assert!(RuleSet::load(&bad).is_err());
    }
}
