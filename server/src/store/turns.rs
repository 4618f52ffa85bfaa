//! Pending bot turns: finished by the reply, found when stale, leased by exactly one node.

use sqlx::Row;

use super::*;

impl Store {
    /// Ends the pending bot turn for the visitor message `seq` (the bot decided to say nothing),
    /// unless a newer message started another.
    pub async fn finish_turn(&self, conversation_id: &str, seq: u64) -> Result<()> {
        sqlx::query(
            "UPDATE conversations SET pending_turn = 0
             WHERE id = $1 AND pending_turn > 0 AND pending_turn <= $2",
        )
        .bind(conversation_id)
        .bind(seq as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    /// Bot turns recorded but not finished, in conversations untouched since `before_ms`.
    pub async fn stale_turns(&self, before_ms: i64, limit: u32) -> Result<Vec<PendingTurn>> {
        let rows = sqlx::query(
            "SELECT id, pending_turn, updated_at FROM conversations
             WHERE pending_turn > 0 AND state = 'bot' AND updated_at < $1
             ORDER BY updated_at LIMIT $2",
        )
        .bind(before_ms)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingTurn {
                    conversation_id: r.try_get("id")?,
                    seq: r.try_get::<i64, _>("pending_turn")? as u64,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }
    /// Takes a stale turn for this process: true for exactly one of several nodes racing for it
    /// (the row's `updated_at` must still be the one read).
    pub async fn lease_turn(&self, turn: &PendingTurn) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE conversations SET updated_at = $4
             WHERE id = $1 AND pending_turn = $2 AND updated_at = $3",
        )
        .bind(&turn.conversation_id)
        .bind(turn.seq as i64)
        .bind(turn.updated_at)
        .bind(now_ms().max(turn.updated_at + 1))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
