//! What the recorder's process tests share: stopping a recorder as a service manager does, and
//! reading its `--listen` endpoints.

#![allow(dead_code)] // each test binary uses what it needs

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Sends SIGTERM and waits (10 s at most) for the process to stop; its exit status.
pub(crate) fn terminate(child: &mut Child) -> ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "crema-recorder did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `GET path` on `addr`: the status and the body.
pub(crate) fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The address a recorder logging to `log` said it serves `/metrics` and `/healthz` on.
pub(crate) fn listening(log: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = said
            .split("serving /metrics and /healthz on http://")
            .nth(1)
        {
            return at.split_whitespace().next().unwrap().to_owned();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the recorder exited: {said}"
        );
        assert!(Instant::now() < deadline, "no listening line: {said}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
