//! Upstream OIDC issuers whose humans log in with an id_token.
//!
//! Each issuer's keys come from a JWKS file (read at start) or a URL (fetched by this node at
//! start, every [`JWKS_REFRESH_INTERVAL`], and once more when a token names an unknown `kid`, at
//! most every [`JWKS_REFETCH_INTERVAL_MIN`] so a stream of bad tokens cannot become a stream of
//! fetches). Keys never enter the log and are never fetched inside apply: the node that receives
//! a login verifies the id_token and proposes the session with the identity it verified.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use tonic::Code;
use warrant_token::id_token::{
    self, IdTokenError, IdTokenExpectations, IssuerKeys, JWKS_BYTES_MAX, VerifiedIdToken,
};

use crate::error::{ApiError, Reason};

/// How often a URL-sourced JWKS is fetched again.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// The least time between two fetches of one issuer's JWKS.
pub const JWKS_REFETCH_INTERVAL_MIN: Duration = Duration::from_secs(30);
/// How long one JWKS fetch may take.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most upstream issuers one cluster may trust.
pub const ISSUERS_MAX: usize = 32;

/// Where an issuer's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    Url(String),
}

/// One trusted upstream issuer, from the node's config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerConfig {
    /// Its `iss`, exactly.
    pub issuer: String,
    /// The `aud` its id_tokens carry for Warrant: our client id at that issuer.
    pub audience: String,
    pub jwks: JwksSource,
}

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("federation: {count} issuers configured; allowed: at most {ISSUERS_MAX}")]
    TooManyIssuers { count: usize },
    #[error("federation: issuer {0} is configured twice")]
    Duplicate(String),
    #[error("federation: issuer {issuer}: read {path}: {source}")]
    Read {
        issuer: String,
        path: String,
        source: std::io::Error,
    },
    #[error("federation: build the JWKS HTTP client: {0}")]
    HttpClient(String),
    #[error("federation: issuer {issuer}: {source}")]
    Jwks {
        issuer: String,
        source: id_token::JwksError,
    },
}

struct Issuer {
    config: IssuerConfig,
    keys: RwLock<Option<Arc<IssuerKeys>>>,
    last_fetch: Mutex<Option<Instant>>,
}

/// The trusted issuers and their current keys.
pub struct Federation {
    issuers: BTreeMap<String, Issuer>,
    http: reqwest::Client,
}

impl Federation {
    /// Loads every file-sourced JWKS (a bad file stops the node: it is the operator's input) and
    /// fetches every URL-sourced one (a failed fetch is logged and retried later).
    pub async fn load(configs: Vec<IssuerConfig>) -> Result<Self, FederationError> {
        if ISSUERS_MAX < configs.len() {
            return Err(FederationError::TooManyIssuers {
                count: configs.len(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // The default client follows redirects and has no timeout: never fall back to it.
            .map_err(|e| FederationError::HttpClient(e.to_string()))?;
        let mut issuers = BTreeMap::new();
        for config in configs {
            let keys = match &config.jwks {
                JwksSource::File(path) => {
                    let bytes = std::fs::read(path).map_err(|source| FederationError::Read {
                        issuer: config.issuer.clone(),
                        path: path.display().to_string(),
                        source,
                    })?;
                    let keys = IssuerKeys::from_jwks_json(&bytes).map_err(|source| {
                        FederationError::Jwks {
                            issuer: config.issuer.clone(),
                            source,
                        }
                    })?;
                    Some(Arc::new(keys))
                }
                JwksSource::Url(_) => None,
            };
            let issuer = config.issuer.clone();
            let entry = Issuer {
                config,
                keys: RwLock::new(keys),
                last_fetch: Mutex::new(None),
            };
            if issuers.insert(issuer.clone(), entry).is_some() {
                return Err(FederationError::Duplicate(issuer));
            }
        }
        let federation = Federation { issuers, http };
        for issuer in federation.issuers.values() {
            federation.refresh(issuer).await;
        }
        Ok(federation)
    }

    /// Refreshes every URL-sourced JWKS periodically until `stop`.
    pub async fn refresh_forever(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(JWKS_REFRESH_INTERVAL) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            for issuer in self.issuers.values() {
                self.refresh(issuer).await;
            }
        }
    }

    /// Fetches a URL-sourced JWKS, unless one was fetched within [`JWKS_REFETCH_INTERVAL_MIN`].
    /// Returns whether new keys were installed.
    async fn refresh(&self, issuer: &Issuer) -> bool {
        let JwksSource::Url(url) = &issuer.config.jwks else {
            return false;
        };
        {
            let mut last = issuer.last_fetch.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL_MIN) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match fetch(&self.http, url)
            .await
            .and_then(|bytes| IssuerKeys::from_jwks_json(&bytes).map_err(|e| e.to_string()))
        {
            Ok(keys) => {
                tracing::info!(issuer = %issuer.config.issuer, keys = keys.len(), "fetched issuer JWKS");
                *issuer.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(keys));
                true
            }
            Err(error) => {
                tracing::warn!(issuer = %issuer.config.issuer, %url, %error, "fetching issuer JWKS failed; keeping the keys we had");
                false
            }
        }
    }

    /// Verifies an upstream id_token: the issuer must be configured, the signature must verify
    /// with its keys, and `iss`, `aud`, `exp` and the `nonce` (when one is expected) must hold.
    pub async fn verify(
        &self,
        token: &str,
        nonce: Option<&str>,
        now_unix_s: u64,
        leeway_s: u64,
    ) -> Result<VerifiedIdToken, ApiError> {
        let issuer_name = id_token::peek_issuer(token).map_err(rejected)?;
        let Some(issuer) = self.issuers.get(&issuer_name) else {
            return Err(ApiError::new(
                Code::Unauthenticated,
                Reason::IssuerNotConfigured,
                format!(
                    "id_token issuer {issuer_name:?} is not one this cluster trusts; allowed: {}",
                    if self.issuers.is_empty() {
                        "none are configured".to_string()
                    } else {
                        self.issuers.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            ));
        };
        let expect = IdTokenExpectations {
            issuer: &issuer.config.issuer,
            audience: &issuer.config.audience,
            nonce,
            now_unix_s,
            leeway_s,
        };
        let keys = issuer
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let first = match &keys {
            Some(keys) => id_token::verify(token, keys, &expect),
            None => Err(IdTokenError::UnknownKey(format!(
                "no keys of issuer {issuer_name} have been fetched yet"
            ))),
        };
        match first {
            Err(IdTokenError::UnknownKey(_)) if self.refresh(issuer).await => {
                let keys = issuer
                    .keys
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                match keys {
                    Some(keys) => id_token::verify(token, &keys, &expect).map_err(rejected),
                    None => Err(rejected(IdTokenError::UnknownKey(
                        "no keys were fetched".to_string(),
                    ))),
                }
            }
            other => other.map_err(rejected),
        }
    }
}

fn rejected(error: IdTokenError) -> ApiError {
    ApiError::new(
        Code::Unauthenticated,
        Reason::Credential(error.reason()),
        error.to_string(),
    )
}

/// GETs `url`, reading at most [`JWKS_BYTES_MAX`] bytes of body.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .error_for_status()
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if JWKS_BYTES_MAX < body.len() + chunk.len() {
            return Err(format!("JWKS is larger than {JWKS_BYTES_MAX} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
