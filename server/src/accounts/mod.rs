//! Accounts: sites (origin allow-lists, identity secrets), agents (the password policy), tokens
//! (issued in one place, resolved, revoked, expired) and visitor sessions (identity verification).
//! The CLI and the HTTP API both call this service; neither holds account rules of its own.

pub mod credentials;
pub mod password;

use credentials::{
    hash_password, new_token, token_hash, verify_identity, verify_password, ADMIN_KEY_TTL_MS,
    AGENT_TOKEN_TTL_MS, VISITOR_TOKEN_TTL_MS,
};
pub use credentials::{AuthError, Principal};

use crate::store::{
    new_id, now_ms, Agent, Conversation, Role, Site, Store, StoreError, TokenKind, TokenRecord,
    Visitor,
};

/// Longest agent login name.
pub const MAX_AGENT_NAME: usize = 64;
/// Longest verified user id, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;
/// Longest visitor or agent display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    WeakPassword(#[from] password::WeakPassword),
    #[error("no site with this key")]
    UnknownSite,
    #[error("this page's origin is not on the site's allow-list")]
    OriginNotAllowed,
    #[error("this site only chats with verified users: send user_id and user_hash")]
    IdentityRequired,
    #[error("user_hash does not match user_id for this site")]
    IdentityInvalid,
    #[error("wrong agent name or password")]
    InvalidCredentials,
    #[error("this account is not an admin")]
    NotAdmin,
    #[error("{0}")]
    Unauthorized(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Credentials(#[from] AuthError),
}

pub type Result<T> = std::result::Result<T, AccountError>;

fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(AccountError::Invalid(message.into()))
}

/// A new site as an operator describes it.
#[derive(Debug, Clone, Default)]
pub struct NewSite {
    pub key: String,
    pub name: Option<String>,
    pub allowed_origins: Vec<String>,
    pub identity_secret: Option<String>,
    pub enforce_identity: bool,
}

/// A new agent as an operator describes it.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub display_name: Option<String>,
    pub password: String,
    pub capacity: u32,
    pub role: Role,
}

/// A freshly issued bearer token (shown once; only its hash is stored).
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: i64,
}

/// What a visitor asks for when starting a session.
#[derive(Debug, Clone, Default)]
pub struct SessionRequest {
    pub site_key: String,
    /// The page's `Origin` header, when a browser sent one.
    pub origin: Option<String>,
    pub user_id: Option<String>,
    pub user_hash: Option<String>,
    pub name: Option<String>,
}

/// A started visitor session.
#[derive(Debug, Clone)]
pub struct VisitorSession {
    pub token: IssuedToken,
    pub visitor: Visitor,
    pub verified: bool,
    pub conversation: Conversation,
}

/// The account service (cheap to clone).
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    /// Origins of this server's own pages (from `--public-url` and the listen address): a page on
    /// one of them may open any site's chat. Never derived from a request's `Host`.
    own_origins: Vec<String>,
}

impl Accounts {
    pub fn new(store: Store, own_origins: Vec<String>) -> Self {
        Self {
            store,
            own_origins: own_origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// The origins this server's own pages are served from.
    pub fn own_origins(&self) -> &[String] {
        &self.own_origins
    }

    // ----- sites -----

    /// Validates and stores a new site; a secret is generated when identity is enforced without one.
    pub async fn create_site(&self, new: NewSite) -> Result<Site> {
        let site = validate_site(new)?;
        self.store.create_site(&site).await?;
        Ok(site)
    }

    pub async fn site(&self, key: &str) -> Result<Option<Site>> {
        Ok(self.store.site(key).await?)
    }

    pub async fn sites(&self) -> Result<Vec<Site>> {
        Ok(self.store.sites().await?)
    }

    /// Whether a page on `origin` may open a chat for `site`: requests without an Origin (native
    /// apps), this server's own pages, and origins on the site's allow-list.
    pub fn origin_allowed(&self, origin: Option<&str>, site: Option<&Site>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.is_own_origin(origin) {
            return true;
        }
        site.is_some_and(|s| {
            s.allowed_origins
                .iter()
                .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
        })
    }

    /// Whether `origin` is one of this server's own (the agent console's origin check).
    pub fn is_own_origin(&self, origin: &str) -> bool {
        let o = origin.trim_end_matches('/').to_ascii_lowercase();
        self.own_origins.contains(&o)
    }

    // ----- admin API keys -----

    /// Issues an admin API key named `name` (letters, digits, `-`, `_`, `.`; 1-64): the key is
    /// returned once and only its hash is kept.
    pub async fn create_admin_key(&self, name: &str) -> Result<IssuedToken> {
        let name = name.trim();
        let ok = (1..=64).contains(&name.chars().count())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(AccountError::Invalid(
                "a key name has 1-64 letters, digits, `-`, `_` or `.`".into(),
            ));
        }
        self.issue_token(TokenKind::Admin, name, None).await
    }

    /// The admin API keys in force, by name.
    pub async fn admin_keys(&self) -> Result<Vec<crate::store::AdminKey>> {
        Ok(self.store.admin_keys().await?)
    }

    /// Revokes every admin API key named `name`; `NotFound` when there is none.
    pub async fn revoke_admin_keys(&self, name: &str) -> Result<u64> {
        let n = self.store.delete_tokens_of(TokenKind::Admin, name).await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("admin key `{name}`")).into());
        }
        Ok(n)
    }

    // ----- agents -----

    /// Validates a new agent (name, display name, capacity, password policy) and stores it.
    pub async fn create_agent(&self, new: NewAgent) -> Result<Agent> {
        let agent = new_agent(new).await?;
        self.store.create_agent(&agent).await?;
        Ok(agent)
    }

    pub async fn agents(&self) -> Result<Vec<Agent>> {
        Ok(self.store.agents().await?)
    }

    pub async fn agent(&self, id: &str) -> Result<Option<Agent>> {
        Ok(self.store.agent(id).await?)
    }

    /// Sets an agent's password (policy-checked) and revokes every session the agent had;
    /// returns how many were revoked.
    pub async fn set_agent_password(&self, name: &str, password: &str) -> Result<u64> {
        password::check(password, name)?;
        let hash = hash_blocking(password).await?;
        self.store.set_agent_password(name, &hash).await?;
        self.revoke_agent_sessions(name).await
    }

    /// Revokes every token of the named agent (consoles are disconnected at their next request
    /// or frame); returns how many.
    pub async fn revoke_agent_sessions(&self, name: &str) -> Result<u64> {
        let agent = self
            .store
            .agent_by_name(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("agent `{name}`")))?;
        Ok(self
            .store
            .delete_tokens_of(TokenKind::Agent, &agent.id)
            .await?)
    }

    /// Checks name and password; a new agent token on success.
    pub async fn login(&self, name: &str, password: &str) -> Result<(Agent, IssuedToken)> {
        let agent = self.check_password(name, password).await?;
        let token = self.issue_token(TokenKind::Agent, &agent.id, None).await?;
        Ok((agent, token))
    }

    /// An operator's login to the admin API: as `login`, for accounts with the admin role (the
    /// token also opens the agent console).
    pub async fn admin_login(&self, name: &str, password: &str) -> Result<(Agent, IssuedToken)> {
        let agent = self.check_password(name, password).await?;
        if agent.role != Role::Admin {
            return Err(AccountError::NotAdmin);
        }
        let token = self.issue_token(TokenKind::Agent, &agent.id, None).await?;
        Ok((agent, token))
    }

    /// Gives the named account `role` (takes effect at its next request).
    pub async fn set_role(&self, name: &str, role: Role) -> Result<()> {
        Ok(self.store.set_agent_role(name, role).await?)
    }

    /// The account whose name and password these are. Verifies a dummy hash for unknown names so
    /// timing does not reveal which names exist.
    async fn check_password(&self, name: &str, password: &str) -> Result<Agent> {
        let agent = self.store.agent_by_name(name).await?;
        let phc = agent
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_else(|| dummy_hash().to_string());
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        agent.filter(|_| ok).ok_or(AccountError::InvalidCredentials)
    }

    /// Revokes one token (logout).
    pub async fn logout(&self, token: &str) -> Result<()> {
        self.store.delete_token(&token_hash(token)).await?;
        Ok(())
    }

    // ----- tokens -----

    /// Mints and stores a token of `kind` for `subject` (the one place tokens are made).
    pub async fn issue_token(
        &self,
        kind: TokenKind,
        subject: &str,
        site_key: Option<&str>,
    ) -> Result<IssuedToken> {
        let (prefix, ttl) = match kind {
            TokenKind::Visitor => ("kv_", VISITOR_TOKEN_TTL_MS),
            TokenKind::Agent => ("ka_", AGENT_TOKEN_TTL_MS),
            TokenKind::Admin => ("kadm_", ADMIN_KEY_TTL_MS),
        };
        let token = new_token(prefix)?;
        let expires_at = now_ms() + ttl;
        self.store
            .insert_token(
                &token_hash(&token),
                &TokenRecord {
                    kind,
                    subject: subject.to_string(),
                    site_key: site_key.map(str::to_string),
                    expires_at,
                },
            )
            .await?;
        Ok(IssuedToken { token, expires_at })
    }

    /// The principal a token stands for, if it is valid, unexpired and not revoked.
    pub async fn resolve_token(&self, token: &str) -> Result<Option<Principal>> {
        if token.is_empty() || token.len() > 200 {
            return Ok(None);
        }
        let Some(t) = self.store.token(&token_hash(token)).await? else {
            return Ok(None);
        };
        Ok(Some(match t.kind {
            TokenKind::Visitor => Principal::Visitor {
                visitor_id: t.subject,
                site_key: t.site_key.unwrap_or_default(),
            },
            TokenKind::Agent => Principal::Agent {
                agent_id: t.subject,
            },
            TokenKind::Admin => Principal::Admin,
        }))
    }

    /// Forgets expired tokens; returns how many.
    pub async fn forget_expired_tokens(&self) -> Result<u64> {
        Ok(self.store.delete_expired_tokens().await?)
    }

    /// Sets (`Some`) or clears a site's business hours, checked first.
    pub async fn set_business_hours(
        &self,
        site_key: &str,
        hours: Option<&crate::hours::BusinessHours>,
    ) -> Result<()> {
        let json = match hours {
            Some(h) => {
                h.schedule().map_err(AccountError::Invalid)?;
                Some(serde_json::to_string(h).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            }
            None => None,
        };
        if !self
            .store
            .set_business_hours(site_key, json.as_deref())
            .await?
        {
            return Err(AccountError::UnknownSite);
        }
        Ok(())
    }

    /// A site's business hours (`None`: always open); `unknown_site` when there is no site.
    pub async fn business_hours(
        &self,
        site_key: &str,
    ) -> Result<Option<crate::hours::BusinessHours>> {
        if self.store.site(site_key).await?.is_none() {
            return Err(AccountError::UnknownSite);
        }
        self.store
            .business_hours(site_key)
            .await?
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("business hours: {e}")).into())
            })
            .transpose()
    }

    // ----- visitors -----

    /// Starts a visitor session: checks the site, the page's origin and the identity hash, finds
    /// or creates the visitor and its open conversation, and issues a visitor token.
    pub async fn start_visitor_session(&self, req: SessionRequest) -> Result<VisitorSession> {
        let site = self
            .store
            .site(&req.site_key)
            .await?
            .ok_or(AccountError::UnknownSite)?;
        if !self.origin_allowed(req.origin.as_deref(), Some(&site)) {
            return Err(AccountError::OriginNotAllowed);
        }
        if req
            .name
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
        {
            return invalid(format!("name exceeds {MAX_NAME_CHARS} characters"));
        }
        let verified_id = match (&req.user_id, &req.user_hash) {
            (Some(id), _) if id.is_empty() || id.len() > MAX_USER_ID_BYTES => {
                return invalid(format!("user_id must be 1-{MAX_USER_ID_BYTES} bytes"));
            }
            (Some(id), Some(hash)) => {
                let ok = site
                    .identity_secret
                    .as_deref()
                    .is_some_and(|secret| verify_identity(secret, id, hash));
                if !ok {
                    return Err(AccountError::IdentityInvalid);
                }
                Some(id.clone())
            }
            _ if site.enforce_identity => return Err(AccountError::IdentityRequired),
            // An unverified user id is only a label: it never links to a verified user's history.
            _ => None,
        };
        let display = req
            .name
            .clone()
            .or_else(|| req.user_id.clone().filter(|_| verified_id.is_none()));
        let visitor = self
            .store
            .visitor_for(&site.key, verified_id.as_deref(), display.as_deref())
            .await?;
        let conversation = self.open_conversation(&visitor).await?;
        let token = self
            .issue_token(TokenKind::Visitor, &visitor.id, Some(&site.key))
            .await?;
        Ok(VisitorSession {
            token,
            visitor,
            verified: verified_id.is_some(),
            conversation,
        })
    }

    /// The visitor's open conversation, or a new one (after the last was resolved).
    pub async fn visitor_conversation(&self, visitor_id: &str) -> Result<Conversation> {
        let visitor = self
            .store
            .visitor(visitor_id)
            .await?
            .ok_or_else(|| AccountError::Unauthorized("the visitor no longer exists".into()))?;
        self.open_conversation(&visitor).await
    }

    /// The visitor's open conversation, or a new one.
    pub async fn open_conversation(&self, visitor: &Visitor) -> Result<Conversation> {
        Ok(match self.store.open_conversation(&visitor.id).await? {
            Some(c) => c,
            None => self.store.create_conversation(visitor).await?,
        })
    }
}

/// Checks a site's key, origins and secret.
fn validate_site(new: NewSite) -> Result<Site> {
    let key = new.key;
    if key.is_empty()
        || key.len() > 64
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return invalid("site keys are 1-64 letters, digits, `-` or `_`");
    }
    for o in &new.allowed_origins {
        let host = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"))
            .map(|r| r.trim_end_matches('/'));
        let ok = o == "*" || host.is_some_and(|h| !h.is_empty() && !h.contains('/'));
        if !ok {
            return invalid(format!(
                "origin `{o}` must look like https://shop.example (or be `*`)"
            ));
        }
    }
    let identity_secret = match new.identity_secret {
        Some(s) if s.len() < 16 => return invalid("identity secrets need at least 16 characters"),
        Some(s) => Some(s),
        None if new.enforce_identity => Some(new_token("")?),
        None => None,
    };
    Ok(Site {
        name: new.name.unwrap_or_else(|| key.clone()),
        key,
        allowed_origins: new
            .allowed_origins
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_string())
            .collect(),
        identity_secret,
        enforce_identity: new.enforce_identity,
    })
}

/// A validated new agent with its password hashed.
async fn new_agent(new: NewAgent) -> Result<Agent> {
    let name = new.name;
    if name.is_empty()
        || name.len() > MAX_AGENT_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return invalid(format!(
            "agent names are 1-{MAX_AGENT_NAME} letters, digits, `-`, `_` or `.`"
        ));
    }
    password::check(&new.password, &name)?;
    if new.capacity == 0 || new.capacity > 100 {
        return invalid("capacity must be 1-100");
    }
    let display_name = new.display_name.unwrap_or_else(|| name.clone());
    if display_name.trim().is_empty() || display_name.chars().count() > MAX_NAME_CHARS {
        return invalid(format!(
            "the display name must have 1-{MAX_NAME_CHARS} characters"
        ));
    }
    let password_hash = hash_blocking(&new.password).await?;
    Ok(Agent {
        id: new_id("a_"),
        name,
        display_name,
        password_hash,
        capacity: new.capacity,
        role: new.role,
    })
}

/// Argon2id off the async threads.
async fn hash_blocking(password: &str) -> Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AccountError::Credentials(AuthError::Hash(e.to_string())))?
        .map_err(AccountError::from)
}

/// A real Argon2id hash of a random password, verified against for unknown agent names.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        credentials::new_password()
            .and_then(|p| hash_password(&p))
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(key: &str, origins: &[&str], secret: Option<&str>, enforce: bool) -> Result<Site> {
        validate_site(NewSite {
            key: key.into(),
            name: None,
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            identity_secret: secret.map(str::to_string),
            enforce_identity: enforce,
        })
    }

    #[test]
    fn sites_are_validated() {
        let s = site("shop_1", &["https://shop.example/"], None, true).expect("valid");
        assert_eq!(s.allowed_origins, vec!["https://shop.example"]);
        assert!(
            s.identity_secret.as_deref().is_some_and(|k| k.len() >= 32),
            "generated"
        );
        assert!(site("shop 1", &[], None, false).is_err());
        assert!(site("s", &["shop.example"], None, false).is_err());
        assert!(site("s", &["https://shop.example/path"], None, false).is_err());
        assert!(site("s", &["*"], None, false).is_ok());
        assert!(site("s", &[], Some("short"), false).is_err());
    }

    #[tokio::test]
    async fn origins_come_from_configuration_never_from_the_request() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_sqlite(&dir.path().join("c.db"))
            .await
            .expect("db");
        let accounts = Accounts::new(store, vec!["http://127.0.0.1:8080/".into()]);
        let shop = site("s", &["https://shop.example"], None, false).expect("site");
        assert!(accounts.origin_allowed(None, Some(&shop)), "native client");
        assert!(accounts.origin_allowed(Some("http://127.0.0.1:8080"), Some(&shop)));
        assert!(accounts.origin_allowed(Some("https://shop.example"), Some(&shop)));
        assert!(!accounts.origin_allowed(Some("https://evil.example"), Some(&shop)));
        assert!(!accounts.origin_allowed(Some("http://evil.example"), None));
    }

    #[tokio::test]
    async fn password_changes_and_logout_revoke_tokens() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_sqlite(&dir.path().join("c.db"))
            .await
            .expect("db");
        let accounts = Accounts::new(store, vec![]);
        let weak = accounts
            .create_agent(NewAgent {
                name: "li".into(),
                display_name: None,
                password: "12345678".into(),
                capacity: 2,
                role: Role::Agent,
            })
            .await;
        assert!(matches!(weak, Err(AccountError::WeakPassword(_))));
        accounts
            .create_agent(NewAgent {
                name: "li".into(),
                display_name: Some("小李".into()),
                password: "first pass phrase".into(),
                capacity: 2,
                role: Role::Agent,
            })
            .await
            .expect("agent");
        let (_, a) = accounts
            .login("li", "first pass phrase")
            .await
            .expect("login");
        let (_, b) = accounts
            .login("li", "first pass phrase")
            .await
            .expect("login");
        assert!(accounts
            .resolve_token(&a.token)
            .await
            .expect("ok")
            .is_some());
        accounts.logout(&a.token).await.expect("logout");
        assert!(accounts
            .resolve_token(&a.token)
            .await
            .expect("ok")
            .is_none());
        assert!(accounts
            .resolve_token(&b.token)
            .await
            .expect("ok")
            .is_some());
        let revoked = accounts
            .set_agent_password("li", "second pass phrase")
            .await
            .expect("set");
        assert_eq!(revoked, 1);
        assert!(accounts
            .resolve_token(&b.token)
            .await
            .expect("ok")
            .is_none());
        assert!(matches!(
            accounts.login("li", "first pass phrase").await,
            Err(AccountError::InvalidCredentials)
        ));
        assert!(accounts.login("li", "second pass phrase").await.is_ok());
    }
}
