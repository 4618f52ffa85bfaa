//! The OpenAPI 3.1 document of the REST API (`GET /v1/openapi.json`), generated from the
//! handlers' `#[utoipa::path]` annotations and their request and response types. Every operation
//! also documents the error body (`default` response) with the one error vocabulary, whose codes
//! and HTTP statuses come from `kefu_protocol::ErrorCode` and `error::status_of`.

use std::sync::OnceLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use kefu_protocol::ErrorCode;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{
    admin, admin_eval, admin_hours, admin_kb, admin_keys, admin_llm, admin_privacy, admin_rules,
    admin_training, admin_webhooks, agent, attachments, channels, kb, visitor,
};

/// The error body every failed request gets.
#[derive(serde::Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A code from the error vocabulary (see the description above).
    #[schema(schema_with = error_code_schema)]
    pub code: String,
    /// For people; never parse it.
    pub message: String,
}

/// The error codes as a string enum (every code the server sends).
pub fn error_code_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            ErrorCode::ALL
                .iter()
                .filter(|c| **c != ErrorCode::Unknown)
                .map(|c| c.as_str()),
        ))
        .into()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kefu",
        description = "The REST API of a Kefu server: visitors, agents, operators (admin). Tokens go in `Authorization: Bearer …`: a visitor token from `POST /v1/visitor/sessions`, an agent token from `POST /v1/agent/login`, an operator's from `POST /v1/admin/login` or an admin API key from `kefu admin-key`. The chat itself runs over the WebSocket at `/v1/ws` (docs/protocol.md)."
    ),
    paths(
        super::healthz, super::readyz, super::metrics,
        visitor::create_session, visitor::create_conversation, visitor::messages, visitor::rate,
        attachments::upload, attachments::file, attachments::thumbnail,
        agent::login, agent::logout, agent::agents, agent::canned, agent::list, agent::transcript,
        agent::claim, agent::send_message, agent::hand_back, agent::resolve, agent::transfer,
        agent::suggestions,
        kb::query,
        admin::login, admin::sites, admin::create_site, admin::agents, admin::create_agent,
        admin::revoke_agent, admin::conversations, admin::transcript, admin::analytics,
        admin_kb::list, admin_kb::get, admin_kb::delete, admin_kb::upload, admin_kb::jobs,
        admin_kb::job, admin_kb::entries, admin_kb::entry, admin_kb::create_entry,
        admin_kb::update_entry, admin_kb::delete_entry, admin_kb::set_thresholds,
        admin_kb::set_mode, admin_kb::ask, admin_eval::eval,
        admin_training::upload_history, admin_training::mine, admin_training::proposals,
        admin_training::edit, admin_training::approve, admin_training::reject,
        admin_training::intents, admin_training::activate_intents, admin_training::rollback_intents,
        admin_training::train_intents, admin_training::examples,
        admin_rules::get, admin_rules::validate, admin_rules::replace,
        admin_llm::settings, admin_llm::test, admin_llm::replace, admin_llm::clear, admin_keys::list, admin_keys::create,
        admin_keys::revoke, admin_webhooks::list, admin_webhooks::create, admin_webhooks::remove,
        admin_webhooks::rotate, admin_webhooks::enable, admin_webhooks::deliveries,
        admin_privacy::erase, admin_privacy::get_retention, admin_privacy::set_retention, admin_privacy::audit,
        admin_hours::get, admin_hours::set, admin_hours::remove,
        attachments::get_limits, attachments::set_limits,
        channels::api_message, channels::api_handoff, channels::wechat_verify,
        channels::wechat_message,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Conventions),
    tags(
        (name = "visitor", description = "Visitor sessions, conversations and ratings"),
        (name = "agent", description = "The agent console"),
        (name = "knowledge", description = "Knowledge bases: import, entries, thresholds, try a question"),
        (name = "training", description = "Training on past chats: history, mining, the FAQ review queue"),
        (name = "admin", description = "Operators: sites, accounts, transcripts, analytics"),
        (name = "channels", description = "Other channels: the API channel (your users' messages in, replies out as event webhooks) and WeChat Official Accounts"),
        (name = "probes", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// What every operation shares: the bearer scheme, the error body as the `default` response,
/// and the table of error codes with their statuses in the description.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let error = ResponseBuilder::new()
            .description("an error from the vocabulary: `{\"error\": {\"code\", \"message\"}}`")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                op.responses
                    .responses
                    .entry("default".to_string())
                    .or_insert_with(|| RefOr::T(error.clone()));
            }
        }
        let mut table = String::from("\n\n| code | HTTP status |\n|---|---|\n");
        for code in ErrorCode::ALL.iter().filter(|c| **c != ErrorCode::Unknown) {
            let status = super::error::status_of(*code);
            table.push_str(&format!("| `{}` | {} |\n", code.as_str(), status.as_u16()));
        }
        if let Some(d) = doc.info.description.as_mut() {
            d.push_str(&table);
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".into()))
}

/// `GET /v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-cache"),
        ],
        document_json(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the router serves under `/v1/` (but the WebSocket and the document itself) is
    /// in the document, with the error body as its default response.
    #[test]
    fn the_document_covers_the_rest_api() {
        let doc: serde_json::Value = serde_json::from_str(document_json()).expect("json");
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
        let paths = doc["paths"].as_object().expect("paths");
        for path in [
            "/v1/visitor/sessions",
            "/v1/conversations/{id}/rating",
            "/v1/agent/conversations/{id}/claim",
            "/v1/admin/login",
            "/v1/admin/kbs/{kb}/documents",
            "/v1/admin/kbs/{kb}/ask",
            "/v1/admin/jobs/{id}",
            "/v1/admin/analytics",
        ] {
            assert!(paths.contains_key(path), "{path} is documented");
        }
        let routes = include_str!("mod.rs");
        for (i, _) in routes.match_indices("\"/v1/") {
            let path = routes[i + 1..].split('"').next().unwrap_or_default();
            if path == "/v1/ws" || path == "/v1/openapi.json" {
                continue;
            }
            assert!(
                paths.contains_key(path),
                "route {path} is missing from the document"
            );
        }
        let errors = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
        assert!(errors
            .as_array()
            .is_some_and(|e| e.iter().any(|c| c == "kb_not_found")));
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("item") {
                assert!(op["responses"]["default"].is_object(), "{method} {path}");
            }
        }
    }
}
