//! The Qdrant `VectorIndex` against a real Qdrant server. Runs when `QDRANT_URL` (gRPC, e.g.
//! `http://127.0.0.1:6334`) is set; otherwise it prints that it was skipped.

#[cfg(feature = "qdrant")]
#[tokio::test]
async fn qdrant_index_upserts_searches_filters_and_removes() {
    use kefu_kb::index::qdrant::QdrantIndex;
    use kefu_kb::index::{IndexedVector, SearchFilter, VectorIndex};

    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!(
            "skipped: QDRANT_URL is not set (point it at a Qdrant gRPC endpoint to run this test)"
        );
        return;
    };
    let collection = format!("kefu_test_{}", std::process::id());
    let idx = QdrantIndex::connect(&url, &collection, 3)
        .await
        .expect("connect");
    let v = |x: f32, y: f32, z: f32| {
        let n = (x * x + y * y + z * z).sqrt();
        vec![x / n, y / n, z / n]
    };
    let item = |vector_id, entry_id, kb_id, tags: &[&str], vector| IndexedVector {
        vector_id,
        entry_id,
        kb_id,
        tags: tags.iter().map(|s| s.to_string()).collect(),
        vector,
    };
    idx.upsert(vec![
        item(1, 10, 1, &["ship"], v(1.0, 0.0, 0.0)),
        item(2, 10, 1, &["ship"], v(0.9, 0.1, 0.0)),
        item(3, 11, 1, &["pay"], v(0.7, 0.7, 0.0)),
        item(4, 12, 2, &[], v(1.0, 0.0, 0.0)),
    ])
    .await
    .expect("upsert");
    let q = v(1.0, 0.05, 0.0);
    let hits = idx
        .search(
            &q,
            &SearchFilter {
                kb_id: 1,
                tags: vec![],
            },
            5,
        )
        .await
        .expect("search");
    assert_eq!(
        hits.iter().map(|h| h.entry_id).collect::<Vec<_>>(),
        vec![10, 11]
    );
    let tagged = idx
        .search(
            &q,
            &SearchFilter {
                kb_id: 1,
                tags: vec!["pay".into()],
            },
            5,
        )
        .await
        .expect("search");
    assert_eq!(
        tagged.iter().map(|h| h.entry_id).collect::<Vec<_>>(),
        vec![11]
    );
    // An entry found only by the lexical index gets its best vector's cosine (entry 10: its
    // closer vector); entries of another knowledge base are not scored.
    let scored = idx
        .score_entries(
            &q,
            &SearchFilter {
                kb_id: 1,
                tags: vec![],
            },
            &[10, 12],
        )
        .await
        .expect("score entries");
    assert_eq!(scored.len(), 1, "{scored:?}");
    assert_eq!((scored[0].entry_id, scored[0].vector_id), (10, 1));
    idx.remove_entries(&[10]).await.expect("remove");
    assert_eq!(idx.len().await.expect("len"), 2);
}

#[cfg(not(feature = "qdrant"))]
#[test]
fn qdrant_index_needs_the_feature() {
    eprintln!(
        "skipped: built without the `qdrant` feature (cargo test -p kefu-kb --features qdrant)"
    );
}
