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
}

impl Thresholds {
    /// Defaults per model, calibrated on the demo knowledge base's paraphrase and out-of-scope
    /// questions (see `kb/tests/retrieval_quality.rs`). They apply to e5 vectors after language
    /// centring (unrelated questions score ~0.2-0.4, paraphrases 0.45-0.95).
    pub fn for_model(model: &str) -> Self {
        match model {
            "all-minilm-l6-v2" => Thresholds {
                answer: 0.62,
                suggest: 0.45,
                margin: 0.03,
            },
            _ => Thresholds {
                answer: 0.55,
                suggest: 0.40,
                margin: 0.04,
            },
        }
    }

    /// Rejects thresholds that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let in_range = |v: f32| (-1.0..=1.0).contains(&v);
        if !in_range(self.answer) || !in_range(self.suggest) || !(0.0..=1.0).contains(&self.margin)
        {
            return Err("thresholds must lie in [-1, 1] and the margin in [0, 1]".into());
        }
        if self.suggest > self.answer {
            return Err("the suggest threshold must not exceed the answer threshold".into());
        }
        Ok(())
    }
}

/// One retrieved entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The entry's stable id: the FAQ `id`, else its key (`q:<question>` or `doc:<file>#n`).
    pub id: String,
    pub question: String,
    pub answer: String,
    pub score: f32,
    pub source: String,
    pub kind: String,
    pub tags: Vec<String>,
}

/// The answer to one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    pub query: String,
    pub band: Band,
    pub hits: Vec<Hit>,
    /// The thresholds the band was decided with (for route traces).
    pub thresholds: Thresholds,
}

/// Decides the band for hits sorted best first. Hits with the same answer text count as one
/// answer, so a question and its alternates never compete with each other.
pub fn band_for(hits: &[Hit], t: &Thresholds) -> Band {
    let Some(top) = hits.first() else {
        return Band::None;
    };
    if top.score >= t.answer {
        let rival = hits
            .iter()
            .skip(1)
            .find(|h| h.answer.trim() != top.answer.trim());
        let clear = rival.is_none_or(|r| top.score - r.score >= t.margin);
        if clear {
            return Band::Answer;
        }
        return Band::Suggest;
    }
    if top.score >= t.suggest {
        Band::Suggest
    } else {
        Band::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(answer: &str, score: f32) -> Hit {
        Hit {
            id: answer.into(),
            question: "q".into(),
            answer: answer.into(),
            score,
            source: "s".into(),
            kind: "faq".into(),
            tags: vec![],
        }
    }

    const T: Thresholds = Thresholds {
        answer: 0.8,
        suggest: 0.6,
        margin: 0.05,
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
            margin: 0.0,
        };
        assert!(bad.validate().is_err());
        assert!(Thresholds::for_model("multilingual-e5-small")
            .validate()
            .is_ok());
        assert!(Thresholds::for_model("all-minilm-l6-v2").validate().is_ok());
    }
}
