//! Hostile clients against a real `kefu serve` over loopback: slow-header (slowloris) and idle
//! connections are closed, the server keeps answering meanwhile, a half-sent request does not hold
//! up shutdown, and malformed WebSocket frames close with the right codes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kefu_e2e::Server;

/// Whether the server closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 or similar before closing
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_and_idle_clients_are_closed_and_shutdown_is_bounded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(
        tmp.path(),
        &["--header-read-timeout", "2s", "--drain-timeout", "3s"],
    );
    let addr = server.addr();

    // A bare connect that never speaks, and a slowloris that trickles one header byte a second.
    let mut idle = TcpStream::connect(&addr).expect("connect");
    let mut slow = TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let trickle = std::thread::spawn(move || {
        for _ in 0..8 {
            if slow.write_all(b"X").is_err() {
                return (slow, true);
            }
            std::thread::sleep(Duration::from_millis(700));
        }
        let closed = closed_within(&mut slow, Duration::from_secs(1));
        (slow, closed)
    });
    // The server answers others meanwhile.
    let health = reqwest::blocking::get(server.url("/healthz")).expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "an idle connection is closed"
    );
    let (_slow, closed) = trickle.join().expect("join");
    assert!(closed, "a slowloris client is closed despite sending bytes");

    // A request whose body never finishes must not block shutdown beyond the drain timeout.
    let mut half = TcpStream::connect(&addr).expect("connect");
    half.write_all(
        b"POST /v1/visitor/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"site",
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert!(server.terminate(), "kefu exits cleanly on SIGTERM");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "shutdown took {took:?} with a half-sent request open"
    );
}

#[test]
fn malformed_websocket_frames_close_with_protocol_codes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(tmp.path(), &[]);
    let addr = server.addr();
    // A valid upgrade, then a raw frame the client must not send.
    let cases: [(&[u8], u16); 3] = [
        // Unmasked text frame "hi" (clients must mask): protocol error.
        (&[0x81, 0x02, b'h', b'i'], 1002),
        // Masked text frame with RSV1 set and no extension negotiated: protocol error.
        (&[0xC1, 0x82, 0, 0, 0, 0, b'h', b'i'], 1002),
        // Masked text frame whose payload is not UTF-8.
        (&[0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28], 1007),
    ];
    for (frame, want) in cases {
        let mut s = TcpStream::connect(&addr).expect("connect");
        let req = format!(
            "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("write");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).expect("upgrade response");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        s.write_all(frame).expect("frame");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        // The server's close frame: 0x88, length, then the code (big-endian).
        let close = out
            .windows(2)
            .position(|w| w[0] == 0x88)
            .expect("a close frame");
        let code = u16::from_be_bytes([out[close + 2], out[close + 3]]);
        assert_eq!(code, want, "frame {frame:02x?}");
    }
}
