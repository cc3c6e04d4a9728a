//! Receiving tokens the broker pushes: `POST /push/<account>` on a configured address hands
//! the body to the account's provider (`accept-push`) and stores the token it yields.
//!
//! Pushes are unsigned, so the host trusts none of them by default: the body is capped, the
//! account must be one this server was started for, the provider checks the body belongs to its
//! app, and the host refuses a token it already has, one older than the stored one, and one
//! issued before the last `logout`.

use crate::accounts::Context;
use crate::serve::{Response, Server};
use crate::settings::Account;
use crate::store::StoredToken;
use crate::{Error, policy, time};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Largest push body accepted; anything bigger gets 413 unread.
pub const MAX_PUSH_BYTES: usize = 64 << 10;
/// Where pushes are received unless configured otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8977";

/// A push the listener took, and where to send the answer.
pub type Push = (String, Vec<u8>, mpsc::Sender<Response>);

/// Listens on `listen` for pushes to the accounts in `names` (which may change while it
/// runs); each one goes to `tx`, and the listener answers what comes back.
pub fn listen(
    listen: &str,
    names: Arc<Mutex<Vec<String>>>,
    tx: tokio::sync::mpsc::UnboundedSender<Push>,
) -> Result<Server, Error> {
    Server::bind_limited(listen, MAX_PUSH_BYTES, move |req| {
        let known = |n: &str| names.lock().is_ok_and(|names| names.iter().any(|k| k == n));
        let Some(name) = req.path.strip_prefix("/push/").filter(|n| known(n)) else {
            return answer(404, "error", "no such account on this webhook");
        };
        if req.method != "POST" {
            return answer(405, "error", "pushes are POSTed");
        }
        let (reply_tx, reply_rx) = mpsc::channel();
        if tx.send((name.to_string(), req.body.clone(), reply_tx)).is_err() {
            return answer(503, "error", "shutting down");
        }
        reply_rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| answer(503, "error", "busy"))
    })
    .map_err(|e| Error::Config(format!("cannot listen for pushes on {listen}: {e}")))
}

/// Handles one push for `account` and says what to answer; prints one line either way.
pub async fn handle(ctx: &Context, account: &Account, body: &[u8]) -> Response {
    let name = &account.name;
    let response = match push(ctx, account, body).await {
        Ok(t) => {
            crate::cli::out(&format!(
                "{name}: token received by push, expires {}",
                t.expires_at.map(time::iso).unwrap_or_default()
            ));
            answer(200, "stored", "token stored")
        }
        Err(e) => {
            tracing::warn!(account = %name, "push refused ({}): {e}", e.kind());
            crate::cli::out(&format!("{name}: push refused ({}): {e}", e.kind()));
            let status = match &e {
                Error::Rejected(_) => 403,
                Error::Transient(_) => 400,
                _ => 500,
            };
            answer(status, "refused", e.kind())
        }
    };
    ctx.write_metrics();
    response
}

/// Serves pushes for `accounts` on `listen` until the process ends; `on_ready` gets the
/// address it listens on.
pub async fn serve(
    ctx: &Context,
    listen: &str,
    accounts: Vec<Account>,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), Error> {
    // Load every component now: the first push should not wait for a compile.
    for account in &accounts {
        ctx.start(account).await?;
    }
    let names = Arc::new(Mutex::new(accounts.iter().map(|a| a.name.clone()).collect()));
    let by_name: BTreeMap<String, Account> = accounts.into_iter().map(|a| (a.name.clone(), a)).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Push>();
    let server = self::listen(listen, names, tx)?;
    on_ready(server.addr());
    while let Some((name, body, reply)) = rx.recv().await {
        let _ = reply.send(handle(ctx, &by_name[&name], &body).await);
    }
    Ok(())
}

/// Takes one pushed body for `account`: the provider reads it, the host's replay policy
/// checks it, and only then is it stored. A refused push changes nothing.
pub async fn push(ctx: &Context, account: &Account, body: &[u8]) -> Result<StoredToken, Error> {
    let dir = ctx.state.account(&account.name)?;
    let _lock = dir.lock()?;
    let current = dir.load_token()?;
    let mut provider = ctx.start(account).await?;
    if let Some(t) = &current {
        provider.add_secrets(t.secrets());
    }
    let fresh = provider.accept_push(body).await?;
    let issued = fresh.issued_at.or_else(|| policy::jwt_claim(&fresh.access_token, "iat"));
    if let Some(c) = &current {
        if c.access_token.expose() == fresh.access_token {
            return Err(Error::Rejected("this token is already stored: a replayed push is ignored".into()));
        }
        if let (Some(new), Some(old)) = (issued, c.issued_at)
            && new < old
        {
            return Err(Error::Rejected("the pushed token is older than the stored one".into()));
        }
    }
    if let (Some(new), Some(out)) = (issued, dir.load_status().logged_out_at)
        && new <= out
    {
        return Err(Error::Rejected(format!(
            "the pushed token was issued before the logout at {}: a replay is refused",
            time::iso(out)
        )));
    }
    let stored = ctx.store_new(account, &dir, &provider, fresh);
    ctx.finish(account, &dir, stored).await
}

fn answer(status: u16, outcome: &str, detail: &str) -> Response {
    Response::json(status, &serde_json::json!({ "status": outcome, "detail": detail }))
}
