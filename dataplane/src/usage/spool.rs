//! The on-disk overflow for usage events: length-delimited protobuf records, appended while
//! the control plane is unreachable and read back whole once it returns.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;

use prost::Message;
use switchyard_proto::usage::v1::UsageEvent;

pub struct Spool {
    path: PathBuf,
    max_bytes: u64,
}

impl Spool {
    pub fn new(path: PathBuf, max_bytes: u64) -> Self {
        Spool { path, max_bytes }
    }

    fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends events; returns how many did not fit under `max_bytes`.
    pub fn append(&self, events: impl IntoIterator<Item = UsageEvent>) -> std::io::Result<u64> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut size = self.len();
        let mut buf = Vec::new();
        let mut refused = 0;
        for event in events {
            let record_len = event.encoded_len() as u64 + 10;
            if size + record_len > self.max_bytes {
                refused += 1;
                continue;
            }
            size += record_len;
            event.encode_length_delimited(&mut buf)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&buf)?;
        file.sync_data()?;
        Ok(refused)
    }

    /// Reads every spooled event and empties the spool. A torn final record (a crash
    /// mid-append) is skipped rather than failing the rest.
    pub fn take_all(&self) -> std::io::Result<Vec<UsageEvent>> {
        let mut bytes = Vec::new();
        match File::open(&self.path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        let mut events = Vec::new();
        let mut cursor = bytes.as_slice();
        while !cursor.is_empty() {
            match UsageEvent::decode_length_delimited(&mut cursor) {
                Ok(event) => events.push(event),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a torn usage spool record");
                    break;
                }
            }
        }
        std::fs::remove_file(&self.path)?;
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> UsageEvent {
        UsageEvent {
            generation_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_and_respects_its_bound() {
        let dir = std::env::temp_dir().join(format!("sy-spool-{}", std::process::id()));
        let spool = Spool::new(dir.join("usage.spool"), 64);
        assert!(spool.is_empty());
        let refused = spool
            .append((0..10).map(|i| event(&format!("gen-{i}"))))
            .unwrap();
        assert!(refused > 0, "a 64-byte spool cannot hold ten events");
        let back = spool.take_all().unwrap();
        assert_eq!(back.len() as u64 + refused, 10);
        assert_eq!(back[0].generation_id, "gen-0");
        assert!(spool.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
