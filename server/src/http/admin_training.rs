//! The admin API's training: chat history uploaded (imported as a background job), FAQ proposals
//! mined from it (a job), and the review queue (list, edit, approve into a knowledge base,
//! reject), and the intent model versions (train one from an uploaded file as a job, list them
//! with their evaluation, activate, roll back).
//! The rules live in `training`, `kefu_kb::train` and `kefu_kb::intent`.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kefu_kb::knowledge::DEFAULT_KB;
use kefu_kb::store::validate_kb_name;
use kefu_kb::train::review::{self, QueuedProposal, Status};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin_kb::{
    busy, job_error, read_files, read_upload, take_file, JobAccepted, UploadForm,
};
use super::auth::AdminAuth;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::state::AppState;
use crate::training::intents::{IntentEval, IntentSettings, IntentTrainer, TrainProgress};
use crate::training::MineSettings;

/// `POST /v1/admin/training/history` (multipart field `file`): past conversations as JSONL or
/// CSV, imported as a background job (idempotent; bad records are skipped and listed).
#[utoipa::path(post, path = "/v1/admin/training/history", tag = "training", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "import queued", body = JobAccepted)))]
pub async fn upload_history(
    State(state): State<AppState>,
    _: AdminAuth,
    form: Multipart,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let s = super::ready(&state)?;
    let (name, bytes) = read_upload(form).await?;
    let ext = kefu_kb::ingest::extension(std::path::Path::new(&name));
    if !matches!(ext.as_str(), "jsonl" | "json" | "ndjson" | "csv") {
        return Err(kefu_kb::KbError::UnsupportedFile(format!(
            "{name}: chat history must be .jsonl or .csv"
        ))
        .into());
    }
    let training = s.training.clone();
    let detail = name.clone();
    let job = state
        .jobs
        .submit("history", "training", Some(&detail), move |_| async move {
            let report = training
                .import_history(&name, &bytes)
                .await
                .map_err(|e| job_error(e.into()))?;
            serde_json::to_value(report).map_err(|e| job_error(ApiError::internal(e)))
        })
        .ok_or_else(busy)?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job })))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MineRequest {
    /// The knowledge base whose answers are checked (default `default`).
    #[serde(default)]
    pub kb: Option<String>,
    /// Questions asked at least this often are proposed (default 2).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub min_support: Option<usize>,
    /// Cosine similarity at which questions count as the same (default 0.72).
    #[serde(default)]
    pub similarity: Option<f32>,
}

/// `POST /v1/admin/training/mine`: mines FAQ proposals from the imported history into the review
/// queue, as a background job.
#[utoipa::path(post, path = "/v1/admin/training/mine", tag = "training", security(("bearer" = [])),
    request_body = MineRequest, responses((status = 202, description = "mining queued", body = JobAccepted)))]
pub async fn mine(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<MineRequest>,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let s = super::ready(&state)?;
    let kb = req.kb.unwrap_or_else(|| DEFAULT_KB.to_string());
    validate_kb_name(&kb)?;
    let defaults = MineSettings::default();
    let settings = MineSettings {
        min_support: req.min_support.unwrap_or(defaults.min_support),
        similarity: req.similarity.unwrap_or(defaults.similarity),
    };
    settings.check()?;
    let training = s.training.clone();
    let target = kb.clone();
    let job = state
        .jobs
        .submit("mine", &kb, None, move |handle| async move {
            let progress = move |done: usize, total: usize| {
                handle.progress(if total == 0 {
                    1.0
                } else {
                    done as f64 / total as f64
                })
            };
            let report = training
                .mine(&target, settings, &progress)
                .await
                .map_err(|e| job_error(e.into()))?;
            serde_json::to_value(report).map_err(|e| job_error(ApiError::internal(e)))
        })
        .ok_or_else(busy)?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProposalsQuery {
    /// `pending`, `approved` or `rejected` (default all).
    #[serde(default)]
    pub status: Option<String>,
}

/// A proposal in the review queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalView {
    pub id: i64,
    /// `zh` or `en`.
    pub lang: String,
    pub question: String,
    /// Other ways visitors asked it.
    pub alternates: Vec<String>,
    pub answer: String,
    /// How many conversations asked it.
    pub support: i64,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// The knowledge base it was approved into.
    pub kb: Option<String>,
    /// How many past conversations are kept as its examples
    /// (`GET /v1/admin/training/proposals/{id}/conversations`).
    pub examples: usize,
}

impl From<QueuedProposal> for ProposalView {
    fn from(p: QueuedProposal) -> Self {
        Self {
            examples: p.conversations.len(),
            id: p.id,
            lang: p.lang,
            question: p.question,
            alternates: p.alternates,
            answer: p.answer,
            support: p.support,
            status: p.status.as_str().to_string(),
            kb: p.kb,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalList {
    pub proposals: Vec<ProposalView>,
}

/// `GET /v1/admin/training/proposals?status=pending`: largest support first.
#[utoipa::path(get, path = "/v1/admin/training/proposals", tag = "training", security(("bearer" = [])),
    params(ProposalsQuery), responses((status = 200, description = "the review queue", body = ProposalList)))]
pub async fn proposals(
    State(state): State<AppState>,
    _: AdminAuth,
    Query(q): Query<ProposalsQuery>,
) -> Result<Json<ProposalList>, ApiError> {
    let s = super::ready(&state)?;
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(Status::parse)
        .transpose()?;
    let list = review::list(s.knowledge.store(), status).await?;
    Ok(Json(ProposalList {
        proposals: list.into_iter().map(ProposalView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalEdit {
    #[serde(default)]
    pub question: Option<String>,
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub alternates: Option<Vec<String>>,
}

/// `PUT /v1/admin/training/proposals/{id}`: changes its text (an approved one is re-imported).
#[utoipa::path(put, path = "/v1/admin/training/proposals/{id}", tag = "training", security(("bearer" = [])),
    params(("id" = i64, Path, description = "proposal id")), request_body = ProposalEdit,
    responses((status = 200, description = "changed", body = ProposalView)))]
pub async fn edit(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<ProposalEdit>,
) -> Result<Json<ProposalView>, ApiError> {
    let s = super::ready(&state)?;
    let too_long = [&req.question, &req.answer]
        .into_iter()
        .flatten()
        .any(|t| t.chars().count() > kefu_kb::ingest::faq::MAX_FIELD_CHARS)
        || req.alternates.as_ref().is_some_and(|a| a.len() > 50);
    if too_long {
        return Err(ApiError::invalid_input("a field is too long"));
    }
    let k = &s.knowledge;
    let p = review::edit(k.store(), k, id, req.question, req.answer, req.alternates).await?;
    Ok(Json(p.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The knowledge base to add it to (default `default`).
    #[serde(default)]
    pub kb: Option<String>,
}

/// `POST /v1/admin/training/proposals/{id}/approve`: adds it to a knowledge base as an FAQ.
#[utoipa::path(post, path = "/v1/admin/training/proposals/{id}/approve", tag = "training", security(("bearer" = [])),
    params(("id" = i64, Path, description = "proposal id")), request_body = ApproveRequest,
    responses((status = 200, description = "approved and imported", body = ProposalView)))]
pub async fn approve(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<ApproveRequest>,
) -> Result<Json<ProposalView>, ApiError> {
    let s = super::ready(&state)?;
    let kb = req.kb.unwrap_or_else(|| DEFAULT_KB.to_string());
    validate_kb_name(&kb)?;
    let k = &s.knowledge;
    let (p, _) = review::approve(k.store(), k, id, &kb).await?;
    Ok(Json(p.into()))
}

/// The past conversations a proposal was mined from.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExampleConversations {
    /// Each `{"id": "source file/conversation id", "messages": [{"role": "visitor"|"agent"|"bot",
    /// "text", "time"?}]}`.
    #[schema(value_type = Vec<Object>)]
    pub conversations: Vec<kefu_kb::train::HistoryConversation>,
}

/// `GET /v1/admin/training/proposals/{id}/conversations`: the past conversations it was mined
/// from (a few), so the reviewer sees how visitors asked and agents answered.
#[utoipa::path(get, path = "/v1/admin/training/proposals/{id}/conversations", tag = "training", security(("bearer" = [])),
    params(("id" = i64, Path, description = "proposal id")),
    responses((status = 200, description = "example conversations", body = ExampleConversations)))]
pub async fn examples(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<i64>,
) -> Result<Json<ExampleConversations>, ApiError> {
    let s = super::ready(&state)?;
    let store = s.knowledge.store();
    let p = review::get(store, id).await?;
    Ok(Json(ExampleConversations {
        conversations: kefu_kb::train::history::load_named(store, &p.conversations).await?,
    }))
}

/// `POST /v1/admin/training/proposals/{id}/reject`.
#[utoipa::path(post, path = "/v1/admin/training/proposals/{id}/reject", tag = "training", security(("bearer" = [])),
    params(("id" = i64, Path, description = "proposal id")),
    responses((status = 200, description = "rejected", body = ProposalView)))]
pub async fn reject(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<i64>,
) -> Result<Json<ProposalView>, ApiError> {
    let s = super::ready(&state)?;
    Ok(Json(review::reject(s.knowledge.store(), id).await?.into()))
}

/// An intent model version.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentVersion {
    pub version: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The encoder it classifies with (`<model>+ft-…` when fine-tuned).
    pub embedding_model: String,
    pub intents: usize,
    pub train_examples: usize,
    /// Whether the head has an output trained on the data's `oos` examples.
    pub oos_class: bool,
    /// Top probability under which a message is out of scope, and how it was chosen.
    pub threshold: f32,
    pub calibration: String,
    /// In-scope accuracy, out-of-scope recall and precision, macro F1 on held-out data.
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<kefu_kb::intent::metrics::Metrics>,
    /// The file it was trained on.
    pub data_file: String,
    /// Its evaluation on the test file given when it was trained, if one was.
    pub eval: Option<IntentEval>,
}

/// Intent model versions, oldest first, and which is active.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentVersions {
    pub active: Option<String>,
    /// Versions activated, oldest first (rollback returns to the one before the last).
    pub history: Vec<String>,
    pub versions: Vec<IntentVersion>,
}

fn intent_versions(training: &crate::training::Training) -> Result<IntentVersions, ApiError> {
    let registry = training.intents();
    let state = registry.state()?;
    let trainer = training.intent_trainer();
    let versions = registry
        .list()?
        .into_iter()
        .map(|m| IntentVersion {
            eval: trainer.eval_of(&m.version),
            data_file: std::path::Path::new(&m.data_file)
                .file_name()
                .map_or_else(|| m.data_file.clone(), |n| n.to_string_lossy().to_string()),
            intents: m.labels.len(),
            version: m.version,
            created_at: m.created_at,
            embedding_model: m.embedding_model,
            train_examples: m.train_examples,
            oos_class: m.oos_class,
            threshold: m.threshold,
            calibration: m.calibration,
            metrics: m.metrics,
        })
        .collect();
    Ok(IntentVersions {
        active: state.active,
        history: state.history,
        versions,
    })
}

/// `GET /v1/admin/intents`: the intent model versions with their evaluation, and the active one.
#[utoipa::path(get, path = "/v1/admin/intents", tag = "training", security(("bearer" = [])),
    responses((status = 200, description = "versions and activation", body = IntentVersions)))]
pub async fn intents(
    State(state): State<AppState>,
    _: AdminAuth,
) -> Result<Json<IntentVersions>, ApiError> {
    let s = super::ready(&state)?;
    let training = s.training.clone();
    training.intent_trainer().pull().await?;
    tokio::task::spawn_blocking(move || intent_versions(&training))
        .await
        .map_err(ApiError::internal)?
        .map(Json)
}

/// `POST /v1/admin/intents/{version}/activate`: the bot classifies with it within seconds.
#[utoipa::path(post, path = "/v1/admin/intents/{version}/activate", tag = "training", security(("bearer" = [])),
    params(("version" = String, Path, description = "e.g. v3")),
    responses((status = 200, description = "activated", body = IntentVersions)))]
pub async fn activate_intents(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(version): Path<String>,
) -> Result<Json<IntentVersions>, ApiError> {
    let s = super::ready(&state)?;
    let training = s.training.clone();
    training.intent_trainer().activate(&version).await?;
    tokio::task::spawn_blocking(move || intent_versions(&training))
        .await
        .map_err(ApiError::internal)?
        .map(Json)
}

/// `POST /v1/admin/intents/rollback`: back to the version active before the current one.
#[utoipa::path(post, path = "/v1/admin/intents/rollback", tag = "training", security(("bearer" = [])),
    responses((status = 200, description = "rolled back", body = IntentVersions)))]
pub async fn rollback_intents(
    State(state): State<AppState>,
    _: AdminAuth,
) -> Result<Json<IntentVersions>, ApiError> {
    let s = super::ready(&state)?;
    let training = s.training.clone();
    training.intent_trainer().rollback().await?;
    tokio::task::spawn_blocking(move || intent_versions(&training))
        .await
        .map_err(ApiError::internal)?
        .map(Json)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrainQuery {
    /// Fine-tune the encoder's top layers on the data first (minutes on a CPU).
    #[serde(default)]
    pub fine_tune: Option<bool>,
    /// Activate the new version when it is trained (the first version always is).
    #[serde(default)]
    pub activate: Option<bool>,
    /// Train the data's `oos` examples as one more output of the head, which takes probability
    /// away from the intents on messages like them (pays where they resemble the out-of-scope
    /// messages visitors send).
    #[serde(default)]
    pub oos_class: Option<bool>,
    /// A second stock encoder whose vectors the head reads beside the main encoder's
    /// (`all-minilm-l6-v2`; more accurate on English, a second forward pass per message).
    #[serde(default)]
    pub also_encoder: Option<String>,
}

/// The intent training form: labelled utterances, and optionally a test file.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IntentTrainForm {
    /// Labelled utterances, JSONL (`{"text", "intent"}`) or CSV (`text,intent`); intent `oos`
    /// marks out-of-scope examples.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Labelled utterances the new version is evaluated on (kept with the version).
    #[schema(value_type = Option<String>, format = Binary)]
    test: Option<Vec<u8>>,
}

/// `POST /v1/admin/intents/train?fine_tune=&activate=&oos_class=&also_encoder=` (multipart
/// `file`, optional `test`):
/// trains a new intent model version as a background job; its result is the training report.
#[utoipa::path(post, path = "/v1/admin/intents/train", tag = "training", security(("bearer" = [])),
    params(TrainQuery), request_body(content = IntentTrainForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "training queued", body = JobAccepted)))]
pub async fn train_intents(
    State(state): State<AppState>,
    _: AdminAuth,
    Query(q): Query<TrainQuery>,
    form: Multipart,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let s = super::ready(&state)?;
    if let Some(name) = &q.also_encoder {
        kefu_kb::embed::ModelName::parse(name)?;
    }
    let mut files = read_files(form, &["file", "test"]).await?;
    let (name, bytes) = take_file(&mut files, "file")?;
    IntentTrainer::check_data_name(&name)?;
    let test = files.remove("test");
    if let Some((test_name, _)) = &test {
        IntentTrainer::check_data_name(test_name)?;
    }
    let trainer = s.training.intent_trainer().clone();
    let detail = name.clone();
    let job = state
        .jobs
        .submit(
            "intents",
            "intents",
            Some(&detail),
            move |handle| async move {
                let fail = |e: kefu_kb::KbError| job_error(e.into());
                let data = trainer.keep_upload(&name, &bytes).map_err(fail)?;
                let test = match test {
                    Some((n, b)) => Some(trainer.keep_upload(&n, &b).map_err(fail)?),
                    None => None,
                };
                let settings = IntentSettings {
                    head: kefu_kb::intent::TrainConfig {
                        oos_class: q.oos_class.unwrap_or(false),
                        ..Default::default()
                    },
                    fine_tune: q
                        .fine_tune
                        .unwrap_or(false)
                        .then(kefu_kb::finetune::FineTuneConfig::default),
                    activate: q.activate.unwrap_or(false),
                    also_encoder: q.also_encoder.clone(),
                    test,
                    ..IntentSettings::default()
                };
                let progress = TrainProgress::new(&settings);
                let observe =
                    move |e: kefu_kb::intent::Event| handle.progress(progress.observe(&e));
                let report = trainer
                    .train(&data, &settings, &observe)
                    .await
                    .map_err(fail)?;
                serde_json::to_value(report).map_err(|e| job_error(ApiError::internal(e)))
            },
        )
        .ok_or_else(busy)?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job })))
}
