//! The mock brokers' own tiny HTTP/1.1 server (a thread per connection, one request per
//! connection), with the knobs only a mock needs: answer late, or hang up without answering.
//! And [`http`], a minimal client that plays a browser or a broker posting a webhook.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Largest request body a server reads unless told otherwise.
pub const MAX_BODY: usize = 1 << 20;

/// A request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as `application/x-www-form-urlencoded` fields.
    pub fn form(&self) -> BTreeMap<String, String> {
        parse_query(&String::from_utf8_lossy(&self.body)).into_iter().collect()
    }

    /// The query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Close the connection without answering.
    pub hang_up: bool,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::raw(status, "application/json", value.to_string().into_bytes())
    }

    /// Any body with its content type.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            delay: None,
            hang_up: false,
        }
    }

    /// A redirect.
    pub fn redirect(location: &str) -> Response {
        let mut r = Response::raw(302, "text/plain", "redirecting");
        r.headers.push(("Location".into(), location.into()));
        r
    }

    /// Answers after `delay`.
    pub fn after(mut self, delay: Duration) -> Response {
        self.delay = Some(delay);
        self
    }

    /// Drops the connection instead of answering.
    pub fn hang_up() -> Response {
        let mut r = Response::raw(500, "text/plain", "");
        r.hang_up = true;
        r
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running server; stops when dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections being answered.
    busy: Arc<std::sync::atomic::AtomicUsize>,
}

impl Server {
    /// Starts serving `handler` on a free port of 127.0.0.1.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> std::io::Result<Server> {
        Server::bind("127.0.0.1:0", handler)
    }

    /// Starts serving `handler` on `addr`.
    pub fn bind(
        addr: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> std::io::Result<Server> {
        Server::bind_limited(addr, MAX_BODY, handler)
    }

    /// Starts serving `handler` on `addr`; bodies over `max_body` bytes get 413 unread.
    pub fn bind_limited(
        addr: &str,
        max_body: usize,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let stopping = stop.clone();
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = busy.clone();
        std::thread::Builder::new().name("http-accept".into()).spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                let counter = counter.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    serve(conn, max_body, &*handler);
                    counter.fetch_sub(1, Ordering::SeqCst);
                });
            }
        })?;
        Ok(Server { addr, stop, busy })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits (at most `limit`) until every answer in progress has been sent, so that a
    /// process about to exit does not cut one off.
    pub fn drain(&self, limit: Duration) {
        let until = std::time::Instant::now() + limit;
        while self.busy.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(conn: TcpStream, max_body: usize, handler: &Handler) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut writer = conn;
    let response = match read_request(&mut reader, max_body) {
        Ok(Some(req)) => handler(&req),
        Ok(None) => return,
        Err(status) => Response::raw(status, "text/plain", "bad request"),
    };
    if let Some(d) = response.delay {
        std::thread::sleep(d);
    }
    if response.hang_up {
        return;
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", response.body.len()));
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.write_all(&response.body);
    let _ = writer.flush();
}

fn read_request(r: &mut impl BufRead, max_body: usize) -> Result<Option<Request>, u16> {
    let mut line = String::new();
    if r.read_line(&mut line).map_err(|_| 400u16)? == 0 {
        return Ok(None);
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method.is_empty() || !target.starts_with('/') {
        return Err(400);
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_err(|_| 400u16)? == 0 {
            return Err(400);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or(400u16)?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        if headers.len() > 100 {
            return Err(431);
        }
    }
    let find =
        |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v): &(String, String)| v.clone());
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).map_err(|_| 400u16)?;
            let n =
                usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).map_err(|_| 400u16)?;
            if body.len() + n > max_body {
                return Err(413);
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).map_err(|_| 400u16)?;
            body.extend_from_slice(&chunk[..n]);
            if n == 0 {
                break;
            }
        }
    } else if let Some(len) = find("content-length") {
        let n: usize = len.parse().map_err(|_| 400u16)?;
        if n > max_body {
            return Err(413);
        }
        body.resize(n, 0);
        r.read_exact(&mut body).map_err(|_| 400u16)?;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: parse_query(query),
        headers,
        body,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Splits and percent-decodes `a=1&b=2`.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// Decodes the `%XX` of a path segment.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A minimal plain-HTTP client (a browser following one link, a broker POSTing a webhook):
/// status, headers (lower-case names) and body; status 0 when nothing could be read.
pub fn http(method: &str, url: &str, body: &[u8]) -> (u16, BTreeMap<String, String>, String) {
    let (status, headers, body) = request(method, url, &[("Content-Type", "application/json")], body);
    (status, headers.into_iter().collect(), body)
}

/// One plain-HTTP request with `headers`: status, every header line (lower-case names, in
/// order, repeated ones kept) and body; status 0 when nothing could be read.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    use std::io::Read;
    let failed = || (0, Vec::new(), String::new());
    let Some(rest) = url.strip_prefix("http://") else { return failed() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let Ok(mut conn) = std::net::TcpStream::connect(authority) else { return failed() };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    if conn.write_all(head.as_bytes()).is_err() {
        return failed();
    }
    let _ = conn.write_all(body);
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        assert_eq!(
            parse_query("a=1&b=x%20y+z&c"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x y z".to_string()),
                ("c".to_string(), String::new()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
