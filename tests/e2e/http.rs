//! A minimal HTTP/1.0 client for the `httpserver` corpus program.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What `GET /work?n=N` must answer: FNV-1a 64 of N bytes, byte i being the
/// top byte of i*2654435761 + N (mod 2^32), as 16 hex digits.
pub fn expected_work(n: usize) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..n {
        let byte = ((i as u32)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(n as u32)
            >> 24) as u8;
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Requests `/work?n=N` from `addr` and checks status and body.
pub fn check_work(addr: &str, n: usize) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET /work?n={n} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let status = response.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("status line {status:?}"));
    }
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim())
        .unwrap_or_default();
    let want = expected_work(n);
    if body != want {
        return Err(format!("body {body:?}, expected {want:?}"));
    }
    Ok(())
}
