//! Clients that hold connections open: a request body that stalls is answered 408 and its
//! connection closed within `BODY_READ_TIMEOUT`, while other requests are served meanwhile;
//! and one address cannot hold more than `MAX_CONNECTIONS_PER_IP` connections.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{PASSWORD, json, spawn_app_with};

/// Stalled bodies at once.
const STALLED: usize = 20;

fn port_of(address: &str) -> u16 {
    url::Url::parse(address)
        .expect("address")
        .port()
        .expect("port")
}

/// Reads until the server closes the connection (at most `limit`); `None` if it did not.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut out)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&out).into_owned()),
        // A reset after the answer is a close too.
        Ok(Err(_)) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn stalled_request_bodies_get_408_and_are_closed_while_others_are_served() {
    let app = spawn_app_with(|env| {
        env.insert("BODY_READ_TIMEOUT".into(), "1s".into());
    })
    .await;
    app.verified_user("ana", "ana@example.com", PASSWORD).await;
    let port = port_of(&app.address);

    // Heads complete, bodies promised and never finished.
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream
            .write_all(
                b"POST /api/v1/password-resets HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                  Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"lo",
            )
            .await
            .expect("send the head");
        stalled.push(stream);
    }
    // Meanwhile the service answers others at once.
    for _ in 0..3 {
        let t = Instant::now();
        json(app.get("/health/live").await, 200).await;
        app.login("ana", PASSWORD).await;
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "slow while stalled"
        );
    }

    let waits = stalled
        .iter_mut()
        .map(|s| read_to_close(s, Duration::from_secs(5)));
    for answer in futures_util::future::join_all(waits).await {
        let answer = answer.expect("the stalled connection was not closed within 5 s");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        let lower = answer.to_lowercase();
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(lower.contains("connection: close"), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}, configured 1 s"
    );
    // A body that arrives in time is read as usual.
    json(
        app.post(
            "/api/v1/password-resets",
            serde_json::json!({"login": "ana"}),
        )
        .await,
        202,
    )
    .await;
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_connections() {
    const CAP: usize = 5;
    let app = spawn_app_with(|env| {
        env.insert("MAX_CONNECTIONS_PER_IP".into(), CAP.to_string());
    })
    .await;
    let port = port_of(&app.address);
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        // Each one in use: a complete request answered, the connection kept alive.
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("send");
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer")
            .expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }

    // One more from the same address: refused at once with a 429 and closed.
    let started = Instant::now();
    let mut extra = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let answer = read_to_close(&mut extra, Duration::from_secs(3))
        .await
        .expect("the connection over the cap was not closed");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains(r#""code":"rate_limited""#), "{answer}");

    // Once one closes, a new connection is served again (bounded wait for the count).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = reqwest::Client::new()
            .get(app.url("/health/live"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if fresh.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served again after a close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
