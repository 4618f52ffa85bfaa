//! The knowledge engine's one error enum: user errors (bad files, unknown names) apart from internal ones.

use std::path::PathBuf;

/// Everything that can go wrong inside `kefu-kb`.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// The model's files are not on disk; the message names the script that fetches them.
    #[error("model '{name}' is not installed (looked in {dir}): run scripts/fetch-models first")]
    ModelMissing { name: String, dir: PathBuf },
    /// A model name that Kefu does not know.
    #[error("unknown model '{0}' (available: multilingual-e5-small, all-minilm-l6-v2)")]
    UnknownModel(String),
    /// A model file exists but cannot be read as the format it claims.
    #[error("invalid model file {path}: {reason}")]
    ModelFormat { path: PathBuf, reason: String },
    /// Tensor computation failed.
    #[error("inference failed: {0}")]
    Inference(#[from] candle_core::Error),
    /// Tokenizer construction or encoding failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A bad record in an imported file, with its location.
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    /// An import path whose kind Kefu cannot read.
    #[error("unsupported file type: {0} (supported: .csv .json .yaml .yml .md .markdown .html .htm .txt .pdf .docx)")]
    UnsupportedFile(String),
    /// A knowledge base name that does not exist.
    #[error("knowledge base '{0}' not found")]
    KbNotFound(String),
    /// A knowledge base embedded with another model than the one loaded.
    #[error("knowledge base '{kb}' was embedded with model '{built}' but '{active}' is loaded: pass --model {built}, switch it with `kefu kb encoder activate`, or delete and re-import it")]
    ModelMismatch {
        kb: String,
        built: String,
        active: String,
    },
    /// No record with this id (an entry, a proposal).
    #[error("{0}")]
    NotFound(String),
    /// The knowledge base changed under a long operation, which wrote nothing.
    #[error("{0}")]
    Conflict(String),
    /// A caller-supplied value out of range or malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The SQLite/PostgreSQL store failed.
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    /// A stored row that cannot be read back (e.g. a damaged JSON column).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Schema migration failed.
    #[error("storage migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The vector index backend failed.
    #[error("vector index: {0}")]
    Index(String),
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl KbError {
    /// True when the caller (not the system) is at fault: the error's message is safe to show.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            KbError::Parse { .. }
                | KbError::UnsupportedFile(_)
                | KbError::KbNotFound(_)
                | KbError::NotFound(_)
                | KbError::InvalidInput(_)
                | KbError::UnknownModel(_)
                | KbError::ModelMismatch { .. }
                | KbError::Conflict(_)
        )
    }

    /// Stable snake_case code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            KbError::ModelMissing { .. } => "model_missing",
            KbError::UnknownModel(_) => "unknown_model",
            KbError::ModelFormat { .. } => "model_format",
            KbError::Inference(_) => "inference_failed",
            KbError::Tokenizer(_) => "tokenizer_failed",
            KbError::Parse { .. } => "parse_error",
            KbError::UnsupportedFile(_) => "unsupported_file",
            KbError::KbNotFound(_) => "kb_not_found",
            KbError::NotFound(_) => "not_found",
            KbError::ModelMismatch { .. } => "model_mismatch",
            KbError::InvalidInput(_) => "invalid_input",
            KbError::Conflict(_) => "conflict",
            KbError::Storage(_) | KbError::Migrate(_) | KbError::Corrupt(_) => "storage_error",
            KbError::Index(_) => "index_error",
            KbError::Io { .. } => "io_error",
        }
    }
}

/// Why one imported record (a FAQ row, a labelled example, a line of chat history) was refused;
/// shown with the record's file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    /// The record is not the shape the format expects (`expected` names it).
    #[error("not a {expected}: {detail}")]
    Malformed {
        expected: &'static str,
        detail: String,
    },
    #[error("text and intent must be strings")]
    NotStrings,
    #[error("intent must be one word of at most {max} characters")]
    BadIntent { max: usize },
    #[error("role must be visitor, agent or bot (got {0:?})")]
    BadRole(String),
    #[error("id must be a non-empty string or a number")]
    BadId,
    #[error("conversation {id:?} already appears on line {first_line}")]
    DuplicateConversation { id: String, first_line: usize },
    #[error("message {index}: {source}")]
    InMessage {
        index: usize,
        source: Box<RecordError>,
    },
}

/// Shorthand used across the crate.
pub type Result<T, E = KbError> = std::result::Result<T, E>;
