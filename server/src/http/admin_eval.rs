//! The admin API's answer-quality eval: labelled questions uploaded (JSONL, as `kefu kb eval
//! --data`), asked one at a time as the chat asks them (behind visitors' replies) in a background
//! job whose result is the report — rates overall and per language, the coverage/precision curve
//! over the answer threshold — and every question's outcome. The measuring lives in
//! `answer_eval`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::Json;
use kefu_kb::store::validate_kb_name;
use kefu_kb::KbError;
use serde::Serialize;
use utoipa::ToSchema;

use super::admin_kb::{busy, job_error, read_upload, JobAccepted, UploadForm};
use super::auth::AdminAuth;
use super::error::ApiError;
use crate::answer_eval::{self, Outcome, Report};
use crate::state::AppState;
use crate::triage::ask_reply::{AskReply, Asked};

/// Question outcomes kept in a job's result.
const MAX_ROWS: usize = 1000;

/// An eval job's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvalResult {
    pub report: Report,
    /// Each question's outcome (the first `MAX_ROWS`): band, decision, reply, citations, the best
    /// hit and its score, whether it was right.
    #[schema(value_type = Vec<Object>)]
    pub questions: Vec<Outcome>,
}

/// `POST /v1/admin/kbs/{kb}/eval` (multipart `file`: JSONL `{"question", "expect"?,
/// "answer_contains"?, "cite"?}`): measures the knowledge base's answers as a background job.
#[utoipa::path(post, path = "/v1/admin/kbs/{kb}/eval", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "eval queued; its result is an EvalResult", body = JobAccepted)))]
pub async fn eval(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(kb): Path<String>,
    form: Multipart,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let s = super::ready(&state)?;
    validate_kb_name(&kb)?;
    let (name, bytes) = read_upload(form).await?;
    let ext = kefu_kb::ingest::extension(std::path::Path::new(&name));
    if !matches!(ext.as_str(), "jsonl" | "json" | "ndjson") {
        return Err(
            KbError::UnsupportedFile(format!("{name}: labelled questions must be .jsonl")).into(),
        );
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::invalid_input(format!("{name} is not UTF-8 text")))?;
    let items = answer_eval::parse(text.trim_start_matches('\u{feff}'), &name)
        .map_err(ApiError::invalid_input)?;
    let info = s
        .knowledge
        .store()
        .get_kb(&kb)
        .await?
        .ok_or_else(|| KbError::KbNotFound(kb.clone()))?;
    let mode = info.answer_mode.as_str();
    let conversations = Arc::clone(&s.conversations);
    let gate = Arc::clone(&state.staff_queries);
    let target = kb.clone();
    let job = state
        .jobs
        .submit("eval", &kb, Some(&name.clone()), move |handle| async move {
            let ask = |question: String| {
                let (conversations, gate, target) = (&conversations, &gate, &target);
                async move {
                    // One question at a time, behind visitors' replies.
                    let _turn = gate.acquire().await;
                    let started = Instant::now();
                    let decision = conversations.try_question(target, &question).await;
                    Asked {
                        reply: AskReply::of(&question, &decision, mode),
                        decision,
                        latency_ms: started.elapsed().as_secs_f64() * 1e3,
                    }
                }
            };
            let progress = |done: usize, total: usize| handle.progress(done as f64 / total as f64);
            let (report, mut questions) = answer_eval::measure(ask, &name, &items, &progress).await;
            questions.truncate(MAX_ROWS);
            serde_json::to_value(EvalResult { report, questions })
                .map_err(|e| job_error(ApiError::internal(e)))
        })
        .ok_or_else(busy)?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job })))
}
