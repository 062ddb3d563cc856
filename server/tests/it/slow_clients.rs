//! Slow clients over raw sockets: headers that never end and bodies that
//! trickle are cut off in bounded time, with a clear answer, and the
//! server serves everyone else meanwhile.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::Server;

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes the connection.
fn answer(mut stream: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn headers_that_never_end_and_trickling_bodies_are_cut_off() {
    let server = Server::start_with(&["--header-timeout-secs", "1", "--body-timeout-secs", "2"]);

    // Headers that never end: the connection is closed at the cut-off
    // (hyper sends nothing: there is no request to answer).
    let started = Instant::now();
    let mut slow = connect(&server);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    // Meanwhile everyone else is served.
    let healthy = server.http().get(server.url("/healthz")).send().unwrap();
    assert!(healthy.status().is_success());
    let got = answer(slow);
    let took = started.elapsed();
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // A body sent a byte at a time, never finishing: however it trickles,
    // the body extractor gives up at the cut-off with the project's error.
    let started = Instant::now();
    let mut slow = connect(&server);
    let head = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{{",
        server.key
    );
    slow.write_all(head.as_bytes()).unwrap();
    let trickle = std::thread::spawn({
        let mut slow = slow.try_clone().unwrap();
        move || {
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(250));
                if slow.write_all(b" ").is_err() {
                    break;
                }
            }
        }
    });
    let got = answer(slow);
    let took = started.elapsed();
    trickle.join().unwrap();
    assert!(got.starts_with("HTTP/1.1 408"), "{got:?}");
    assert!(got.contains(r#""code":"body_timeout""#), "{got:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Nothing was recorded.
    let jobs: serde_json::Value = server
        .http()
        .get(server.url("/api/v1/jobs"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(jobs["jobs"], serde_json::json!([]));
}
