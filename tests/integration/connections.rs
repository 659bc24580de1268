//! Connection limits over raw TCP: a client that never finishes its request head, a kept-alive
//! connection left silent, a request body that stalls, and more clients than the connection cap.
//! Each of them used to hold its connection (and a descriptor) forever.
//!
//! Timing bounds are generous (a loaded CI machine): the point is closed versus held forever.

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use hookgate_tests::{
    SEED_CONFIG,
    server::{Backend, ServerOptions, TestServer},
};

/// The seed config with extra `general_settings` lines.
fn config(extra: &[&str]) -> String {
    let lines: String = extra.iter().map(|line| format!("  {line}\n")).collect();
    let config =
        SEED_CONFIG.replacen("general_settings:\n", &format!("general_settings:\n{lines}"), 1);
    assert_ne!(config, SEED_CONFIG, "the seed config has a general_settings section");
    config
}

fn start(extra: &[&str]) -> TestServer {
    let config = config(extra);
    TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { config: &config, ..Default::default() },
    )
}

fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect")
}

/// A connection from `source`, another loopback address (all of 127.0.0.0/8 is local on Linux).
fn connect_from(server: &TestServer, source: &str) -> TcpStream {
    let target: std::net::SocketAddr =
        server.base.trim_start_matches("http://").parse().expect("the server's address");
    let source: std::net::IpAddr = source.parse().expect("a source address");
    let stream = hookgate_tests::server::block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::new(source, 0))?;
        socket.connect(target).await?.into_std()
    })
    .unwrap_or_else(|error| panic!("connect from {source}: {error}"));
    stream.set_nonblocking(false).expect("blocking");
    stream
}

/// Whether the server has closed the connection (a read sees the end or a reset at once).
fn closed_now(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).expect("blocking");
    closed
}

/// Sends a `GET /health/liveliness` and reads the answer until the server closes.
fn liveliness(stream: &mut TcpStream, deadline: Instant) -> Outcome {
    stream
        .write_all(
            b"GET /health/liveliness HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .expect("write");
    read_until_closed(stream, deadline)
}

/// What became of a connection by `deadline`.
#[derive(Debug)]
enum Outcome {
    /// The server closed it (EOF or reset), after sending these bytes.
    Closed(String),
    /// Still open at the deadline, after these bytes.
    Open(String),
}

/// Reads until the server closes the connection or `deadline` passes.
fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> Outcome {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::Open(String::from_utf8_lossy(&received).into_owned());
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return Outcome::Closed(String::from_utf8_lossy(&received).into_owned()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            // Reset or aborted: closed by the server.
            Err(_) => return Outcome::Closed(String::from_utf8_lossy(&received).into_owned()),
        }
    }
}

/// Whether the server has neither answered nor closed the connection yet (a read would block).
fn still_waiting(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let waiting =
        matches!(stream.read(&mut byte), Err(error) if error.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).expect("blocking");
    waiting
}

#[test]
fn half_sent_request_heads_are_closed_after_the_header_read_timeout() {
    let server = start(&["http_header_read_timeout: 1s"]);
    let opened = Instant::now();
    let mut streams: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = connect(&server);
            stream
                .write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: localhost\r\n")
                .expect("write");
            stream
        })
        .collect();
    // Loose lower bound: not refused on sight (checked only while surely inside the timeout).
    if opened.elapsed() < Duration::from_millis(500) {
        assert!(still_waiting(streams.last_mut().unwrap()), "closed before the timeout");
    }
    // Meanwhile the server answers everyone else.
    let reply = server.get("/health/liveliness", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    // ~1 s; 15 s for a loaded machine. Without the timeout they are held forever.
    let deadline = opened + Duration::from_secs(15);
    for (n, stream) in streams.iter_mut().enumerate() {
        match read_until_closed(stream, deadline) {
            Outcome::Closed(bytes) => {
                assert!(!bytes.contains("I'm alive"), "connection {n} was answered: {bytes}")
            }
            Outcome::Open(bytes) => panic!(
                "connection {n} still open {:?} after sending half a request head ({bytes:?})\n{}",
                opened.elapsed(),
                server.logs()
            ),
        }
    }
    assert_eq!(server.get("/health/liveliness", &[]).status, 200);
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    // A long header-read timeout, so that only the idle timeout can close the connection.
    let server = start(&["http_idle_timeout: 1s", "http_header_read_timeout: 60s"]);
    let mut stream = connect(&server);
    let request = b"GET /health/liveliness HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // Keep-alive works: two requests on one connection.
    let mut received = String::new();
    for round in 1..=2 {
        stream.write_all(request).expect("write");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buffer = [0u8; 4096];
        while received.matches("I'm alive").count() < round {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no answer to request {round}: {received}");
            stream.set_read_timeout(Some(left)).unwrap();
            let n = stream.read(&mut buffer).expect("read the answer");
            assert_ne!(n, 0, "closed before answering request {round}: {received}");
            received.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    }
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    let answered = Instant::now();
    // Then silence: ~1 s; 15 s for a loaded machine (the header-read timeout is 60 s).
    match read_until_closed(&mut stream, answered + Duration::from_secs(15)) {
        Outcome::Closed(bytes) => assert!(bytes.is_empty(), "unexpected bytes: {bytes}"),
        Outcome::Open(_) => {
            panic!("idle keep-alive connection still open after 15 s\n{}", server.logs())
        }
    }
    // Loose lower bound: kept alive for a while, not closed right after the answer.
    assert!(
        answered.elapsed() >= Duration::from_millis(500),
        "closed after {:?}",
        answered.elapsed()
    );
}

#[test]
fn stalled_request_bodies_get_408_after_the_body_timeout() {
    let server = start(&["http_body_timeout: 1s"]);
    let mut stream = connect(&server);
    let sent = Instant::now();
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\nusername=a",
        )
        .expect("write");
    // ~1 s; 15 s for a loaded machine. Without the timeout the handler waits forever.
    let outcome = read_until_closed(&mut stream, sent + Duration::from_secs(15));
    let Outcome::Closed(response) = outcome else {
        panic!("stalled body still waiting after 15 s: {outcome:?}\n{}", server.logs());
    };
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("did not arrive within 1s"), "{response}");
    assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-request-id:"), "{response}");
    assert!(sent.elapsed() >= Duration::from_millis(500), "answered after {:?}", sent.elapsed());
    // A whole body is still read as before.
    let reply = server.post_form("/login", "username=a&password=b", &[]);
    assert_ne!(reply.status, 408, "{reply:?}");
}

#[test]
fn connections_beyond_the_cap_wait_in_the_backlog_until_a_slot_frees() {
    let server = start(&["max_connections: 10", "http_header_read_timeout: 2s"]);
    let opened = Instant::now();
    let mut silent: Vec<TcpStream> = (0..10).map(|_| connect(&server)).collect();
    // The 11th connects (the kernel completes the handshake) but is not served yet.
    let mut eleventh = connect(&server);
    eleventh
        .write_all(
            b"GET /health/liveliness HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .expect("write");
    let waited = Instant::now();
    eleventh.set_read_timeout(Some(Duration::from_millis(1000))).unwrap();
    let mut byte = [0u8; 1];
    match eleventh.read(&mut byte) {
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!(
            "the 11th connection was served {:?} after connecting, while 10 held every slot: {other:?}",
            waited.elapsed()
        ),
    }
    // Once the silent ones time out (~2 s), it is accepted and answered: 20 s for a loaded machine.
    let deadline = opened + Duration::from_secs(20);
    match read_until_closed(&mut eleventh, deadline) {
        Outcome::Closed(response) => {
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            assert!(response.contains("I'm alive"), "{response}");
        }
        Outcome::Open(bytes) => {
            panic!("the 11th connection never answered ({bytes:?})\n{}", server.logs())
        }
    }
    for (n, stream) in silent.iter_mut().enumerate() {
        assert!(
            matches!(read_until_closed(stream, deadline), Outcome::Closed(_)),
            "silent connection {n} still open"
        );
    }
    // The server never stopped accepting.
    assert_eq!(server.get("/health/liveliness", &[]).status, 200);
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_closes_idle_connections() {
    let config = r#"general_settings:
  custom_ui_sso_sign_in_handler: fixture_misbehaving.slow_sign_in
  plugin_dirs: ["{plugins}"]
  trusted_proxy_ranges: ["127.0.0.1/32"]
  hook_timeout: 30s
"#;
    let mut server =
        TestServer::start_with(&Backend::Sqlite, ServerOptions { config, ..Default::default() });
    // A silent connection and an idle kept-alive one must not hold up the shutdown (the idle
    // timeout is 60 s, the header-read timeout 10 s, stop() gives up after 20 s).
    let mut silent = connect(&server);
    let mut idle = connect(&server);
    idle.write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut buffer = [0u8; 4096];
    idle.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let n = idle.read(&mut buffer).expect("answer");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    // A request in flight when SIGTERM arrives.
    let mut slow = connect(&server);
    slow.write_all(
        b"GET /sso/key/generate HTTP/1.1\r\nHost: localhost\r\nx-forwarded-user: slow\r\n\
          x-sleep-ms: 2000\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let reader = std::thread::spawn(move || {
        read_until_closed(&mut slow, Instant::now() + Duration::from_secs(30))
    });
    std::thread::sleep(Duration::from_millis(500));
    let status = server.stop();
    assert!(status.success(), "{status}\n{}", server.logs());
    match reader.join().unwrap() {
        Outcome::Closed(response) => {
            assert!(response.starts_with("HTTP/1.1 303"), "{response}\n{}", server.logs())
        }
        Outcome::Open(bytes) => panic!("in-flight request not finished: {bytes:?}"),
    }
    for stream in [&mut silent, &mut idle] {
        let outcome = read_until_closed(stream, Instant::now() + Duration::from_secs(5));
        assert!(matches!(outcome, Outcome::Closed(_)), "{outcome:?}");
    }
}

#[test]
fn one_client_address_cannot_take_every_connection() {
    // Long head timeouts: only the per-client share can close a silent connection here.
    let server = start(&[
        "max_connections: 8",
        "max_connections_per_client: 3",
        "http_header_read_timeout: 60s",
        "http_first_request_timeout: 60s",
    ]);
    // A greedy client (127.0.0.2) opens as many silent connections as the whole cap.
    let mut greedy: Vec<TcpStream> = (0..8).map(|_| connect_from(&server, "127.0.0.2")).collect();
    // All but its share are closed at once (15 s for a loaded machine; without the share they
    // are held for the 60 s header-read timeout).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut closed = vec![false; greedy.len()];
    while closed.iter().filter(|closed| **closed).count() < 5 && Instant::now() < deadline {
        for (stream, closed) in greedy.iter_mut().zip(closed.iter_mut()) {
            *closed = *closed || closed_now(stream);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        closed.iter().filter(|closed| **closed).count(),
        5,
        "{closed:?}: the greedy client keeps more than its share\n{}",
        server.logs()
    );
    let mut held: Vec<TcpStream> =
        greedy.into_iter().zip(&closed).filter(|(_, closed)| !**closed).map(|(s, _)| s).collect();
    assert!(held.iter_mut().all(still_waiting));
    // Another client is served at once.
    let mut other = connect_from(&server, "127.0.0.3");
    match liveliness(&mut other, Instant::now() + Duration::from_secs(15)) {
        Outcome::Closed(answer) => assert!(answer.starts_with("HTTP/1.1 200"), "{answer}"),
        Outcome::Open(bytes) => {
            panic!("another client was starved ({bytes:?})\n{}", server.logs())
        }
    }
    // The trusted proxy (127.0.0.1) carries everyone's traffic: it is not held to the share.
    let mut proxy: Vec<TcpStream> = (0..4).map(|_| connect(&server)).collect();
    let mut request = connect(&server);
    match liveliness(&mut request, Instant::now() + Duration::from_secs(15)) {
        Outcome::Closed(answer) => assert!(answer.starts_with("HTTP/1.1 200"), "{answer}"),
        Outcome::Open(bytes) => panic!("the proxy was refused ({bytes:?})\n{}", server.logs()),
    }
    assert!(proxy.iter_mut().all(still_waiting), "a proxy connection was closed");
    // Connections the greedy client closes free its share.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut again = connect_from(&server, "127.0.0.2");
        match liveliness(&mut again, deadline) {
            Outcome::Closed(answer) if answer.starts_with("HTTP/1.1 200") => break,
            outcome => assert!(
                Instant::now() < deadline,
                "the share is never freed: {outcome:?}\n{}",
                server.logs()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.logged("max_connections_per_client (3)"), "{}", server.logs());
}

#[test]
fn a_new_connection_gets_less_time_for_its_first_request_than_a_kept_alive_one_between_requests() {
    let server = start(&["http_first_request_timeout: 1s", "http_header_read_timeout: 60s"]);
    let mut silent = connect(&server);
    let mut kept_alive = connect(&server);
    let request = b"GET /health/liveliness HTTP/1.1\r\nHost: localhost\r\n\r\n";
    kept_alive.write_all(request).expect("write");
    let mut buffer = [0u8; 4096];
    kept_alive.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let n = kept_alive.read(&mut buffer).expect("answer");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let opened = Instant::now();
    // ~1 s; 15 s for a loaded machine (the header-read timeout is 60 s).
    match read_until_closed(&mut silent, opened + Duration::from_secs(15)) {
        Outcome::Closed(bytes) => assert!(bytes.is_empty(), "{bytes}"),
        Outcome::Open(_) => panic!("a silent new connection still open after 15 s"),
    }
    // The kept-alive one, silent as long, is still open and serves its next request.
    assert!(still_waiting(&mut kept_alive), "the kept-alive connection was closed");
    kept_alive.write_all(request).expect("write");
    let n = kept_alive.read(&mut buffer).expect("answer");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
}
