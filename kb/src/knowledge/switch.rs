//! Switching a knowledge base to another encoder (a fine-tuned retrieval encoder, or back to the
//! stock model): every entry is embedded again while the old vectors keep serving, then the new
//! vectors and the knowledge base's model replace the old ones in one transaction, which a
//! running server picks up on its next query (the write generation moves).

use std::collections::HashMap;

use super::import::{content_hash, embed_records};
use super::{Knowledge, Progress};
use crate::error::{KbError, Result};
use crate::ingest::Record;
use crate::store::ReembeddedEntry;

/// What a switch did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SwitchReport {
    pub kb: String,
    pub from: String,
    pub to: String,
    pub entries: usize,
    pub vectors: usize,
    pub seconds: f64,
}

impl Knowledge {
    /// Re-embeds knowledge base `kb` with the encoder `model` (the running model or a fine-tuned
    /// encoder over it) and switches it to that encoder atomically. Refused with
    /// `KbError::Conflict` if the knowledge base changes meanwhile; nothing is written then.
    pub async fn switch_encoder(
        &self,
        kb: &str,
        model: &str,
        progress: Progress<'_>,
    ) -> Result<SwitchReport> {
        let started = std::time::Instant::now();
        let info = self
            .store
            .get_kb(kb)
            .await?
            .ok_or_else(|| KbError::KbNotFound(kb.to_string()))?;
        if info.model == model {
            return Err(KbError::InvalidInput(format!(
                "knowledge base '{kb}' already uses {model}"
            )));
        }
        let encoder = self.encoders.for_model(kb, model).await?;
        let rows = self.store.entry_records(info.id).await?;
        let expected: HashMap<i64, String> =
            rows.iter().map(|(id, _, h)| (*id, h.clone())).collect();
        let records: Vec<&Record> = rows.iter().map(|(_, r, _)| r).collect();
        let vectors = embed_records(encoder, &records, progress).await?;
        let entries: Vec<ReembeddedEntry> = rows
            .iter()
            .zip(vectors)
            .map(|((id, record, _), vectors)| ReembeddedEntry {
                entry_id: *id,
                content_hash: content_hash(record, model),
                vectors,
            })
            .collect();
        let vector_count = entries.iter().map(|e| e.vectors.len()).sum();
        let outcome = self
            .store
            .switch_model(&info, model, &expected, entries)
            .await?;
        self.apply_write(outcome).await?;
        Ok(SwitchReport {
            kb: kb.to_string(),
            from: info.model,
            to: model.to_string(),
            entries: rows.len(),
            vectors: vector_count,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::testing::HashingEmbedder;
    use crate::embed::{Embedder, TextRole};
    use crate::ingest::FileKind;
    use crate::knowledge::SourceFile;
    use std::sync::Arc;

    const TUNED: &str = "test-hashing+ft-abc";

    /// A stand-in for a fine-tuned encoder: the hashing embedder's vectors reversed, so a query
    /// embedded by one only matches vectors stored by the same one.
    struct Reversed(HashingEmbedder);

    impl Embedder for Reversed {
        fn model_name(&self) -> &str {
            TUNED
        }
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn embed(&self, texts: &[&str], role: TextRole) -> Result<Vec<Vec<f32>>> {
            let mut out = self.0.embed(texts, role)?;
            out.iter_mut().for_each(|v| v.reverse());
            Ok(out)
        }
    }

    fn loader() -> super::super::EncoderLoader {
        Arc::new(|name: &str| {
            if name == TUNED {
                Ok(Arc::new(Reversed(HashingEmbedder::new(256))) as Arc<dyn Embedder>)
            } else {
                Err(KbError::UnknownModel(name.to_string()))
            }
        })
    }

    async fn open(db: &std::path::Path, with_loader: bool) -> Knowledge {
        let k = Knowledge::open_embedded(db, Arc::new(HashingEmbedder::new(256)))
            .await
            .expect("open");
        if with_loader {
            k.with_encoder_loader(loader())
        } else {
            k
        }
    }

    fn faq() -> SourceFile {
        SourceFile {
            name: "faq.csv".into(),
            kind: FileKind::FaqCsv,
            text: "id,question,answer,alternates\n\
                   a,多久发货,24小时内发货,发货时间\n\
                   b,How do I return an item?,Within 7 days.,\n"
                .into(),
        }
    }

    const NONE: &(dyn Fn(usize, usize) + Sync) = &|_, _| {};

    #[tokio::test]
    async fn a_switched_knowledge_base_answers_with_its_encoder_in_every_process() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("kefu.db");
        let server = open(&db, true).await;
        let cli = open(&db, true).await;
        cli.import("shop", vec![faq()], NONE).await.expect("import");
        let before = server
            .query("shop", "发货时间", 3, &[])
            .await
            .expect("query");
        assert_eq!(before.hits[0].id, "a");

        let report = cli
            .switch_encoder("shop", TUNED, NONE)
            .await
            .expect("switch");
        assert_eq!(
            (
                report.from.as_str(),
                report.to.as_str(),
                report.entries,
                report.vectors
            ),
            ("test-hashing", TUNED, 2, 5)
        );
        let info = cli.store().get_kb("shop").await.expect("kb").expect("kb");
        assert_eq!(info.model, TUNED);
        // The other process reloads on its next query and embeds it with the tuned encoder: the
        // same score as before means the stored vectors were embedded by that encoder too.
        for k in [&server, &cli] {
            let after = k.query("shop", "发货时间", 3, &[]).await.expect("query");
            assert_eq!(after.hits[0].id, "a");
            assert!((after.hits[0].score - before.hits[0].score).abs() < 1e-4);
        }
        // Content hashes follow the encoder: importing the same file again embeds nothing.
        let again = cli.import("shop", vec![faq()], NONE).await.expect("import");
        assert_eq!((again.unchanged, again.vectors_embedded), (2, 0));
        // A process that cannot load the encoder says so instead of answering from mixed vectors.
        let plain = open(&db, false).await;
        let err = plain.query("shop", "发货时间", 3, &[]).await;
        assert!(matches!(err, Err(KbError::ModelMismatch { .. })), "{err:?}");

        // And back to the stock model.
        cli.switch_encoder("shop", "test-hashing", NONE)
            .await
            .expect("switch back");
        let back = plain
            .query("shop", "发货时间", 3, &[])
            .await
            .expect("query");
        assert!((back.hits[0].score - before.hits[0].score).abs() < 1e-4);
        let err = cli.switch_encoder("shop", "test-hashing", NONE).await;
        assert!(matches!(err, Err(KbError::InvalidInput(_))), "{err:?}");
        let err = cli.switch_encoder("shop", "other-model+ft-abc", NONE).await;
        assert!(matches!(err, Err(KbError::ModelMismatch { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn a_switch_is_refused_when_the_knowledge_base_changed_meanwhile() {
        let dir = tempfile::tempdir().expect("tmp");
        let k = open(&dir.path().join("kefu.db"), true).await;
        k.import("shop", vec![faq()], NONE).await.expect("import");
        let info = k.store().get_kb("shop").await.expect("kb").expect("kb");
        let rows = k.store().entry_records(info.id).await.expect("rows");
        let stale: HashMap<i64, String> = rows.iter().map(|(id, _, h)| (*id, h.clone())).collect();
        let entries = |rows: &[(i64, Record, String)]| {
            rows.iter()
                .map(|(id, _, h)| ReembeddedEntry {
                    entry_id: *id,
                    content_hash: h.clone(),
                    vectors: vec![("x".into(), vec![0.0; 256])],
                })
                .collect::<Vec<_>>()
        };
        // An import lands while the entries are being embedded again.
        let mut changed = faq();
        changed.text = changed.text.replace("24小时内发货", "48小时内发货");
        k.import("shop", vec![changed], NONE).await.expect("import");
        let err = k
            .store()
            .switch_model(&info, TUNED, &stale, entries(&rows))
            .await;
        assert!(matches!(err, Err(KbError::Conflict(_))), "{err:?}");
        let now = k.store().get_kb("shop").await.expect("kb").expect("kb");
        assert_eq!(now.model, "test-hashing");
        assert_eq!(k.list().await.expect("list")[0].vectors, 5);
        let hit = k.query("shop", "发货时间", 3, &[]).await.expect("query");
        assert_eq!(hit.hits[0].answer, "48小时内发货");
    }
}
