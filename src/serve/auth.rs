//! Who may read `/metrics`: behind the hub's proxy anyone can reach the
//! culler's endpoint, so, as JupyterHub's own `/hub/metrics` does by
//! default, a scraper shows a hub API token whose owner holds the
//! `read:metrics` scope. The hub says who owns a token (`GET /hub/api/user`
//! asked with that token); its answer is kept for [`REMEMBER_FOR`], so a
//! scrape every 15 s costs the hub one request a minute.

use crate::hub::{ApiToken, HubClient, HubConfig, HubError, Observer, TokenOwner};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The scope that lets a token read metrics, as the hub names it.
pub const READ_METRICS_SCOPE: &str = "read:metrics";

/// How long the hub's word on a token holds: a token revoked or a role
/// changed takes effect within this.
pub const REMEMBER_FOR: Duration = Duration::from_secs(60);

/// The most tokens remembered: a scraper or two use one token each; a
/// client trying many tokens must not grow the memory.
const REMEMBERED: usize = 256;

/// Who may read `/metrics`.
#[derive(Clone)]
pub enum Access {
    /// Anyone who can connect: `--metrics-auth=false`, which settings
    /// allow only on a loopback `--metrics-bind`.
    Open,
    /// Holders of a hub token with [`READ_METRICS_SCOPE`] (on hubs before
    /// 2.0, which have no scopes: any token the hub knows, as their
    /// `/hub/metrics` did).
    HubToken {
        /// How to reach the hub to ask who owns a token.
        hub: HubConfig,
        /// Told of those requests, as of the culler's others.
        observer: Arc<dyn Observer>,
    },
}

impl Access {
    /// The check for one server worker, on the worker's thread (a hub
    /// client belongs to one thread).
    pub(super) fn gate(&self) -> Gate {
        match self {
            Access::Open => Gate { checker: None },
            Access::HubToken { hub, observer } => Gate {
                checker: Some(Checker {
                    client: HubClient::new(hub, Arc::clone(observer)),
                    remembered: RefCell::new(HashMap::new()),
                }),
            },
        }
    }
}

/// Admits or refuses a request for `/metrics`.
pub(super) struct Gate {
    checker: Option<Checker>,
}

struct Checker {
    client: HubClient,
    remembered: RefCell<HashMap<String, (Verdict, Instant)>>,
}

/// What the hub said of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Admitted,
    /// A token of `owner`, who lacks the scope.
    LacksScope {
        owner: String,
    },
    /// Not a token the hub knows (or one it refuses to describe).
    Unknown,
}

/// Why a request for `/metrics` is refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No `Authorization: token T` (or `Bearer T`).
    NoToken,
    /// The hub does not know the token.
    UnknownToken,
    /// The token's owner lacks the scope.
    LacksScope { owner: String },
    /// The hub could not be asked (down, slow, garbled): try again later.
    HubUnavailable(String),
}

impl Refusal {
    /// The answer: 403 with what to do, or 503 when the hub could not say.
    pub(super) fn response(&self) -> HttpResponse {
        let (status, body) = match self {
            Refusal::NoToken => (
                StatusCode::FORBIDDEN,
                format!(
                    "/metrics needs a JupyterHub API token with the {READ_METRICS_SCOPE} scope: \
                     send it as 'Authorization: token TOKEN' (or 'Bearer TOKEN')"
                ),
            ),
            Refusal::UnknownToken => (
                StatusCode::FORBIDDEN,
                "the hub does not know this token".to_owned(),
            ),
            Refusal::LacksScope { owner } => (
                StatusCode::FORBIDDEN,
                format!(
                    "the token of {owner:?} lacks the {READ_METRICS_SCOPE} scope: grant it \
                     with a role in c.JupyterHub.load_roles"
                ),
            ),
            Refusal::HubUnavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot ask the hub who owns this token, try again later: {why}"),
            ),
        };
        HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body + "\n")
    }
}

impl Gate {
    /// Admits the request, or says why not; asks the hub only about a
    /// token it has not judged in the last [`REMEMBER_FOR`].
    pub(super) async fn admit(&self, req: &HttpRequest) -> Result<(), Refusal> {
        let Some(checker) = &self.checker else {
            return Ok(());
        };
        let token = presented_token(req).ok_or(Refusal::NoToken)?;
        let verdict = match checker.recall(token, Instant::now()) {
            Some(verdict) => verdict,
            None => {
                let asked = checker.ask(token).await?;
                checker.remember(token, asked.clone(), Instant::now());
                asked
            }
        };
        match verdict {
            Verdict::Admitted => Ok(()),
            Verdict::Unknown => Err(Refusal::UnknownToken),
            Verdict::LacksScope { owner } => Err(Refusal::LacksScope { owner }),
        }
    }
}

impl Checker {
    /// The hub's word on `token`, if still fresh at `now`.
    fn recall(&self, token: &str, now: Instant) -> Option<Verdict> {
        let remembered = self.remembered.borrow();
        let (verdict, at) = remembered.get(token)?;
        (now.saturating_duration_since(*at) < REMEMBER_FOR).then(|| verdict.clone())
    }

    /// Keeps the hub's word on `token`; when full, forgets what is stale,
    /// and if nothing is, everything.
    fn remember(&self, token: &str, verdict: Verdict, now: Instant) {
        let mut remembered = self.remembered.borrow_mut();
        if remembered.len() >= REMEMBERED && !remembered.contains_key(token) {
            remembered.retain(|_, (_, at)| now.saturating_duration_since(*at) < REMEMBER_FOR);
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(token.to_owned(), (verdict, now));
    }

    /// Asks the hub who owns `token`.
    async fn ask(&self, token: &str) -> Result<Verdict, Refusal> {
        let asking = self.client.with_token(&ApiToken::new(token.to_owned()));
        match asking.token_owner().await {
            Ok(owner) => Ok(judge(&owner)),
            // The hub's answer to a token it does not know.
            Err(HubError::Forbidden { .. }) => Ok(Verdict::Unknown),
            Err(err) => Err(Refusal::HubUnavailable(err.to_string())),
        }
    }
}

/// Whether the owner's scopes let them read metrics.
fn judge(owner: &TokenOwner) -> Verdict {
    match &owner.scopes {
        // A hub before 2.0: no scopes; it knows the token, that is all it can say.
        None => Verdict::Admitted,
        Some(scopes) if scopes.iter().any(|s| s == READ_METRICS_SCOPE) => Verdict::Admitted,
        Some(_) => Verdict::LacksScope {
            owner: owner.name.clone().unwrap_or_else(|| "?".to_owned()),
        },
    }
}

/// The token of `Authorization: token T` or `Bearer T` (the two schemes
/// the hub takes), if any.
fn presented_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    (known && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn owner(name: &str, scopes: Option<&[&str]>) -> TokenOwner {
        TokenOwner {
            name: Some(name.to_owned()),
            scopes: scopes.map(|s| s.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn only_the_read_metrics_scope_admits() {
        assert_eq!(
            judge(&owner("prometheus", Some(&["read:metrics"]))),
            Verdict::Admitted
        );
        assert_eq!(
            judge(&owner(
                "idle-culler",
                Some(&["list:users", "read:metrics:x"])
            )),
            Verdict::LacksScope {
                owner: "idle-culler".into()
            }
        );
        assert_eq!(judge(&owner("old-hub", None)), Verdict::Admitted);
    }

    #[test]
    fn tokens_are_read_from_the_two_schemes_the_hub_takes() {
        let with = |value: &str| {
            TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request()
        };
        assert_eq!(presented_token(&with("token abc")), Some("abc"));
        assert_eq!(presented_token(&with("Bearer  abc ")), Some("abc"));
        assert_eq!(presented_token(&with("BEARER abc")), Some("abc"));
        assert_eq!(presented_token(&with("Basic abc")), None);
        assert_eq!(presented_token(&with("token ")), None);
        assert_eq!(presented_token(&with("abc")), None);
        assert_eq!(
            presented_token(&TestRequest::default().to_http_request()),
            None
        );
    }

    fn checker() -> Checker {
        let hub = HubConfig {
            base_url: "http://127.0.0.1:9/hub/api".into(),
            token: ApiToken::new("culler".into()),
            request_timeout: Duration::from_secs(1),
            tls: None,
            proxy: None,
        };
        Checker {
            client: HubClient::new(&hub, Arc::new(crate::hub::Unobserved)),
            remembered: RefCell::new(HashMap::new()),
        }
    }

    #[actix_rt::test]
    async fn the_hubs_word_holds_for_a_minute() {
        let checker = checker();
        let t0 = Instant::now();
        checker.remember("a", Verdict::Admitted, t0);
        assert_eq!(
            checker.recall("a", t0 + Duration::from_secs(59)),
            Some(Verdict::Admitted)
        );
        assert_eq!(checker.recall("a", t0 + REMEMBER_FOR), None);
        assert_eq!(checker.recall("b", t0), None);
    }

    #[actix_rt::test]
    async fn many_tokens_do_not_grow_the_memory() {
        let checker = checker();
        let t0 = Instant::now();
        for i in 0..REMEMBERED * 3 {
            checker.remember(&i.to_string(), Verdict::Unknown, t0);
            assert!(checker.remembered.borrow().len() <= REMEMBERED);
        }
        // When full, the stale ones go first and the fresh ones stay.
        checker.remembered.borrow_mut().clear();
        for i in 0..REMEMBERED - 1 {
            checker.remember(&i.to_string(), Verdict::Unknown, t0);
        }
        let later = t0 + REMEMBER_FOR;
        checker.remember("fresh", Verdict::Admitted, later);
        checker.remember("newest", Verdict::Admitted, later);
        assert_eq!(checker.remembered.borrow().len(), 2);
        assert_eq!(checker.recall("fresh", later), Some(Verdict::Admitted));
    }

    #[actix_rt::test]
    async fn a_hub_that_cannot_be_asked_is_503_not_403() {
        // Nothing listens on port 9 of loopback (discard is never enabled).
        let refusal = checker().ask("t").await.unwrap_err();
        assert!(matches!(refusal, Refusal::HubUnavailable(_)), "{refusal:?}");
        assert_eq!(refusal.response().status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Refusal::NoToken.response().status(), StatusCode::FORBIDDEN);
    }
}
