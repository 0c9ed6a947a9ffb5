//! The on-disk overflow for usage events: segment files of length-delimited protobuf records.
//!
//! Appends go to the newest segment, which is rolled over at `SEGMENT_BYTES`. Delivery reads the
//! oldest segment and deletes it only after every event in it was acknowledged, so a crash or a
//! cut-off shutdown resends rather than loses (ingest is idempotent by generation id). A failed
//! append is truncated away, so a torn record cannot corrupt the records after it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use switchyard_proto::usage::v1::UsageEvent;

/// Segments are rolled over at this size, so one delivery round reads a bounded amount.
const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
}

/// One sealed segment read back for delivery.
pub struct Segment {
    pub path: PathBuf,
    pub events: Vec<UsageEvent>,
}

impl Spool {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Spool { dir, max_bytes }
    }

    /// Segment files, oldest first (`usage-<sequence>.spool`).
    fn segments(&self) -> Vec<(u64, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut segments: Vec<(u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                let seq = name
                    .to_str()?
                    .strip_prefix("usage-")?
                    .strip_suffix(".spool")?
                    .parse()
                    .ok()?;
                Some((seq, e.path()))
            })
            .collect();
        segments.sort_by_key(|(seq, _)| *seq);
        segments
    }

    fn size(&self) -> u64 {
        self.segments()
            .iter()
            .filter_map(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.segments().is_empty()
    }

    /// Appends events; returns how many did not fit under `max_bytes` (and were not written).
    pub fn append(&self, events: impl IntoIterator<Item = UsageEvent>) -> std::io::Result<u64> {
        std::fs::create_dir_all(&self.dir)?;
        let mut total = self.size();
        let mut buf = Vec::new();
        let mut refused = 0;
        for event in events {
            let record = event.encoded_len() as u64 + 10;
            if total + record > self.max_bytes {
                refused += 1;
                continue;
            }
            total += record;
            event.encode_length_delimited(&mut buf)?;
        }
        if buf.is_empty() {
            return Ok(refused);
        }
        let path = match self.segments().last() {
            Some((seq, path)) => {
                let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                if len >= SEGMENT_BYTES {
                    self.segment_path(seq + 1)
                } else {
                    path.clone()
                }
            }
            None => self.segment_path(1),
        };
        append_whole(&path, &buf)?;
        Ok(refused)
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("usage-{seq:012}.spool"))
    }

    /// Reads the oldest segment for delivery, sealing it first so later appends go elsewhere.
    /// A record that cannot be decoded ends the segment (it can only be a torn tail).
    pub fn oldest(&self) -> std::io::Result<Option<Segment>> {
        let segments = self.segments();
        let Some((seq, path)) = segments.first().cloned() else {
            return Ok(None);
        };
        if segments.len() == 1 {
            // Seal it: the next append starts a new segment.
            File::create(self.segment_path(seq + 1))?;
        }
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        let mut events = Vec::new();
        let mut cursor = bytes.as_slice();
        while !cursor.is_empty() {
            match UsageEvent::decode_length_delimited(&mut cursor) {
                Ok(event) => events.push(event),
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "skipping a torn usage spool record");
                    break;
                }
            }
        }
        Ok(Some(Segment { path, events }))
    }

    /// Forgets a segment whose events were all acknowledged.
    pub fn remove(&self, segment: &Segment) -> std::io::Result<()> {
        std::fs::remove_file(&segment.path)?;
        // Drop trailing empty segments left by sealing, so `is_empty` stays truthful.
        for (_, path) in self.segments() {
            if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    }
}

impl Spool {
    /// Appends events the control plane refused for good to `quarantine.spool` beside the
    /// segments (never resent; bounded like the spool).
    pub fn quarantine(&self, events: Vec<UsageEvent>) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(QUARANTINE);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let mut buf = Vec::new();
        for event in events {
            event.encode_length_delimited(&mut buf)?;
        }
        if size + buf.len() as u64 > self.max_bytes {
            return Err(std::io::Error::other("usage quarantine full"));
        }
        append_whole(&path, &buf)
    }
}

/// What the quarantine in spool directory `dir` holds, for an operator or a test.
pub fn read_quarantine(dir: &Path) -> std::io::Result<Vec<UsageEvent>> {
    {
        let bytes = match std::fs::read(dir.join(QUARANTINE)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut cursor = bytes.as_slice();
        let mut events = Vec::new();
        while let Ok(event) = UsageEvent::decode_length_delimited(&mut cursor) {
            events.push(event);
        }
        Ok(events)
    }
}

const QUARANTINE: &str = "quarantine.spool";

/// Appends `buf` durably; on failure truncates back, so no partial record stays behind.
fn append_whole(path: &Path, buf: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let before = file.metadata()?.len();
    let written = file.write_all(buf).and_then(|()| file.sync_data());
    if let Err(e) = written {
        let _ = file.set_len(before);
        return Err(e);
    }
    Ok(())
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

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sy-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn delivers_oldest_first_and_forgets_only_what_was_acknowledged() {
        let dir = scratch("order");
        let spool = Spool::new(dir.clone(), 1 << 20);
        assert!(spool.is_empty());
        spool
            .append((0..3).map(|i| event(&format!("gen-{i}"))))
            .unwrap();
        let first = spool.oldest().unwrap().unwrap();
        assert_eq!(first.events.len(), 3);
        // Appends after sealing go to a new segment and are not mixed into the one in flight.
        spool.append([event("gen-3")]).unwrap();
        // Not acknowledged: reading again gives the same segment.
        let again = spool.oldest().unwrap().unwrap();
        assert_eq!(again.events[0].generation_id, "gen-0");
        spool.remove(&again).unwrap();
        let second = spool.oldest().unwrap().unwrap();
        assert_eq!(second.events.len(), 1);
        assert_eq!(second.events[0].generation_id, "gen-3");
        spool.remove(&second).unwrap();
        assert!(spool.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_torn_tail_loses_only_itself() {
        let dir = scratch("torn");
        let spool = Spool::new(dir.clone(), 1 << 20);
        spool
            .append((0..3).map(|i| event(&format!("gen-{i}"))))
            .unwrap();
        // A crash mid-write leaves half a record at the end of the segment.
        let (_, path) = spool.segments().last().cloned().unwrap();
        let mut half = Vec::new();
        event("gen-torn")
            .encode_length_delimited(&mut half)
            .unwrap();
        half.truncate(half.len() / 2);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&half)
            .unwrap();
        let back = spool.oldest().unwrap().unwrap();
        let ids: Vec<&str> = back
            .events
            .iter()
            .map(|e| e.generation_id.as_str())
            .collect();
        assert_eq!(ids, ["gen-0", "gen-1", "gen-2"]);
        // Later appends go to a new segment and are read whole.
        spool.append([event("gen-3")]).unwrap();
        spool.remove(&back).unwrap();
        assert_eq!(
            spool.oldest().unwrap().unwrap().events[0].generation_id,
            "gen-3"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn respects_its_bound() {
        let dir = scratch("bound");
        let spool = Spool::new(dir.clone(), 64);
        let refused = spool
            .append((0..10).map(|i| event(&format!("gen-{i}"))))
            .unwrap();
        assert!(refused > 0, "a 64-byte spool cannot hold ten events");
        let back = spool.oldest().unwrap().unwrap();
        assert_eq!(back.events.len() as u64 + refused, 10);
        let _ = std::fs::remove_dir_all(dir);
    }
}
