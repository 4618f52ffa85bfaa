//! Retrieval results and threshold bands: `answer` (confident), `suggest` (offer choices), `none`.

use serde::{Deserialize, Serialize};

/// How confident retrieval is about its best hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// The top hit clears the answer threshold and is clearly ahead of any different answer.
    Answer,
    /// Hits clear the suggest threshold: offer the top few as choices.
    Suggest,
    /// Nothing relevant enough: fall back.
    None,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Answer => "answer",
            Band::Suggest => "suggest",
            Band::None => "none",
        }
    }
}

/// Per-knowledge-base thresholds on cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Top score at or above which the bot answers.
    pub answer: f32,
    /// Top score at or above which the bot offers suggestions.
    pub suggest: f32,
    /// How far the top hit must lead the best hit with a different answer to answer outright.
    pub margin: f32,
    /// Top document-passage score at or above which the bot answers from documents.
    #[serde(default = "default_doc_answer")]
    pub doc_answer: f32,
    /// Top document-passage score at or above which the bot offers the passage.
    #[serde(default = "default_doc_suggest")]
    pub doc_suggest: f32,
}

fn default_doc_answer() -> f32 {
    Thresholds::for_model("").doc_answer
}

fn default_doc_suggest() -> f32 {
    Thresholds::for_model("").doc_suggest
}

impl Thresholds {
    /// Defaults per model, calibrated with `kefu kb eval` on the demo eval set
    /// (`tests/fixtures/answers/demo.jsonl`: paraphrases and out-of-scope questions) and the
    /// XQuAD documents, on hybrid scores (cosine of e5 vectors after language centring plus the
    /// weighted lexical match; a passage scores by its best vector, the whole chunk or one of its
    /// sentences). Passages score lower against questions than questions do, hence their own,
    /// lower thresholds. `kefu kb eval --tune` searches them on an operator's own questions.
    pub fn for_model(model: &str) -> Self {
        match crate::embed::base_model(model) {
            "all-minilm-l6-v2" => Thresholds {
                answer: 0.56,
                suggest: 0.45,
                margin: 0.03,
                doc_answer: 0.50,
                doc_suggest: 0.40,
            },
            _ => Thresholds {
                answer: 0.52,
                suggest: 0.40,
                margin: 0.04,
                doc_answer: 0.32,
                doc_suggest: 0.32,
            },
        }
    }

    /// Rejects thresholds that cannot work.
    pub fn validate(&self) -> Result<(), BadThresholds> {
        // Hybrid scores reach 1.3 (cosine + 0.3 × lexical match); up to 2 means "never".
        let in_range = |v: f32| (-1.0..=2.0).contains(&v);
        let all = [self.answer, self.suggest, self.doc_answer, self.doc_suggest];
        if !all.into_iter().all(in_range) || !(0.0..=1.0).contains(&self.margin) {
            return Err(BadThresholds::OutOfRange);
        }
        if self.suggest > self.answer || self.doc_suggest > self.doc_answer {
            return Err(BadThresholds::SuggestAboveAnswer);
        }
        Ok(())
    }
}

/// Thresholds that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadThresholds {
    #[error("thresholds must lie in [-1, 2] (hybrid scores reach 1.3) and the margin in [0, 1]")]
    OutOfRange,
    #[error("a suggest threshold must not exceed its answer threshold")]
    SuggestAboveAnswer,
}

/// One retrieved entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The entry's stable id: the FAQ `id`, else its key (`q:<question>` or `doc:<file>#n`).
    pub id: String,
    pub question: String,
    pub answer: String,
    pub score: f32,
    /// The lexical half of `score`: how much of the question's wording the entry holds (0–1).
    #[serde(default)]
    pub lexical: f32,
    pub source: String,
    pub kind: String,
    pub tags: Vec<String>,
    /// A passage's sentence whose own vector matched the query best (not the whole passage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
}

/// The answer to one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    pub query: String,
    pub band: Band,
    pub hits: Vec<Hit>,
    /// The thresholds the band was decided with (for route traces).
    pub thresholds: Thresholds,
    /// How the knowledge base answers (its setting, for the composer).
    #[serde(default)]
    pub answer_mode: crate::answer::AnswerMode,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{plan, AnswerMode};

    /// The band the composer's plan gives, without a language preference.
    fn band_for(hits: &[Hit], t: &Thresholds) -> Band {
        plan(hits, t, None, AnswerMode::Extractive).band()
    }

    fn hit(answer: &str, score: f32) -> Hit {
        Hit {
            id: answer.into(),
            question: "q".into(),
            answer: answer.into(),
            score,
            lexical: 0.0,
            source: "s".into(),
            kind: "faq".into(),
            tags: vec![],
            matched: None,
        }
    }

    const T: Thresholds = Thresholds {
        answer: 0.8,
        suggest: 0.6,
        margin: 0.05,
        doc_answer: 0.7,
        doc_suggest: 0.5,
    };

    #[test]
    fn bands_follow_thresholds() {
        assert_eq!(band_for(&[], &T), Band::None);
        assert_eq!(band_for(&[hit("a", 0.9), hit("b", 0.5)], &T), Band::Answer);
        assert_eq!(band_for(&[hit("a", 0.7)], &T), Band::Suggest);
        assert_eq!(band_for(&[hit("a", 0.59)], &T), Band::None);
        assert_eq!(band_for(&[hit("a", 0.8)], &T), Band::Answer);
    }

    #[test]
    fn close_rival_with_different_answer_demotes_to_suggest() {
        assert_eq!(
            band_for(&[hit("a", 0.9), hit("b", 0.88)], &T),
            Band::Suggest
        );
        // Same answer (e.g. duplicated FAQ): no rivalry.
        assert_eq!(
            band_for(&[hit("a", 0.9), hit("a ", 0.89), hit("b", 0.8)], &T),
            Band::Answer
        );
    }

    #[test]
    fn thresholds_validate() {
        assert!(T.validate().is_ok());
        let bad = Thresholds {
            answer: 0.5,
            suggest: 0.7,
            ..T
        };
        assert!(bad.validate().is_err());
        let never = Thresholds {
            answer: 1.5,
            suggest: 1.4,
            ..T
        };
        assert!(
            never.validate().is_ok(),
            "above every hybrid score: never answer"
        );
        assert!(Thresholds { answer: 2.5, ..T }.validate().is_err());
        assert!(Thresholds { margin: -0.1, ..T }.validate().is_err());
        assert!(Thresholds::for_model("multilingual-e5-small")
            .validate()
            .is_ok());
        assert!(Thresholds::for_model("all-minilm-l6-v2").validate().is_ok());
    }
}
