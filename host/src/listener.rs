//! The host's one HTTP listener, on the hyper and tokio already in the tree: the daemon's
//! `POST /push/<account>` and `GET /metrics`, and the loopback callback of a browser login.
//! What it answers is the caller's [`Handler`]; what it refuses is its own: a body over the cap
//! gets 413 before a byte of it is read, a client that does not send its request head in time
//! or its body in time is dropped, and open connections are capped (the oldest idle one makes
//! way for a new one), so idle or slow clients cannot keep a real push out.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A request, read whole.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: http::Method,
    /// The path, without the query.
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Request {
    /// The query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// What to answer.
pub type Response = http::Response<Full<Bytes>>;

/// Answers requests.
pub type Handler = Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// A [`Handler`] from an async closure.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

/// A response with a body of `content_type`.
pub fn text(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut r = http::Response::new(Full::new(body.into()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON response.
pub fn json(status: u16, value: &serde_json::Value) -> Response {
    text(status, "application/json", value.to_string())
}

/// What the listener tolerates.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body; a bigger one gets 413 unread.
    pub max_body: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time a client has to send its request head.
    pub head_timeout: Duration,
    /// Time a client has to send its body.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 64 << 10,
            max_connections: 256,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// A listening socket and its connections; dropping it stops accepting.
pub struct Listener {
    addr: SocketAddr,
    conns: Arc<Conns>,
    accept: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Listens on `addr` (`ip:port`; port 0 for any free one), answering with `handler`.
    pub async fn bind(addr: &str, limits: Limits, handler: Handler) -> std::io::Result<Listener> {
        let socket = tokio::net::TcpListener::bind(addr).await?;
        let addr = socket.local_addr()?;
        let conns = Arc::new(Conns::default());
        let accept = tokio::spawn(accept_loop(socket, limits, handler, conns.clone()));
        Ok(Listener { addr, conns, accept })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, then waits (at most `grace`) for the requests being answered.
    pub async fn shutdown(self, grace: Duration) {
        self.accept.abort();
        let until = Instant::now() + grace;
        while self.conns.busy() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The open connections: whether each is answering a request yet, and how to drop it.
#[derive(Default)]
struct Conns {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Conn>>,
}

struct Conn {
    since: Instant,
    busy: Arc<AtomicBool>,
    evict: Arc<Notify>,
}

impl Conns {
    /// Room for one more connection: when full, the oldest one still waiting for its request
    /// head is dropped; when every one is busy, there is no room.
    fn admit(&self, max: usize) -> Option<(u64, Arc<AtomicBool>, Arc<Notify>)> {
        let mut open = self.open.lock().ok()?;
        if open.len() >= max {
            let idle = open
                .iter()
                .filter(|(_, c)| !c.busy.load(Ordering::SeqCst))
                .min_by_key(|(_, c)| c.since)
                .map(|(id, _)| *id)?;
            if let Some(c) = open.remove(&idle) {
                c.evict.notify_one();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (busy, evict) = (Arc::new(AtomicBool::new(false)), Arc::new(Notify::new()));
        open.insert(id, Conn { since: Instant::now(), busy: busy.clone(), evict: evict.clone() });
        Some((id, busy, evict))
    }

    fn close(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    fn busy(&self) -> usize {
        self.open.lock().map(|o| o.values().filter(|c| c.busy.load(Ordering::SeqCst)).count()).unwrap_or(0)
    }
}

async fn accept_loop(socket: tokio::net::TcpListener, limits: Limits, handler: Handler, conns: Arc<Conns>) {
    loop {
        let stream = match socket.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close.
                tracing::warn!("listener on {:?}: {e}", socket.local_addr().ok());
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((id, busy, evict)) = conns.admit(limits.max_connections) else {
            tracing::warn!(
                "listener: {} connections are all busy; one more was closed",
                limits.max_connections
            );
            continue;
        };
        let (handler, conns) = (handler.clone(), conns.clone());
        tokio::spawn(async move {
            serve(stream, limits, handler, busy, evict).await;
            conns.close(id);
        });
    }
}

/// Answers one request on `stream` (no keep-alive), unless the client is too slow to send its
/// head or the connection is evicted first.
async fn serve(
    stream: tokio::net::TcpStream,
    limits: Limits,
    handler: Handler,
    busy: Arc<AtomicBool>,
    evict: Arc<Notify>,
) {
    let marked = busy.clone();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        marked.store(true, Ordering::SeqCst);
        let handler = handler.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(req, limits, handler).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(wasmtime_wasi_http::io::TokioIo::new(stream), service);
    let head_deadline = async {
        tokio::time::sleep(limits.head_timeout).await;
        if busy.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = conn => {}
        _ = evict.notified() => {}
        _ = head_deadline => {}
    }
}

async fn answer(req: http::Request<hyper::body::Incoming>, limits: Limits, handler: Handler) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return too_large(limits);
    }
    let body = match tokio::time::timeout(limits.body_timeout, Limited::new(body, limits.max_body).collect())
        .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(limits),
        Ok(Err(_)) => return text(400, "text/plain", "the request body could not be read"),
        Err(_) => return text(408, "text/plain", "the request body did not arrive in time"),
    };
    let request = Request {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        headers: parts.headers,
        body,
    };
    handler(request).await
}

fn too_large(limits: Limits) -> Response {
    text(413, "text/plain", format!("the body is over {} bytes", limits.max_body))
}

/// Splits and percent-decodes `a=1&b=2` (also a form body).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
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
        assert_eq!(
            parse_query("a=100%&b=%4&c=%41&d=%zz"),
            [("a", "100%"), ("b", "%4"), ("c", "A"), ("d", "%zz")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    async fn echo(limits: Limits) -> Listener {
        let h = handler(|req: Request| async move { text(200, "text/plain", req.body) });
        Listener::bind("127.0.0.1:0", limits, h).await.unwrap()
    }

    /// Reads what the server sends until it closes; `None` if it stays silent for 5 s.
    async fn read_all(c: &mut tokio::net::TcpStream) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
        r.ok().map(|_| String::from_utf8_lossy(&buf).into_owned())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn slow_clients_are_dropped_and_bodies_capped() {
        use tokio::io::AsyncWriteExt;
        let limits = Limits {
            max_body: 8,
            head_timeout: Duration::from_millis(200),
            body_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let l = echo(limits).await;
        // No request head: dropped after the head timeout, nothing answered.
        let mut idle = tokio::net::TcpStream::connect(l.addr()).await.unwrap();
        let started = Instant::now();
        assert_eq!(read_all(&mut idle).await.as_deref(), Some(""));
        assert!(started.elapsed() >= Duration::from_millis(200));
        // Half a body: 408 after the body timeout.
        let mut slow = tokio::net::TcpStream::connect(l.addr()).await.unwrap();
        slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nabc").await.unwrap();
        assert!(read_all(&mut slow).await.unwrap().starts_with("HTTP/1.1 408"));
        // Over the cap, chunked (no length to refuse up front): 413.
        let mut big = tokio::net::TcpStream::connect(l.addr()).await.unwrap();
        big.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
            .await
            .unwrap();
        assert!(read_all(&mut big).await.unwrap().starts_with("HTTP/1.1 413"));
        // Within the cap: answered.
        let mut ok = tokio::net::TcpStream::connect(l.addr()).await.unwrap();
        ok.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").await.unwrap();
        let answer = read_all(&mut ok).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"), "{answer}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_listener_drops_its_oldest_idle_connection_for_a_new_one() {
        use tokio::io::AsyncWriteExt;
        let l = echo(Limits { max_connections: 2, ..Limits::default() }).await;
        let mut oldest = tokio::net::TcpStream::connect(l.addr()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _second = tokio::net::TcpStream::connect(l.addr()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut third = tokio::net::TcpStream::connect(l.addr()).await.unwrap();
        third.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi").await.unwrap();
        assert!(read_all(&mut third).await.unwrap().ends_with("hi"));
        assert_eq!(read_all(&mut oldest).await.as_deref(), Some(""), "the oldest idle one was dropped");
        l.shutdown(Duration::from_secs(1)).await;
    }
}
