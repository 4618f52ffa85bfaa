//! A deterministic, model-free embedder for unit tests of logic (store, index, retrieval banding).
//! It hashes character bigrams into a fixed-size vector: texts sharing characters score high.
//! Never used to serve users; the real models are tested separately.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Embedder, TextRole};
use crate::error::Result;

/// Character-bigram hashing embedder.
pub struct HashingEmbedder {
    name: &'static str,
    dim: usize,
}

impl HashingEmbedder {
    pub fn new(dim: usize) -> Self {
        Self::named("test-hashing", dim)
    }

    /// The same embedder under another model name (a second, different model in tests).
    pub fn named(name: &'static str, dim: usize) -> Self {
        Self {
            name,
            dim: dim.max(8),
        }
    }

    fn one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        let chars: Vec<char> = text
            .to_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for w in chars.windows(2) {
            let h = (u64::from(w[0]) * 31 + u64::from(w[1])).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            v[(h % self.dim as u64) as usize] += 1.0;
        }
        if chars.len() == 1 {
            v[(u64::from(chars[0]) % self.dim as u64) as usize] += 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

impl Embedder for HashingEmbedder {
    fn model_name(&self) -> &str {
        self.name
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed(&self, texts: &[&str], _role: TextRole) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.one(t)).collect())
    }
}

/// A `HashingEmbedder` that counts the texts it is asked to embed (for tests of caching).
pub struct CountingEmbedder {
    inner: HashingEmbedder,
    texts: AtomicUsize,
}

impl CountingEmbedder {
    pub fn new(inner: HashingEmbedder) -> Self {
        Self {
            inner,
            texts: AtomicUsize::new(0),
        }
    }

    /// Texts embedded so far.
    pub fn count(&self) -> usize {
        self.texts.load(Ordering::SeqCst)
    }
}

impl Embedder for CountingEmbedder {
    fn model_name(&self) -> &str {
        self.inner.model_name()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn embed(&self, texts: &[&str], role: TextRole) -> Result<Vec<Vec<f32>>> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed(texts, role)
    }
}
