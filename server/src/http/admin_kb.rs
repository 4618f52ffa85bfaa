//! The admin API's knowledge bases: list and read them, upload files (imported as a background
//! job), browse, search, write and delete entries, thresholds and answer mode, and "try a
//! question" with the route trace. The knowledge rules live in `kefu_kb`; jobs in `jobs`.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kefu_kb::answer::AnswerMode;
use kefu_kb::ingest::{EntryKind, FileKind};
use kefu_kb::knowledge::FaqEdit;
use kefu_kb::store::{validate_kb_name, EntryFilter, KbCounts, StoredEntry, ThresholdOverrides};
use kefu_kb::{KbError, Knowledge, SourceFile, Thresholds};
use kefu_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::jobs::{JobError, JobView};
use crate::state::AppState;
use crate::triage::ask_reply::AskReply;
use crate::triage::RouteTrace;

/// Longest question "try a question" takes, in characters.
pub const MAX_QUESTION_CHARS: usize = kefu_kb::knowledge::MAX_QUERY_CHARS;
/// Longest uploaded file name kept, in characters.
const MAX_FILE_NAME_CHARS: usize = 200;

fn knowledge(state: &AppState) -> Result<Arc<Knowledge>, ApiError> {
    Ok(Arc::clone(&super::ready(state)?.knowledge))
}

/// A knowledge base with its counts and settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct KbView {
    /// Name, model and counts (as `kefu kb list --json`): `name`, `model`, `faqs`, `chunks`,
    /// `vectors`, `sources`, `created_at`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub counts: KbCounts,
    /// `faq`, `extractive` or `llm`.
    pub mode: &'static str,
    /// The thresholds in force: `answer`, `suggest`, `margin`, `doc_answer`, `doc_suggest`.
    #[schema(value_type = Object)]
    pub thresholds: Thresholds,
    /// The ones set for this knowledge base (unset ones follow the model's defaults).
    #[schema(value_type = Object)]
    pub overrides: ThresholdOverrides,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KbList {
    pub kbs: Vec<KbView>,
}

/// A knowledge base deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct KbDeleted {
    pub deleted: String,
    /// Entries deleted with it.
    pub entries: usize,
}

/// An accepted background job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobAccepted {
    /// Read it at `GET /v1/admin/jobs/{id}`.
    pub job: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryList {
    pub entries: Vec<EntryView>,
    /// Entries matching in all.
    pub total: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ThresholdsSet {
    #[schema(value_type = Object)]
    pub thresholds: Thresholds,
    #[schema(value_type = Object)]
    pub overrides: ThresholdOverrides,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModeSet {
    pub kb: String,
    pub mode: &'static str,
}

/// Every knowledge base with its counts and settings (two reads, whatever the number).
async fn kb_views(k: &Knowledge) -> Result<Vec<KbView>, ApiError> {
    let mut infos: std::collections::HashMap<String, kefu_kb::store::KbInfo> = k
        .store()
        .all_kbs()
        .await?
        .into_iter()
        .map(|i| (i.name.clone(), i))
        .collect();
    let mut views = Vec::new();
    for counts in k.list().await? {
        // A knowledge base deleted between the two reads is left out.
        let Some(info) = infos.remove(&counts.name) else {
            continue;
        };
        views.push(KbView {
            counts,
            mode: info.answer_mode.as_str(),
            thresholds: Knowledge::thresholds(&info),
            overrides: info.overrides,
        });
    }
    Ok(views)
}

/// `GET /v1/admin/kbs`.
#[utoipa::path(get, path = "/v1/admin/kbs", tag = "knowledge", security(("bearer" = [])),
    responses((status = 200, description = "every knowledge base", body = KbList)))]
pub async fn list(State(state): State<AppState>, _: AdminAuth) -> Result<Json<KbList>, ApiError> {
    let k = knowledge(&state)?;
    Ok(Json(KbList {
        kbs: kb_views(&k).await?,
    }))
}

/// `GET /v1/admin/kbs/{kb}`.
#[utoipa::path(get, path = "/v1/admin/kbs/{kb}", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base")),
    responses((status = 200, description = "counts and settings", body = KbView)))]
pub async fn get(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(kb): Path<String>,
) -> Result<Json<KbView>, ApiError> {
    let k = knowledge(&state)?;
    let view = kb_views(&k)
        .await?
        .into_iter()
        .find(|v| v.counts.name == kb)
        .ok_or(KbError::KbNotFound(kb))?;
    Ok(Json(view))
}

/// `DELETE /v1/admin/kbs/{kb}`: the knowledge base, its entries and vectors.
#[utoipa::path(delete, path = "/v1/admin/kbs/{kb}", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base")),
    responses((status = 200, description = "deleted", body = KbDeleted)))]
pub async fn delete(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(kb): Path<String>,
) -> Result<Json<KbDeleted>, ApiError> {
    let k = knowledge(&state)?;
    // `kb_not_found` when there is no such knowledge base.
    let entries = k.delete(&kb).await?;
    Ok(Json(KbDeleted {
        deleted: kb,
        entries,
    }))
}

/// `POST /v1/admin/kbs/{kb}/documents` (multipart, field `file`): an FAQ file (CSV, JSON, YAML)
/// or a document (Markdown, HTML, text, PDF, DOCX), checked for kind and size here and imported
/// into `kb` (created if needed) as a background job → `202 {"job": id}`.
#[utoipa::path(post, path = "/v1/admin/kbs/{kb}/documents", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base (created if needed)")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "import queued", body = JobAccepted)))]
pub async fn upload(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(kb): Path<String>,
    form: Multipart,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let k = knowledge(&state)?;
    validate_kb_name(&kb)?;
    let (name, bytes) = read_upload(form).await?;
    let kind = FileKind::of(FsPath::new(&name))?;
    let target = kb.clone();
    let detail = name.clone();
    let job = state
        .jobs
        .submit("import", &kb, Some(&detail), move |handle| async move {
            let source =
                tokio::task::spawn_blocking(move || SourceFile::from_bytes(&name, kind, &bytes))
                    .await
                    .map_err(|e| job_error(ApiError::internal(e)))?
                    .map_err(|e| job_error(e.into()))?;
            let progress = move |done: usize, total: usize| {
                handle.progress(if total == 0 {
                    1.0
                } else {
                    done as f64 / total as f64
                });
            };
            let report = k
                .import(&target, vec![source], &progress)
                .await
                .map_err(|e| job_error(e.into()))?;
            serde_json::to_value(report).map_err(|e| job_error(ApiError::internal(e)))
        })
        .ok_or_else(busy)?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job })))
}

/// An upload form.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; its extension says what it is (knowledge: .csv .json .yaml .yml .md .markdown
    /// .html .htm .txt .pdf .docx; chat history: .jsonl .csv).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// One uploaded file: its name and bytes (not empty).
pub(super) type Upload = (String, axum::body::Bytes);

/// The one `file` field of an upload form: its name and bytes (not empty).
pub(super) async fn read_upload(form: Multipart) -> Result<Upload, ApiError> {
    take_file(&mut read_files(form, &["file"]).await?, "file")
}

/// The required file field `key` of a form read by `read_files`.
pub(super) fn take_file(
    files: &mut std::collections::HashMap<String, Upload>,
    key: &str,
) -> Result<Upload, ApiError> {
    files.remove(key).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the form has no `{key}` field"),
        )
    })
}

/// The file fields named in `fields` (at most one each; other fields are ignored).
pub(super) async fn read_files(
    mut form: Multipart,
    fields: &[&str],
) -> Result<std::collections::HashMap<String, Upload>, ApiError> {
    let mut files = std::collections::HashMap::new();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let Some(key) = field
            .name()
            .filter(|n| fields.contains(n))
            .map(str::to_string)
        else {
            continue;
        };
        if files.contains_key(&key) {
            return Err(ApiError::invalid_input(format!(
                "send one `{key}` per upload"
            )));
        }
        let name = upload_name(field.file_name())?;
        let bytes = field.bytes().await.map_err(multipart_error)?;
        if bytes.is_empty() {
            return Err(ApiError::invalid_input(format!("{name} is empty")));
        }
        files.insert(key, (name, bytes));
    }
    Ok(files)
}

pub(super) fn job_error(e: ApiError) -> JobError {
    JobError {
        code: e.code,
        message: e.message,
    }
}

pub(super) fn busy() -> ApiError {
    ApiError::new(
        ErrorCode::Overloaded,
        "too many jobs are waiting; retry when some have finished",
    )
}

/// The file name an upload is recorded under: its last path component, without control
/// characters, at most `MAX_FILE_NAME_CHARS`.
fn upload_name(sent: Option<&str>) -> Result<String, ApiError> {
    let name = sent
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_input(
            "the `file` field needs a file name (its extension says what it is)",
        ));
    }
    if name.chars().count() > MAX_FILE_NAME_CHARS {
        return Err(ApiError::invalid_input(format!(
            "file names have at most {MAX_FILE_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

/// A multipart body the server cannot read: too large, or not multipart at all.
fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the file is over the upload limit",
        )
    } else {
        ApiError::new(ErrorCode::InvalidRequest, e.body_text())
    }
}

/// `GET /v1/admin/jobs`: remembered jobs, newest first.
#[utoipa::path(get, path = "/v1/admin/jobs", tag = "knowledge", security(("bearer" = [])),
    responses((status = 200, description = "jobs, newest first", body = JobList)))]
pub async fn jobs(State(state): State<AppState>, _: AdminAuth) -> Json<JobList> {
    Json(JobList {
        jobs: state.jobs.list(),
    })
}

/// `GET /v1/admin/jobs/{id}`.
#[utoipa::path(get, path = "/v1/admin/jobs/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, description = "the job", body = JobView)))]
pub async fn job(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    state
        .jobs
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

/// `GET /v1/admin/kbs/{kb}/entries` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// Text the question, answer or an alternate contains.
    #[serde(default)]
    pub q: Option<String>,
    /// `faq` or `chunk`.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub offset: Option<u32>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// An entry as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    pub id: i64,
    pub key: String,
    /// `faq` or `chunk` (a document passage).
    pub kind: &'static str,
    pub question: String,
    pub answer: String,
    pub alternates: Vec<String>,
    pub tags: Vec<String>,
    pub source: String,
}

impl From<StoredEntry> for EntryView {
    fn from(e: StoredEntry) -> Self {
        Self {
            id: e.id,
            key: e.key,
            kind: e.kind.as_str(),
            question: e.question,
            answer: e.answer,
            alternates: e.alternates,
            tags: e.tags,
            source: e.source,
        }
    }
}

/// `GET /v1/admin/kbs/{kb}/entries?q=&kind=&offset=&limit=`.
#[utoipa::path(get, path = "/v1/admin/kbs/{kb}/entries", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base"), EntriesQuery),
    responses((status = 200, description = "a page of entries", body = EntryList)))]
pub async fn entries(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(kb): Path<String>,
    Query(q): Query<EntriesQuery>,
) -> Result<Json<EntryList>, ApiError> {
    let k = knowledge(&state)?;
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(kind) => Some(EntryKind::parse(kind).ok_or_else(|| {
            ApiError::invalid_input(format!("kind is `faq` or `chunk`, not {kind:?}"))
        })?),
    };
    if q.q.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::invalid_input(
            "search text has at most 200 characters",
        ));
    }
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > kefu_kb::knowledge::MAX_PAGE {
        return Err(ApiError::invalid_input(format!(
            "limit must be 1-{}",
            kefu_kb::knowledge::MAX_PAGE
        )));
    }
    let filter = EntryFilter {
        text: q.q,
        kind,
        offset: q.offset.unwrap_or(0),
        limit,
    };
    let page = k.entries(&kb, &filter).await?;
    let entries = page.entries.into_iter().map(EntryView::from).collect();
    Ok(Json(EntryList {
        entries,
        total: page.total,
    }))
}

/// `GET /v1/admin/kbs/{kb}/entries/{id}`.
#[utoipa::path(get, path = "/v1/admin/kbs/{kb}/entries/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base"), ("id" = i64, Path, description = "entry id")),
    responses((status = 200, description = "the entry", body = EntryView)))]
pub async fn entry(
    State(state): State<AppState>,
    _: AdminAuth,
    Path((kb, id)): Path<(String, i64)>,
) -> Result<Json<EntryView>, ApiError> {
    let k = knowledge(&state)?;
    Ok(Json(k.entry(&kb, id).await?.into()))
}

/// An FAQ as the console writes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaqRequest {
    pub question: String,
    pub answer: String,
    #[serde(default)]
    pub alternates: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl From<FaqRequest> for FaqEdit {
    fn from(r: FaqRequest) -> Self {
        Self {
            question: r.question,
            answer: r.answer,
            alternates: r.alternates,
            tags: r.tags,
        }
    }
}

/// `POST /v1/admin/kbs/{kb}/entries`: a new FAQ (the knowledge base is created if needed).
#[utoipa::path(post, path = "/v1/admin/kbs/{kb}/entries", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base (created if needed)")), request_body = FaqRequest,
    responses((status = 201, description = "written and embedded", body = EntryView)))]
pub async fn create_entry(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(kb): Path<String>,
    ApiJson(req): ApiJson<FaqRequest>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    let k = knowledge(&state)?;
    validate_kb_name(&kb)?;
    let entry = k.put_faq(&kb, None, req.into()).await?;
    Ok((StatusCode::CREATED, Json(entry.into())))
}

/// `PUT /v1/admin/kbs/{kb}/entries/{id}`: an FAQ changed.
#[utoipa::path(put, path = "/v1/admin/kbs/{kb}/entries/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base"), ("id" = i64, Path, description = "entry id")),
    request_body = FaqRequest, responses((status = 200, description = "written and embedded", body = EntryView)))]
pub async fn update_entry(
    State(state): State<AppState>,
    _: AdminAuth,
    Path((kb, id)): Path<(String, i64)>,
    ApiJson(req): ApiJson<FaqRequest>,
) -> Result<Json<EntryView>, ApiError> {
    let k = knowledge(&state)?;
    Ok(Json(k.put_faq(&kb, Some(id), req.into()).await?.into()))
}

/// `DELETE /v1/admin/kbs/{kb}/entries/{id}`.
#[utoipa::path(delete, path = "/v1/admin/kbs/{kb}/entries/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base"), ("id" = i64, Path, description = "entry id")),
    responses((status = 204, description = "deleted")))]
pub async fn delete_entry(
    State(state): State<AppState>,
    _: AdminAuth,
    Path((kb, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let k = knowledge(&state)?;
    k.delete_entry(&kb, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/admin/kbs/{kb}/thresholds`: the ones given are set, the others follow the model's
/// defaults again (as `kefu kb thresholds`).
#[utoipa::path(put, path = "/v1/admin/kbs/{kb}/thresholds", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base")), request_body = ThresholdsRequest,
    responses((status = 200, description = "the thresholds now in force", body = ThresholdsSet)))]
pub async fn set_thresholds(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(kb): Path<String>,
    ApiJson(req): ApiJson<ThresholdsRequest>,
) -> Result<Json<ThresholdsSet>, ApiError> {
    let k = knowledge(&state)?;
    let overrides = ThresholdOverrides {
        answer: req.answer,
        suggest: req.suggest,
        margin: req.margin,
        doc_answer: req.doc_answer,
        doc_suggest: req.doc_suggest,
    };
    let thresholds = k.store().set_thresholds(&kb, &overrides).await?;
    Ok(Json(ThresholdsSet {
        thresholds,
        overrides,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsRequest {
    #[serde(default)]
    pub answer: Option<f32>,
    #[serde(default)]
    pub suggest: Option<f32>,
    #[serde(default)]
    pub margin: Option<f32>,
    #[serde(default)]
    pub doc_answer: Option<f32>,
    #[serde(default)]
    pub doc_suggest: Option<f32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// `faq`, `extractive` or `llm`.
    pub mode: String,
}

/// `PUT /v1/admin/kbs/{kb}/mode`.
#[utoipa::path(put, path = "/v1/admin/kbs/{kb}/mode", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base")), request_body = ModeRequest,
    responses((status = 200, description = "the answer mode now", body = ModeSet)))]
pub async fn set_mode(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(kb): Path<String>,
    ApiJson(req): ApiJson<ModeRequest>,
) -> Result<Json<ModeSet>, ApiError> {
    let k = knowledge(&state)?;
    let mode = AnswerMode::parse(&req.mode).ok_or_else(|| {
        ApiError::invalid_input(format!(
            "mode is `faq`, `extractive` or `llm`, not {:?}",
            req.mode
        ))
    })?;
    k.store().set_answer_mode(&kb, mode).await?;
    Ok(Json(ModeSet {
        kb,
        mode: mode.as_str(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    pub question: String,
}

/// The reply `kefu kb ask --json` prints, with the route trace behind it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskResponse {
    #[serde(flatten)]
    pub reply: AskReply,
    /// Why the bot answered so: rules, intent, retrieval hits and scores, decision.
    #[schema(value_type = Object)]
    pub trace: RouteTrace,
}

/// `POST /v1/admin/kbs/{kb}/ask`: what the bot would answer a visitor asking this first in a new
/// conversation, answered from `kb`. Runs behind visitors' replies like the staff query.
#[utoipa::path(post, path = "/v1/admin/kbs/{kb}/ask", tag = "knowledge", security(("bearer" = [])),
    params(("kb" = String, Path, description = "knowledge base")), request_body = AskRequest,
    responses((status = 200, description = "the reply and its route trace", body = AskResponse)))]
pub async fn ask(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(kb): Path<String>,
    ApiJson(req): ApiJson<AskRequest>,
) -> Result<Json<AskResponse>, ApiError> {
    let s = super::ready(&state)?;
    let question = req.question.trim();
    if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::invalid_input(format!(
            "the question needs 1-{MAX_QUESTION_CHARS} characters"
        )));
    }
    let info = s
        .knowledge
        .store()
        .get_kb(&kb)
        .await?
        .ok_or_else(|| KbError::KbNotFound(kb.clone()))?;
    let _turn = super::kb::staff_turn(&state).await?;
    let decision = s.conversations.try_question(&kb, question).await;
    Ok(Json(AskResponse {
        reply: AskReply::of(question, &decision, info.answer_mode.as_str()),
        trace: decision.trace,
    }))
}
