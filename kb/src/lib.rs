//! Kefu's knowledge engine: local sentence embedding (candle), knowledge-base ingestion, a vector
//! index with exact search, and retrieval with threshold bands. It knows nothing of conversations
//! or sockets: text in, scored answers out.

pub mod answer;
pub mod colloquial;
pub mod demo;
pub mod embed;
pub mod error;
mod file_sets;
pub mod files;
pub mod finetune;
pub mod index;
pub mod ingest;
pub mod intent;
pub mod knowledge;
pub mod lang;
pub mod retrieve;
pub mod store;
pub mod train;

pub use embed::{load_embedder, Embedder, TextRole, DEFAULT_MODEL};
pub use error::KbError;
pub use knowledge::{ImportReport, Knowledge, SourceFile, DEFAULT_KB};
pub use lang::Lang;
pub use retrieve::{Band, Hit, Retrieval, Thresholds};
