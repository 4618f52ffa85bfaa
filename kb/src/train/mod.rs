//! Training from chat history: import past conversations (JSONL, CSV, or Kefu's own), mine
//! question -> answer pairs into FAQ proposals for review, and find the questions the knowledge
//! base cannot answer.

pub mod history;
pub mod mine;
pub mod review;

pub use history::{HistoryConversation, HistoryMessage, ParsedHistory, Role};
pub use mine::{Gap, MineConfig, Pair, Proposal};
pub use review::{QueueReport, QueuedProposal, Status};
