//! Several encoders read as one: each text's vectors from every part, end to end. Intent models
//! trained with a second encoder (`kefu intent train --also-encoder`) classify these joined
//! vectors; two models that were trained apart make different mistakes, and the head learns from
//! both.

use std::sync::Arc;

use super::{Embedder, TextRole};
use crate::error::{KbError, Result};

/// Joins the parts' names in a joined embedder's name (`multilingual-e5-small|all-minilm-l6-v2`).
pub const JOIN: char = '|';

/// The names of the encoders a (possibly joined) model name is made of, first the main one.
pub fn parts(name: &str) -> impl Iterator<Item = &str> {
    name.split(JOIN)
}

/// The encoders after the first one in a model name (none for a single encoder).
pub fn extra_parts(name: &str) -> Vec<&str> {
    parts(name).skip(1).collect()
}

/// Vectors of every part, concatenated in order; each part's own vector stays L2-normalised (the
/// whole has norm √parts), so no part drowns the others.
pub struct ConcatEmbedder {
    name: String,
    parts: Vec<Arc<dyn Embedder>>,
    dim: usize,
}

impl ConcatEmbedder {
    /// `main` followed by `extra`; a single part is returned as itself.
    pub fn join(
        main: Arc<dyn Embedder>,
        extra: Vec<Arc<dyn Embedder>>,
    ) -> Result<Arc<dyn Embedder>> {
        if extra.is_empty() {
            return Ok(main);
        }
        let parts: Vec<Arc<dyn Embedder>> = std::iter::once(main).chain(extra).collect();
        if let Some(p) = parts.iter().find(|p| p.model_name().contains(JOIN)) {
            return Err(KbError::InvalidInput(format!(
                "{} is already a joined encoder",
                p.model_name()
            )));
        }
        let name = parts
            .iter()
            .map(|p| p.model_name())
            .collect::<Vec<_>>()
            .join(&JOIN.to_string());
        let dim = parts.iter().map(|p| p.dim()).sum();
        Ok(Arc::new(Self { name, parts, dim }))
    }
}

impl Embedder for ConcatEmbedder {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str], role: TextRole) -> Result<Vec<Vec<f32>>> {
        let mut out = self.parts[0].embed(texts, role)?;
        for part in &self.parts[1..] {
            let vectors = part.embed(texts, role)?;
            if vectors.len() != out.len() {
                return Err(KbError::InvalidInput(format!(
                    "{} returned {} vectors for {} texts",
                    part.model_name(),
                    vectors.len(),
                    out.len()
                )));
            }
            for (o, v) in out.iter_mut().zip(vectors) {
                o.extend(v);
            }
        }
        Ok(out)
    }

    fn joined_parts(&self) -> Option<&[Arc<dyn Embedder>]> {
        Some(&self.parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::testing::HashingEmbedder;

    #[test]
    fn joined_vectors_are_each_parts_vector_in_order() {
        let a: Arc<dyn Embedder> = Arc::new(HashingEmbedder::new(16));
        let b: Arc<dyn Embedder> = Arc::new(HashingEmbedder::named("other", 8));
        let joined = ConcatEmbedder::join(Arc::clone(&a), vec![Arc::clone(&b)]).expect("join");
        assert_eq!(joined.dim(), 24);
        assert_eq!(joined.model_name(), format!("{}|other", a.model_name()));
        let texts = ["退货要多久", "where is my parcel"];
        let v = joined.embed(&texts, TextRole::Query).expect("ok");
        let (va, vb) = (
            a.embed(&texts, TextRole::Query).expect("ok"),
            b.embed(&texts, TextRole::Query).expect("ok"),
        );
        for i in 0..2 {
            assert_eq!(v[i][..16], va[i][..]);
            assert_eq!(v[i][16..], vb[i][..]);
        }
        assert_eq!(extra_parts(joined.model_name()), vec!["other"]);
        assert!(extra_parts(a.model_name()).is_empty());
    }

    #[test]
    fn one_part_is_itself_and_joined_parts_do_not_nest() {
        let a: Arc<dyn Embedder> = Arc::new(HashingEmbedder::new(16));
        let same = ConcatEmbedder::join(Arc::clone(&a), vec![]).expect("ok");
        assert!(Arc::ptr_eq(&a, &same));
        let b: Arc<dyn Embedder> = Arc::new(HashingEmbedder::named("other", 8));
        let joined = ConcatEmbedder::join(Arc::clone(&a), vec![b]).expect("ok");
        assert!(ConcatEmbedder::join(joined, vec![a]).is_err());
    }
}
