//! The `kefu` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{self, Config, ConfigError};

/// Kefu: a self-hosted customer-service chatbot.
#[derive(Debug, Parser)]
#[command(name = "kefu", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `args` (the program name first) over the settings file's defaults. Help, version and
    /// usage errors print and exit, as clap does; an unusable settings file is an error.
    pub fn load(args: &[String]) -> Result<Cli, ConfigError> {
        let matches = config::with_file_defaults(Cli::command(), args)?.get_matches_from(args);
        Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (loads the demo knowledge base on first start).
    Serve(ServeArgs),
    /// Manage knowledge bases.
    #[command(subcommand)]
    Kb(KbCommand),
    /// Manage agent accounts (the people who answer in the console).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Manage sites (websites and apps that embed the chat).
    #[command(subcommand)]
    Site(SiteCommand),
    /// Manage event webhooks (signed HTTPS callbacks to your systems).
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Visitors' data: erase one visitor (PIPL / GDPR requests).
    #[command(subcommand)]
    Visitor(VisitorCommand),
    /// The audit log: erasures, retention runs and retention changes.
    Audit {
        /// Most entries, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Create an admin API key (printed once).
    AdminKey {
        /// A name to recognise the key by.
        #[arg(long, default_value = "admin")]
        name: String,
    },
    /// Train and manage the intent model (the "model" step of triage).
    #[command(subcommand)]
    Intent(IntentCommand),
    /// Learn from past chats: import history, mine FAQ proposals, review them, find gaps.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Load-test a running server over loopback WebSockets; prints JSON.
    Loadtest(crate::commands::loadtest::LoadtestArgs),
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent; prints a generated password unless --password is given.
    Add {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        password: Option<String>,
        /// Most conversations the agent owns at once.
        #[arg(long, default_value_t = 5)]
        capacity: u32,
        /// `agent` answers visitors; `admin` also manages the bot (admin API, `/admin`).
        #[arg(long, default_value = "agent", value_parser = ["agent", "admin"])]
        role: String,
    },
    /// Give an account the `agent` or `admin` role.
    SetRole {
        name: String,
        #[arg(value_parser = ["agent", "admin"])]
        role: String,
    },
    /// Set an agent's password; prints a generated one unless --password is given.
    SetPassword {
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// List agents.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Sign an agent out everywhere: revoke every token the agent holds.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint; prints its id and signing secret (shown this once).
    Add {
        /// The site whose events it receives.
        #[arg(long)]
        site: String,
        /// `https://…` (`http://` only to this machine).
        #[arg(long)]
        url: String,
        /// Comma-separated event types (default: every event): conversation.created,
        /// message.created, conversation.queued, conversation.assigned, conversation.resolved,
        /// csat.submitted, kb.gap.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Print the endpoint as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List endpoints (never their secrets).
    List {
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint (its pending deliveries are dropped).
    Remove { id: String },
    /// Give an endpoint a new secret (printed once); the old one signs too for 24 hours.
    Rotate { id: String },
    /// Enable an endpoint disabled after repeated failures.
    Enable { id: String },
    /// An endpoint's recent deliveries, newest first.
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum VisitorCommand {
    /// Erase one visitor: conversations, messages, ratings, undelivered webhooks, tokens,
    /// training history and mined proposals' examples (recorded in the audit log).
    Erase {
        #[arg(long)]
        site: String,
        /// The visitor's id (`v_…`).
        #[arg(long, conflicts_with = "user_id", required_unless_present = "user_id")]
        visitor_id: Option<String>,
        /// The user's id on the channel: the verified user id on the web, the integrator's id
        /// on the API channel, the openid on WeChat.
        #[arg(long)]
        user_id: Option<String>,
        /// `web`, `api` or `wechat`.
        #[arg(long, default_value = "web", requires = "user_id")]
        channel: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Create a site; prints its key and identity secret.
    Add {
        /// The site key visitors' clients send (letters, digits, `-`, `_`).
        key: String,
        #[arg(long)]
        name: Option<String>,
        /// An origin allowed to open the chat (repeatable), e.g. https://shop.example; `*` allows any.
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Refuse visitors without a valid identity hash (a secret is generated if not given).
        #[arg(long)]
        enforce_identity: bool,
        /// The HMAC-SHA256 secret for identity hashes.
        #[arg(long)]
        identity_secret: Option<String>,
    },
    /// List sites.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set up a site's channels (the API channel's token, a WeChat Official Account), retention,
    /// business hours and attachment limits.
    Set {
        key: String,
        /// Issue a new API channel token (printed once; the previous one stops working).
        #[arg(long)]
        api_token: bool,
        /// Turn the API channel off.
        #[arg(long, conflicts_with = "api_token")]
        no_api: bool,
        /// The token entered in the WeChat account's server settings (服务器配置 → Token).
        #[arg(long)]
        wechat_token: Option<String>,
        /// The account's AppID, for replies after WeChat's 5-second window (with the secret).
        #[arg(long, requires = "wechat_token")]
        wechat_app_id: Option<String>,
        /// The account's AppSecret.
        #[arg(long, requires = "wechat_app_id")]
        wechat_app_secret: Option<String>,
        /// Turn the WeChat channel off.
        #[arg(long, conflicts_with = "wechat_token")]
        no_wechat: bool,
        /// Delete conversations idle longer than this many days (0 keeps everything).
        #[arg(long)]
        retention_days: Option<u32>,
        /// Business hours, e.g. "mon-fri 09:00-18:00; sat 10:00-14:00" (with --time-zone).
        #[arg(long, requires = "time_zone")]
        hours: Option<String>,
        /// The business hours' IANA time zone, e.g. Asia/Shanghai.
        #[arg(long, requires = "hours")]
        time_zone: Option<String>,
        /// Days closed, comma-separated YYYY-MM-DD (with --hours).
        #[arg(long, requires = "hours", value_delimiter = ',')]
        holidays: Vec<String>,
        /// Remove the business hours (always open).
        #[arg(long, conflicts_with = "hours")]
        no_hours: bool,
        /// Largest file visitors and agents may send, in MB (default 10, at most 50).
        #[arg(long)]
        attachment_max_mb: Option<u64>,
        /// Kinds of files accepted, comma-separated: image, pdf, office, text; or `none` to turn
        /// attachments off (default: all).
        #[arg(long)]
        attachment_kinds: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEFU_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not load the demo knowledge base into an empty default knowledge base, and do not
    /// create the `demo` site on first start.
    #[arg(long, env = "KEFU_NO_DEMO")]
    pub no_demo: bool,
    /// Rules file (TOML or YAML): keyword / regex / exact-phrase rules and canned replies.
    #[arg(long, env = "KEFU_RULES")]
    pub rules: Option<PathBuf>,
    /// Consecutive answers the bot could not find before the conversation goes to a human
    /// (0 = never).
    #[arg(long, env = "KEFU_FALLBACKS_BEFORE_HANDOFF", default_value_t = 2)]
    pub fallbacks_before_handoff: u32,
    /// Assign queued conversations round-robin to online agents with free capacity.
    #[arg(long, env = "KEFU_AUTO_ASSIGN")]
    pub auto_assign: bool,
    /// Open WebSocket connections allowed from one IP address.
    #[arg(long, env = "KEFU_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: u32,
    /// Frames per second one connection may send (bursts of twice that).
    #[arg(long, env = "KEFU_FRAMES_PER_SECOND", default_value_t = 20)]
    pub frames_per_second: u32,
    /// Visitor sessions and agent logins one IP address may create per minute.
    #[arg(long, env = "KEFU_SESSIONS_PER_MINUTE", default_value_t = 120)]
    pub sessions_per_minute: u32,
    /// Largest file the admin API accepts for a knowledge base (FAQ file or document), in MiB.
    #[arg(long, env = "KEFU_MAX_UPLOAD_MB", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_upload_mb: u32,
    /// Redis for scale-out: several servers sharing one PostgreSQL database exchange live events
    /// over pub/sub (e.g. redis://127.0.0.1:6379).
    #[arg(long, env = "KEFU_REDIS_URL")]
    pub redis_url: Option<String>,
    /// The pub/sub channel the servers of one deployment share.
    #[arg(long, env = "KEFU_CLUSTER_CHANNEL", default_value = "kefu:events")]
    pub cluster_channel: String,
    /// WeChat's API (access tokens, customer-service messages): its public address unless a
    /// proxy or a test stand-in answers for it.
    #[arg(long, env = "KEFU_WECHAT_API_BASE", default_value = crate::channels::wechat::DEFAULT_API_BASE)]
    pub wechat_api_base: String,
    /// Tasks embedding visitor questions in batches (default: one per core).
    #[arg(long, env = "KEFU_INFERENCE_WORKERS")]
    pub inference_workers: Option<usize>,
    /// The address browsers reach this server at (e.g. https://chat.shop.example), repeatable:
    /// pages served from it (the console, the demo pages) may open any site's chat. The listen
    /// address always counts as well; the request's Host header never does.
    #[arg(long = "public-url", env = "KEFU_PUBLIC_URL", value_delimiter = ',')]
    pub public_urls: Vec<String>,
    /// Take the client address from `X-Forwarded-For` / `Forwarded` when the connection comes
    /// from one of these proxies (IP addresses, repeatable); rate limits then apply per client.
    #[arg(
        long = "trusted-proxy",
        env = "KEFU_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Most open HTTP/WebSocket connections in total; new ones wait at accept beyond it.
    #[arg(long, env = "KEFU_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Close connections that do not send a whole request head this soon (slow or idle clients).
    #[arg(long, env = "KEFU_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: std::time::Duration,
    /// On shutdown, wait at most this long for open requests and sessions.
    #[arg(long, env = "KEFU_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: std::time::Duration,
    /// Analytics: a conversation the bot handled counts as resolved once nothing was said in it
    /// for this long (it was not reopened).
    #[arg(long, env = "KEFU_RESOLUTION_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub resolution_window: std::time::Duration,
    /// The LLM backend for knowledge bases in answer mode `llm`.
    #[command(flatten)]
    pub llm: crate::llm::LlmArgs,
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Import FAQ files (.csv .json .yaml) and documents (.md .html .txt); directories recursively.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask questions; prints the band and the best hits for each TEXT.
    Query {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Only entries with any of these tags (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// One JSON object per TEXT, one per line.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Answer questions as the bot answers a visitor (rules, intent model, retrieval, bands and
    /// composition), loading the model once for all TEXTs.
    Ask {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        /// Rules file, as given to `kefu serve --rules` (default: the built-in rules).
        #[arg(long, env = "KEFU_RULES")]
        rules: Option<PathBuf>,
        /// One JSON object per TEXT, one per line: query, band, answer, mode, citations,
        /// quick_replies.
        #[arg(long)]
        json: bool,
        /// Ask the TEXTs as one conversation, each after the one before (short follow-ups such
        /// as "那退货呢？" are searched with the previous question); default: each on its own.
        #[arg(long)]
        conversation: bool,
        /// The LLM backend for a knowledge base in answer mode `llm`, as for `kefu serve`.
        #[command(flatten)]
        llm: crate::llm::LlmArgs,
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Measure answer quality on labelled questions (JSONL: question, expect = entry id(s) or
    /// "none", optional answer_contains and cite).
    Eval {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        #[arg(long)]
        data: PathBuf,
        /// Rules file, as given to `kefu serve --rules`.
        #[arg(long, env = "KEFU_RULES")]
        rules: Option<PathBuf>,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// Write a self-contained HTML report (per-question table, threshold curve) here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Also search the thresholds that answer this data best (most right answers with
        /// out-of-scope questions held at `--min-held`); apply them with `kefu kb thresholds
        /// --from-report`.
        #[arg(long)]
        tune: bool,
        /// The share of out-of-scope questions `--tune` keeps held.
        #[arg(long, default_value_t = 0.95, requires = "tune")]
        min_held: f64,
        /// The LLM backend for a knowledge base in answer mode `llm`, as for `kefu serve`.
        #[command(flatten)]
        llm: crate::llm::LlmArgs,
    },
    /// List knowledge bases with their entry counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one knowledge base's counts and thresholds.
    Stats {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a knowledge base and everything in it.
    Delete { name: String },
    /// Rebuild the vector index from the knowledge store: with `--qdrant-url`, drop and refill
    /// the Qdrant collection of `--kb` (default: every knowledge base's).
    Reindex {
        #[arg(long)]
        kb: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Set a knowledge base's thresholds (omitted values return to the model defaults).
    Thresholds {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        #[arg(long)]
        answer: Option<f32>,
        #[arg(long)]
        suggest: Option<f32>,
        #[arg(long)]
        margin: Option<f32>,
        /// Top document-passage score to answer from documents.
        #[arg(long)]
        doc_answer: Option<f32>,
        /// Top document-passage score to offer a passage.
        #[arg(long)]
        doc_suggest: Option<f32>,
        /// Apply the thresholds `kefu kb eval --tune --report DIR` found (DIR or its metrics.json).
        #[arg(long, conflicts_with_all = ["answer", "suggest", "margin", "doc_answer", "doc_suggest"])]
        from_report: Option<PathBuf>,
    },
    /// Set how a knowledge base answers: `faq`, `extractive` (the default) or `llm`.
    Mode {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        /// `faq` (entries only), `extractive` (entries and document sentences, the default) or
        /// `llm` (an LLM writes the reply from the passages; needs `kefu serve --llm-url`, and
        /// answers extractively without it).
        #[arg(value_parser = ["faq", "extractive", "llm"])]
        mode: String,
    },
    /// Fine-tune the encoder for retrieval on knowledge bases' own content, list the tuned
    /// encoders, or switch a knowledge base to one (or back).
    #[command(subcommand)]
    Encoder(EncoderCommand),
}

#[derive(Debug, Subcommand)]
pub enum EncoderCommand {
    /// Fine-tune the encoder on the knowledge bases' FAQ entries (question and alternates with
    /// the answer) and document sections (heading with its sentences); saves it under
    /// `<data-dir>/encoders/` and prints its model name.
    Train {
        /// Knowledge bases to learn from (repeatable).
        #[arg(long = "kb", default_value = kefu_kb::DEFAULT_KB)]
        kbs: Vec<String>,
        #[command(flatten)]
        tuning: FineTuneArgs,
        #[arg(long)]
        json: bool,
    },
    /// List the fine-tuned encoders and the knowledge bases that use each.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Re-embed a knowledge base with a fine-tuned encoder (its id or model name), or with the
    /// stock model again (`stock`), and switch it in one transaction; a running server keeps
    /// answering with the old vectors meanwhile and picks the switch up on its next question.
    Activate {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        /// The encoder's id or model name (from `kefu kb encoder list`), or `stock`.
        encoder: String,
        /// Labelled questions (JSONL, as for `kefu kb eval`) measured before and after.
        #[arg(long)]
        eval: Option<PathBuf>,
        /// Rules file for the eval, as given to `kefu serve --rules`.
        #[arg(long, env = "KEFU_RULES")]
        rules: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IntentCommand {
    /// Train a new model version from labelled utterances (JSONL or CSV: text, intent; intent
    /// `oos` marks out-of-scope examples, used for calibration, and with `--oos-class` for
    /// training too).
    Train {
        #[arg(long)]
        data: PathBuf,
        /// Calibrate the out-of-scope threshold on this file instead of out-of-fold predictions.
        #[arg(long)]
        validation: Option<PathBuf>,
        /// Hidden units (0 = a linear head on the embeddings).
        #[arg(long, default_value_t = 0)]
        hidden: usize,
        #[arg(long, default_value_t = 40)]
        epochs: usize,
        #[arg(long = "lr", default_value_t = 2e-3)]
        learning_rate: f64,
        /// AdamW (decoupled) weight decay: higher softens probabilities (better out-of-scope
        /// detection) at some cost in accuracy.
        #[arg(long, default_value_t = 2.0)]
        weight_decay: f64,
        /// Folds for out-of-fold calibration.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Also train the `oos` examples as an extra output of the head, which is never
        /// predicted but takes probability from the intents on texts like them (more
        /// out-of-scope recall, sometimes a little less in-scope accuracy; see the README).
        #[arg(long)]
        oos_class: bool,
        /// Fine-tune the encoder's top layers on the data first (contrastive, minutes on a CPU);
        /// the tuned encoder is saved with the model and used wherever the model classifies.
        #[arg(long)]
        fine_tune: bool,
        #[command(flatten)]
        tuning: FineTuneArgs,
        /// A second stock encoder (`all-minilm-l6-v2`) whose vectors the head reads beside the
        /// main encoder's: more accurate on English, at the cost of a second, smaller forward
        /// pass per message (see the README).
        #[arg(long, value_name = "MODEL")]
        also_encoder: Option<String>,
        /// Activate the new version at once (the first version always is).
        #[arg(long)]
        activate: bool,
        /// Evaluate the new version on this labelled file; the result is kept with the version
        /// (shown in the console and `GET /v1/admin/intents`).
        #[arg(long)]
        test: Option<PathBuf>,
        /// Print one JSON object instead of text and progress bars.
        #[arg(long)]
        json: bool,
    },
    /// List model versions (`*` marks the active one).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a version the active model; a running server switches within seconds.
    Activate { version: String },
    /// Return to the version active before the current one.
    Rollback,
    /// Classify texts with the active model (or --version).
    Predict {
        /// One JSON object per text: {"text", "intent", "confidence", "in_scope"}.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        version: Option<String>,
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Evaluate the active model (or --version) on a labelled file.
    Eval {
        #[arg(long)]
        data: PathBuf,
        /// Print one JSON object: in_scope_accuracy, oos_recall, oos_precision, macro_f1, n.
        #[arg(long)]
        json: bool,
        /// Write an HTML report with plots (and metrics.json) into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
        #[arg(long)]
        version: Option<String>,
        /// Evaluate at this out-of-scope threshold instead of the model's calibrated one.
        #[arg(long)]
        threshold: Option<f32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Import past conversations: JSONL (one conversation per line: id, messages of role
    /// visitor|agent|bot, text, time) or CSV (conversation_id, role, text, time). Re-importing is
    /// idempotent; bad records are reported and skipped.
    Import {
        files: Vec<PathBuf>,
        /// Also import Kefu's own stored conversations.
        #[arg(long)]
        from_kefu: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mine question -> agent-answer pairs, cluster near-duplicates and queue FAQ proposals.
    Mine {
        /// Knowledge base to check for existing answers (and to approve into by default).
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        #[arg(long, default_value_t = 2)]
        min_support: usize,
        /// Cosine similarity at which questions count as the same.
        #[arg(long, default_value_t = 0.72)]
        similarity: f32,
        #[arg(long)]
        json: bool,
    },
    /// The FAQ review queue.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// The most frequent visitor questions the knowledge base cannot answer.
    Gaps {
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[arg(long, default_value_t = 0.72)]
        similarity: f32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List proposals, largest support first.
    List {
        /// pending, approved or rejected.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approve proposals into a knowledge base.
    Approve {
        #[arg(required = true)]
        ids: Vec<i64>,
        #[arg(long, default_value = kefu_kb::DEFAULT_KB)]
        kb: String,
    },
    /// Change a proposal's question, answer or alternates (`|`-separated).
    Edit {
        id: i64,
        #[arg(long)]
        question: Option<String>,
        #[arg(long)]
        answer: Option<String>,
        #[arg(long)]
        alternates: Option<String>,
    },
    /// Reject proposals.
    Reject {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

/// Settings of `kefu intent train --fine-tune`.
#[derive(Debug, Clone, clap::Args)]
pub struct FineTuneArgs {
    /// Top encoder layers trained (the others stay frozen).
    #[arg(long, default_value_t = 4)]
    pub ft_layers: usize,
    /// `full` (every weight of those layers) or `lora` (low-rank adapters, `--ft-rank`).
    #[arg(long, default_value = "full", value_parser = ["full", "lora"])]
    pub ft_method: String,
    #[arg(long, default_value_t = 8)]
    pub ft_rank: usize,
    /// Passes over the in-scope utterances (at least 100 steps are taken, so small data sets get
    /// more).
    #[arg(long, default_value_t = 1.0)]
    pub ft_epochs: f64,
    /// Learning rate (default: 2e-4 for intents, 5e-5 for `kb encoder train`, where larger steps
    /// undo what the stock model knew about questions it did not see).
    #[arg(long)]
    pub ft_lr: Option<f64>,
    /// Intents per step (two utterances each).
    #[arg(long, default_value_t = 32)]
    pub ft_batch: usize,
    /// Weight of an auxiliary intent-classification loss during fine-tuning (0 = contrastive only).
    #[arg(long, default_value_t = 0.0)]
    pub ft_classify: f64,
    /// Out-of-scope texts added to each step as extra negatives (default: 8 for intents, 64 for
    /// `kb encoder train`, whose negatives are the generic out-of-scope set).
    #[arg(long)]
    pub ft_negatives: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub ft_seed: u64,
}
