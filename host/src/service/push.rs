//! Pushes: a token a broker delivers to the webhook, read by the provider, judged by the
//! host's replay policy, then stored.

use super::{Action, Outcome, Service, ours};
use crate::Error;
use crate::plan::Plan;
use crate::policy::{self, Claims};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The accounts a push listener takes pushes for, by name (replaced when a config reloads).
pub type PushAccounts = Arc<RwLock<HashMap<String, Plan>>>;

impl Service {
    /// Takes one pushed body for the account: the provider reads it, the host's replay policy
    /// checks it, and only then is it stored. A refused push changes nothing.
    pub async fn push(&self, plan: &Plan, body: &[u8]) -> Result<Outcome, Error> {
        let account = self.account(&plan.account)?;
        let lock = account.lock().await?;
        let result = async {
            let current = account.load_token().await?;
            let mut provider = self.start(plan, &account).await?;
            if let Some(t) = &current {
                provider.add_secrets(t.secrets());
            }
            let fresh = provider.accept_push(body).await;
            account.save_kv(provider.take_kv_changes()).await?;
            let fresh = fresh?;
            let claims = Claims::of(&fresh.access_token);
            let issued = fresh.issued_at.or(claims.iat);
            let logged_out = account.load_status().await?.logged_out_at;
            if let Some(why) = policy::refuse_push(current.as_ref(), &fresh.access_token, issued, logged_out)
            {
                return Err(Error::Rejected(why));
            }
            let stored = self
                .store_new(plan, &account, (provider.info(), provider.component_sha256()), fresh, claims)
                .await
                .and_then(ours);
            let stored = self.finish(plan, &account, stored, None).await?;
            Ok(Outcome::of(plan, Action::Pushed, Some(&stored)))
        }
        .await;
        lock.release().await;
        result
    }

    /// The listener's handler of `POST /push/<account>`: an account it was not given is 404, any
    /// other method 405; the body goes to the account's provider and the token it yields is
    /// stored if the host's replay policy lets it (200), else 403 (refused), 400 (unreadable) or
    /// 500. `told` hears every outcome, to print it.
    pub fn push_handler(
        self: &Arc<Self>,
        accounts: PushAccounts,
        told: impl Fn(&str, &Result<Outcome, Error>) + Send + Sync + 'static,
    ) -> crate::listener::Handler {
        let (service, told) = (self.clone(), Arc::new(told));
        crate::listener::handler(move |req: crate::listener::Request| {
            let (service, accounts, told) = (service.clone(), accounts.clone(), told.clone());
            async move {
                let answer = |status: u16, outcome: &str, detail: &str| {
                    crate::listener::json(status, &serde_json::json!({ "status": outcome, "detail": detail }))
                };
                let name = req.path.strip_prefix("/push/").unwrap_or("");
                let Some(plan) = accounts.read().ok().and_then(|p| p.get(name).cloned()) else {
                    return answer(404, "error", "no such account on this webhook");
                };
                if req.method != http::Method::POST {
                    return answer(405, "error", "pushes are POSTed");
                }
                let result = service.push(&plan, &req.body).await;
                told(&plan.account, &result);
                let response = match &result {
                    Ok(_) => answer(200, "stored", "token stored"),
                    Err(e) => {
                        tracing::warn!(account = %plan.account, "push refused ({}): {e}", e.kind());
                        let status = match e {
                            Error::Rejected(_) => 403,
                            Error::Transient { .. } => 400,
                            _ => 500,
                        };
                        answer(status, "refused", e.kind())
                    }
                };
                service.write_metrics();
                response
            }
        })
    }
}
