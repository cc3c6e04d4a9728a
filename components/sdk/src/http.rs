//! HTTP over `wasi:http`. The host allows only the hosts the provider declared (or the user
//! configured), caps response sizes and enforces timeouts; this side just speaks HTTP.

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::{ProviderError, Result, protocol, transient};
use serde::de::DeserializeOwned;

const SECOND_NS: u64 = 1_000_000_000;

/// A request being built. Start with [`get`], [`post`], [`delete`] or [`request`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_secs: u64,
}

/// A GET request to `url`.
pub fn get(url: &str) -> Request {
    request("GET", url)
}

/// A POST request to `url`.
pub fn post(url: &str) -> Request {
    request("POST", url)
}

/// A DELETE request to `url`.
pub fn delete(url: &str) -> Request {
    request("DELETE", url)
}

/// A request with any method.
pub fn request(method: &str, url: &str) -> Request {
    Request {
        method: method.to_ascii_uppercase(),
        url: url.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_secs: 20,
    }
}

impl Request {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Request {
        self.body = serde_json::to_vec(body).unwrap_or_default();
        self.header("Content-Type", "application/json")
    }

    /// Sets an `application/x-www-form-urlencoded` body and its content type.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Request {
        let encoded: Vec<String> =
            fields.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect();
        self.body = encoded.join("&").into_bytes();
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// How long to wait for the connection and for each part of the answer (default 20 s;
    /// the host may clamp it).
    pub fn timeout_secs(mut self, secs: u64) -> Request {
        self.timeout_secs = secs;
        self
    }

    /// Sends the request. Network failures are `transient`; any status is a response.
    pub fn send(self) -> Result<Response> {
        let url = Url::parse(&self.url)?;
        let headers = Fields::new();
        let mut list = self.headers.clone();
        // Some brokers refuse chunked uploads; a known length is always accepted.
        if !self.body.is_empty() && !list.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
            list.push(("Content-Length".into(), self.body.len().to_string()));
        }
        for (name, value) in &list {
            headers
                .append(name, value.as_bytes())
                .map_err(|e| protocol(format!("header `{name}` refused: {e:?}")))?;
        }
        let request = OutgoingRequest::new(headers);
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "HEAD" => Method::Head,
            other => Method::Other(other.to_string()),
        };
        let bad = |what: &str| protocol(format!("invalid {what} in {}", url.redacted()));
        request.set_method(&method).map_err(|_| bad("method"))?;
        let scheme = if url.https { Scheme::Https } else { Scheme::Http };
        request.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
        request.set_authority(Some(&url.authority)).map_err(|_| bad("host"))?;
        request.set_path_with_query(Some(&url.path)).map_err(|_| bad("path"))?;

        let options = RequestOptions::new();
        let timeout = Some(self.timeout_secs.saturating_mul(SECOND_NS));
        // Setting an option the host does not support fails; the host's own limits still hold.
        let _ = options.set_connect_timeout(timeout);
        let _ = options.set_first_byte_timeout(timeout);
        let _ = options.set_between_bytes_timeout(timeout);

        let body = request.body().map_err(|_| protocol("request body already taken"))?;
        let pending = outgoing_handler::handle(request, Some(options)).map_err(network_error)?;
        write_body(&body, &self.body)?;
        OutgoingBody::finish(body, None).map_err(network_error)?;

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(network_error(code)),
            Some(Err(())) | None => return Err(transient("HTTP response lost")),
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|_| transient("response body unavailable"))?;
        let stream = incoming.stream().map_err(|_| transient("response body unavailable"))?;
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(transient(format!("reading the response: {}", e.to_debug_string())));
                }
            }
        }
        drop(stream);
        Ok(Response { status, headers, body: bytes })
    }
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body.write().map_err(|_| transient("request body unavailable"))?;
    for chunk in bytes.chunks(4096) {
        stream.blocking_write_and_flush(chunk).map_err(|_| transient("sending the request body failed"))?;
    }
    Ok(())
}

fn network_error(code: ErrorCode) -> ProviderError {
    let what = match code {
        ErrorCode::HttpRequestDenied => "the host denied the request (host not allowed)".to_string(),
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) => "DNS lookup failed".to_string(),
        ErrorCode::ConnectionRefused => "connection refused".to_string(),
        ErrorCode::ConnectionTimeout => "connection timed out".to_string(),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            "the broker did not answer in time".to_string()
        }
        ErrorCode::HttpResponseBodySize(_) => "the answer was larger than the host allows".to_string(),
        ErrorCode::HttpProtocolError | ErrorCode::ConnectionTerminated => {
            "the broker closed the connection without a complete answer".to_string()
        }
        ErrorCode::TlsCertificateError | ErrorCode::TlsAlertReceived(_) | ErrorCode::TlsProtocolError => {
            "the TLS handshake with the broker failed (certificate not trusted?)".to_string()
        }
        other => format!("HTTP failure: {other:?}"),
    };
    transient(what)
}

/// An answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body parsed as JSON; anything else is a `protocol` error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|_| protocol(format!("HTTP {} with a body that is not the expected JSON", self.status)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// 5xx, 429 and 408: worth retrying later.
    pub fn is_transient(&self) -> bool {
        self.status >= 500 || self.status == 429 || self.status == 408
    }
}

/// The pieces of an `http(s)://authority/path?query` URL.
struct Url {
    https: bool,
    authority: String,
    path: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(protocol("URL must start with https:// or http://"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(protocol("URL has no usable host"));
        }
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
        Ok(Url { https, authority: authority.to_string(), path })
    }

    /// The URL without its query, which may hold secrets.
    fn redacted(&self) -> String {
        let path = self.path.split('?').next().unwrap_or("");
        format!("{}://{}{}", if self.https { "https" } else { "http" }, self.authority, path)
    }
}

/// The `host[:port]` of `url`, if it is an http(s) URL.
pub fn authority_of(url: &str) -> Option<String> {
    Url::parse(url).ok().map(|u| u.authority)
}

/// `url` without a trailing slash, so that `format!("{root}/path")` is right.
pub fn trim_root(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The value of query parameter `name` in `params`.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

impl From<ErrorCode> for ProviderError {
    fn from(code: ErrorCode) -> Self {
        network_error(code)
    }
}
