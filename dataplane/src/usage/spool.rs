//! The on-disk overflow for usage events: segment files of length-delimited protobuf records.
//!
//! Several processes may share one spool: during a graceful upgrade the old dataplane still
//! spools what it cannot deliver while the new one delivers. Each process appends only to a
//! segment it created, and holds an advisory lock (`flock`) on it while it does; delivery takes
//! that same lock, so a segment is never read while another process appends to it, nor
//! delivered by two processes at once. A process that dies releases its locks, and whoever
//! delivers next takes its segments over.
//!
//! A segment is deleted only after every event in it was acknowledged, so a crash or a cut-off
//! shutdown resends rather than loses (ingest is idempotent by generation id). A failed append
//! is truncated away, so a torn record cannot corrupt the records after it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use switchyard_proto::usage::v1::UsageEvent;

/// Segments are rolled over at this size, so one delivery round reads a bounded amount.
const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// The segment this process appends to, locked for as long as it does.
    writing: Option<Writing>,
}

struct Writing {
    seq: u64,
    file: File,
}

/// One segment read back for delivery. Its lock is held until it is removed or dropped, so no
/// other process delivers it meanwhile.
pub struct Segment {
    pub path: PathBuf,
    pub events: Vec<UsageEvent>,
    _lock: File,
}

impl Spool {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Spool {
            dir,
            max_bytes,
            writing: None,
        }
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
    pub fn append(&mut self, events: impl IntoIterator<Item = UsageEvent>) -> std::io::Result<u64> {
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
        let full = match &self.writing {
            Some(w) => w.file.metadata()?.len() >= SEGMENT_BYTES,
            None => true,
        };
        if full {
            self.writing = Some(self.claim_segment()?);
        }
        match &self.writing {
            Some(w) => append_whole(&w.file, &buf)?,
            None => return Err(std::io::Error::other("no usage spool segment")),
        }
        Ok(refused)
    }

    /// A new segment of this process's own, locked before it can be seen under its name (it is
    /// made and locked under a private name, then linked in), so no reader can take it empty.
    fn claim_segment(&self) -> std::io::Result<Writing> {
        static CLAIMS: AtomicU64 = AtomicU64::new(0);
        let private = self.dir.join(format!(
            "claim-{}-{}.tmp",
            std::process::id(),
            CLAIMS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&private);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .read(true)
            .open(&private)?;
        let claimed = lock_now(&file).and_then(|locked| {
            if !locked {
                return Err(std::io::Error::other("a fresh spool segment is locked"));
            }
            loop {
                let seq = self.segments().last().map_or(1, |(seq, _)| seq + 1);
                match std::fs::hard_link(&private, self.segment_path(seq)) {
                    Ok(()) => return Ok(seq),
                    // Another process linked that sequence first.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
        });
        let _ = std::fs::remove_file(&private);
        Ok(Writing {
            seq: claimed?,
            file,
        })
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("usage-{seq:012}.spool"))
    }

    /// The oldest segment no other process holds, for delivery. This process's own current
    /// segment is sealed first, so later appends go elsewhere. A record that cannot be decoded
    /// ends the segment (it can only be a torn tail).
    pub fn oldest(&mut self) -> std::io::Result<Option<Segment>> {
        for (seq, path) in self.segments() {
            let file = match self.writing.take_if(|w| w.seq == seq) {
                Some(own) => own.file,
                None => {
                    let file = match File::open(&path) {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    // Another process appends to it, or is delivering it: its turn.
                    if !lock_now(&file)? {
                        continue;
                    }
                    // Delivered and removed by another process between listing and locking.
                    let current = std::fs::metadata(&path).ok();
                    let opened = file.metadata()?;
                    if current.is_none_or(|m| (m.dev(), m.ino()) != (opened.dev(), opened.ino())) {
                        continue;
                    }
                    file
                }
            };
            let bytes = std::fs::read(&path)?;
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
            return Ok(Some(Segment {
                path,
                events,
                _lock: file,
            }));
        }
        Ok(None)
    }

    /// Forgets a segment whose events were all acknowledged (its lock goes with it).
    pub fn remove(&self, segment: Segment) -> std::io::Result<()> {
        std::fs::remove_file(&segment.path)
    }
}

impl Spool {
    /// Appends events the control plane refused for good to `quarantine.spool` beside the
    /// segments (never resent; bounded like the spool).
    pub fn quarantine(&self, events: Vec<UsageEvent>) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(QUARANTINE);
        let mut buf = Vec::new();
        for event in events {
            event.encode_length_delimited(&mut buf)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        // Shared with other processes of this dataplane; an append is short.
        file.lock()?;
        if file.metadata()?.len() + buf.len() as u64 > self.max_bytes {
            return Err(std::io::Error::other("usage quarantine full"));
        }
        append_whole(&file, &buf)
    }
}

/// What the quarantine in spool directory `dir` holds, for an operator or a test.
pub fn read_quarantine(dir: &Path) -> std::io::Result<Vec<UsageEvent>> {
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

const QUARANTINE: &str = "quarantine.spool";

/// Takes `file`'s exclusive advisory lock if no one holds it: false if someone does.
fn lock_now(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Appends `buf` durably to a file opened for appending; on failure truncates back, so no
/// partial record stays behind.
fn append_whole(mut file: &File, buf: &[u8]) -> std::io::Result<()> {
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
        let mut spool = Spool::new(dir.clone(), 1 << 20);
        assert!(spool.is_empty());
        spool
            .append((0..3).map(|i| event(&format!("gen-{i}"))))
            .unwrap();
        let first = spool.oldest().unwrap().unwrap();
        assert_eq!(first.events.len(), 3);
        // Appends after sealing go to a new segment and are not mixed into the one in flight.
        spool.append([event("gen-3")]).unwrap();
        // Not acknowledged: reading again gives the same segment.
        drop(first);
        let again = spool.oldest().unwrap().unwrap();
        assert_eq!(again.events[0].generation_id, "gen-0");
        spool.remove(again).unwrap();
        let second = spool.oldest().unwrap().unwrap();
        assert_eq!(second.events.len(), 1);
        assert_eq!(second.events[0].generation_id, "gen-3");
        spool.remove(second).unwrap();
        assert!(spool.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_torn_tail_loses_only_itself() {
        let dir = scratch("torn");
        let mut spool = Spool::new(dir.clone(), 1 << 20);
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
        spool.remove(back).unwrap();
        assert_eq!(
            spool.oldest().unwrap().unwrap().events[0].generation_id,
            "gen-3"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn respects_its_bound() {
        let dir = scratch("bound");
        let mut spool = Spool::new(dir.clone(), 64);
        let refused = spool
            .append((0..10).map(|i| event(&format!("gen-{i}"))))
            .unwrap();
        assert!(refused > 0, "a 64-byte spool cannot hold ten events");
        let back = spool.oldest().unwrap().unwrap();
        assert_eq!(back.events.len() as u64 + refused, 10);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Two `Spool`s on one directory stand for two processes (an upgrade's old and new
    /// dataplane): `flock` locks conflict between separate opens, within a process too.
    #[test]
    fn a_segment_another_process_appends_to_is_left_to_it_until_it_exits() {
        let dir = scratch("shared");
        let mut old = Spool::new(dir.clone(), 1 << 20);
        let mut new = Spool::new(dir.clone(), 1 << 20);
        old.append([event("old-0")]).unwrap();
        new.append([event("new-0")]).unwrap();
        // Each delivers only its own while the other is alive.
        let mine = new.oldest().unwrap().unwrap();
        assert_eq!(mine.events[0].generation_id, "new-0");
        assert!(
            new.oldest().unwrap().is_none(),
            "the old process's segment is locked"
        );
        new.remove(mine).unwrap();
        old.append([event("old-1")]).unwrap();
        // The old process exits with its segment undelivered: the new one takes it over whole.
        drop(old);
        let adopted = new.oldest().unwrap().unwrap();
        let ids: Vec<&str> = adopted
            .events
            .iter()
            .map(|e| e.generation_id.as_str())
            .collect();
        assert_eq!(ids, ["old-0", "old-1"]);
        new.remove(adopted).unwrap();
        assert!(new.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_segment_being_delivered_is_not_delivered_twice() {
        let dir = scratch("twice");
        let mut one = Spool::new(dir.clone(), 1 << 20);
        let mut other = Spool::new(dir.clone(), 1 << 20);
        one.append([event("gen-0")]).unwrap();
        let taken = one.oldest().unwrap().unwrap();
        assert!(other.oldest().unwrap().is_none());
        one.remove(taken).unwrap();
        // A new segment never reuses a name another process still holds.
        other.append([event("gen-1")]).unwrap();
        one.append([event("gen-2")]).unwrap();
        assert_eq!(other.segments().len(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }
}
