//! The push listener's request handling, up to the provider: any bytes sent to it get an HTTP
//! answer or a closed connection, never a panic or a hang, and only a 200 changes the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::sync::OnceLock;

fn address() -> std::net::SocketAddr {
    static ADDR: OnceLock<std::net::SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let world = tokenhost_fuzz::world();
        let plans =
            world.plans.iter().filter(|p| p.account == "example").map(|p| (p.account.clone(), p.clone()));
        let accounts = std::sync::Arc::new(std::sync::RwLock::new(plans.collect()));
        let handler = world.service.push_handler(accounts, |_, _| {});
        let limits = tokenhost::listener::Limits {
            head_timeout: std::time::Duration::from_millis(300),
            body_timeout: std::time::Duration::from_millis(300),
            ..Default::default()
        };
        let listener = world
            .rt
            .block_on(tokenhost::listener::Listener::bind("127.0.0.1:0", limits, handler))
            .expect("bind");
        let addr = listener.addr();
        std::mem::forget(listener);
        addr
    })
}

fuzz_target!(|request: &[u8]| {
    let addr = address();
    let before = tokenhost_fuzz::stored("example");
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else { return };
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(15)));
    let _ = conn.write_all(request);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    if let Err(e) = conn.read_to_end(&mut answer)
        && matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
    {
        panic!("no answer within 15 s to {request:?}");
    }
    if !answer.is_empty() {
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1."), "not an HTTP answer: {text:?}");
        let status = &text[9..12.min(text.len())];
        if status != "200" {
            assert_eq!(tokenhost_fuzz::stored("example"), before, "a refused request changed the token");
        }
    }
});
