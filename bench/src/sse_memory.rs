//! Memory per open SSE stream: hold N streams open through a proxy (the mock trickles tokens for
//! minutes) and divide the proxy's resident-memory growth by N. nginx is measured the same way.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resident set size of a process, in bytes (`VmRSS` from `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024)
}

/// Opens `n` streaming chat requests to `port` and waits for each one's first event; returns
/// the open connections (dropping them closes the streams).
pub async fn open_streams(
    port: u16,
    path: &str,
    key: Option<&str>,
    n: usize,
) -> anyhow::Result<Vec<TcpStream>> {
    let body = r#"{"model":"mock/fast","stream":true,"messages":[{"role":"user","content":"hold this stream open"}]}"#;
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut open = Vec::with_capacity(n);
    for wave in (0..n).collect::<Vec<_>>().chunks(250) {
        let mut tasks = Vec::with_capacity(wave.len());
        for _ in wave {
            let request = request.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
                s.write_all(request.as_bytes()).await?;
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(5).any(|w| w == b"data:") {
                    let n =
                        tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await??;
                    if n == 0 {
                        bail!("stream closed early");
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                if !seen.starts_with(b"HTTP/1.1 200") {
                    bail!(
                        "stream refused: {}",
                        String::from_utf8_lossy(&seen[..seen.len().min(80)])
                    );
                }
                anyhow::Ok(s)
            }));
        }
        for t in tasks {
            open.push(t.await??);
        }
    }
    Ok(open)
}
