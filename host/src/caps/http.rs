//! `wasi:http` with the host's policy in its hooks: an allowlist of hosts, TLS unless the
//! host is loopback, clamped timeouts and a cap on response size.

use super::Violations;
use http_body_util::{BodyExt, Limited};
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The HTTP policy of one account.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    /// Account name, for messages.
    pub account: String,
    /// `host` (default port) or `host:port` entries.
    pub allow: Vec<String>,
    /// Where `allow` came from (`tokenhost.toml` or the provider), for messages.
    pub allow_from: &'static str,
    /// Allow `http://` to hosts other than loopback.
    pub allow_plain_http: bool,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the first byte and between bytes.
    pub read_timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
    /// Where breaches go.
    pub violations: Violations,
}

impl HttpPolicy {
    /// `Ok` when the policy lets a request to `uri` through; else why not.
    pub fn check(&self, uri: &http::Uri) -> Result<(), String> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => return Err(format!("scheme {:?} is not allowed", other.unwrap_or(""))),
        };
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let allowed = self.allow.iter().any(|rule| rule_matches(rule, &host, port, https));
        if !allowed {
            return Err(format!(
                "{}://{} is not in the allowlist (from {}: {})",
                if https { "https" } else { "http" },
                authority(&host, port, https),
                self.allow_from,
                if self.allow.is_empty() { "empty".to_string() } else { self.allow.join(", ") }
            ));
        }
        if !https && !self.allow_plain_http && !is_loopback(&host) {
            return Err(format!(
                "plain http to {host} would send credentials unencrypted; use https, or set \
                 `allow_plain_http = true` under [accounts.{}] in tokenhost.toml",
                self.account
            ));
        }
        Ok(())
    }

    /// The config line that would allow `uri`, for the denial message.
    fn fix_for(&self, uri: &http::Uri) -> String {
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or("");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let mut hosts = self.allow.clone();
        hosts.push(authority(host, port, https));
        let list: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        format!("[accounts.{}] allow_hosts = [{}]", self.account, list.join(", "))
    }

    fn clamp(&self, options: Option<RequestOptions>) -> RequestOptions {
        let o = options.unwrap_or_default();
        let cap = |asked: Option<Duration>, max: Duration| Some(asked.map_or(max, |a| a.min(max)));
        RequestOptions {
            connect_timeout: cap(o.connect_timeout, self.connect_timeout),
            first_byte_timeout: cap(o.first_byte_timeout, self.read_timeout),
            between_bytes_timeout: cap(o.between_bytes_timeout, self.read_timeout),
        }
    }
}

fn authority(host: &str, port: u16, https: bool) -> String {
    if port == if https { 443 } else { 80 } { host.to_string() } else { format!("{host}:{port}") }
}

fn rule_matches(rule: &str, host: &str, port: u16, https: bool) -> bool {
    let rule = rule.trim().to_ascii_lowercase();
    match rule.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h == host && p.parse::<u16>() == Ok(port)
        }
        _ => rule == host && port == if https { 443 } else { 80 },
    }
}

/// 127.0.0.0/8, ::1 and localhost.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

type SendResult =
    Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>), HttpError>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if let Err(why) = self.check(request.uri()) {
            let fix = self.fix_for(request.uri());
            tracing::warn!(account = %self.account, "denied HTTP request: {why}; to allow it: {fix}");
            self.violations.record(format!("denied HTTP request: {why}; to allow it: {fix}"));
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let options = self.clamp(options);
        let cap = self.max_response_bytes;
        let target = request.uri().authority().map(|a| a.to_string()).unwrap_or_default();
        let account = self.account.clone();
        tracing::debug!(account = %account, "HTTP {} {}", request.method(), target);
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let response = response.map(move |body| {
                Limited::new(body, cap)
                    .map_err(move |e| match e.downcast::<HttpError>() {
                        Ok(inner) => *inner,
                        Err(_) => {
                            tracing::warn!(account = %account, "response from {target} exceeded {cap} bytes");
                            HttpError::HttpResponseBodySize(Some(cap as u64))
                        }
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> HttpPolicy {
        HttpPolicy {
            account: "acct".into(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
            allow_from: "the provider",
            allow_plain_http: false,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            max_response_bytes: 1024,
            violations: Violations::default(),
        }
    }

    #[test]
    fn allowlist_matches_host_and_port() {
        let p = policy(&["api.broker.example", "127.0.0.1:8080"]);
        let ok = |u: &str| p.check(&u.parse().unwrap()).is_ok();
        assert!(ok("https://api.broker.example/v2/x"));
        assert!(ok("https://API.broker.example:443/"));
        assert!(!ok("https://api.broker.example:8443/"));
        assert!(!ok("https://evil.example/"));
        assert!(!ok("https://api.broker.example.evil.example/"));
        assert!(ok("http://127.0.0.1:8080/login"));
        assert!(!ok("http://127.0.0.1:8081/login"));
        // Plain http leaves loopback only when the user says so.
        let p = policy(&["plain.example"]);
        let err = p.check(&"http://plain.example/".parse().unwrap()).unwrap_err();
        assert!(err.contains("allow_plain_http"), "{err}");
    }

    #[test]
    fn denial_names_the_config_line() {
        let p = policy(&["127.0.0.1:8080"]);
        let fix = p.fix_for(&"https://exfil.example/steal".parse().unwrap());
        assert_eq!(fix, r#"[accounts.acct] allow_hosts = ["127.0.0.1:8080", "exfil.example"]"#);
    }

    #[test]
    fn timeouts_are_clamped() {
        let p = policy(&[]);
        let o = p.clamp(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        }));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.first_byte_timeout, Some(Duration::from_secs(5)));
        let o = p.clamp(Some(RequestOptions {
            first_byte_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        }));
        assert_eq!(o.first_byte_timeout, Some(Duration::from_secs(1)));
    }
}
