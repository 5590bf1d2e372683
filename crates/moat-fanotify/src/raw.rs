//! Pure parser of the bytes returned by `read(2)` on a fanotify group.
//!
//! Nothing here owns a file descriptor: fds and pidfds are plain integers, names and file
//! handles borrow the buffer. That makes this layer safe to run on arbitrary bytes (tests,
//! fuzzing). [`Group::read_events`](crate::Group::read_events) builds owned
//! [`Event`](crate::Event)s on top of it.
//!
//! Every length is checked; a malformed batch yields a [`ParseError`], never a panic.

/// `sizeof(struct fanotify_event_metadata)` for metadata version 3.
pub const METADATA_LEN: usize = 24;

/// `sizeof(struct fanotify_event_info_header)`.
pub const INFO_HEADER_LEN: usize = 4;

/// Why a batch could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than a structure needs.
    #[error("truncated {what} at byte {offset}: needs {needed} bytes, {available} available")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Offset in the batch.
        offset: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The metadata version is not `FANOTIFY_METADATA_VERSION`.
    #[error(
        "fanotify metadata version {found} at byte {offset}, this code understands version {}",
        libc::FANOTIFY_METADATA_VERSION
    )]
    Version {
        /// Offset in the batch.
        offset: usize,
        /// The version found.
        found: u8,
    },
    /// A length field is impossible (e.g. smaller than its own header).
    #[error("invalid {what} length {len} at byte {offset}")]
    BadLength {
        /// The length field.
        what: &'static str,
        /// Offset in the batch.
        offset: usize,
        /// The value found.
        len: usize,
    },
    /// A file handle is longer than its info record.
    #[error("file handle of {handle_bytes} bytes overflows its info record at byte {offset}")]
    HandleOverflow {
        /// Offset of the record in the batch.
        offset: usize,
        /// The handle length found.
        handle_bytes: u32,
    },
    /// A name in a `*DFID_NAME` record has no terminating NUL inside the record.
    #[error("name in info record at byte {offset} is not NUL-terminated")]
    NameNotTerminated {
        /// Offset of the record in the batch.
        offset: usize,
    },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    u32_at(b, at) as i32
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

/// One `struct fanotify_event_metadata` and its info records, borrowed from the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent<'a> {
    /// Offset of the event in the batch.
    pub offset: usize,
    /// `event_len`: the length of the event including info records.
    pub event_len: u32,
    /// `metadata_len`.
    pub metadata_len: u16,
    /// `mask`.
    pub mask: u64,
    /// `fd`: an fd number installed in the reading process, or negative (`FAN_NOFD`, or
    /// `-errno` with `FAN_REPORT_FD_ERROR`). Not owned here.
    pub fd: i32,
    /// `pid` (or tid with `FAN_REPORT_TID`).
    pub pid: i32,
    /// The bytes of the info records.
    pub info: &'a [u8],
}

impl<'a> RawEvent<'a> {
    /// Iterates over the info records; stops after the first error.
    pub fn records(&self) -> RawRecords<'a> {
        RawRecords {
            buf: self.info,
            base: self.offset + self.metadata_len as usize,
            off: 0,
            failed: false,
        }
    }
}

/// Which kind of file-identifier record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FidKind {
    /// `FAN_EVENT_INFO_TYPE_FID`: the object itself.
    Fid,
    /// `FAN_EVENT_INFO_TYPE_DFID`: its parent directory.
    Dfid,
    /// `FAN_EVENT_INFO_TYPE_DFID_NAME`: parent directory and entry name.
    DfidName,
    /// `FAN_EVENT_INFO_TYPE_OLD_DFID_NAME`: source directory and name of a `FAN_RENAME`.
    OldDfidName,
    /// `FAN_EVENT_INFO_TYPE_NEW_DFID_NAME`: target directory and name of a `FAN_RENAME`.
    NewDfidName,
}

impl FidKind {
    /// The record type number, as in the UAPI header.
    pub const fn info_type(self) -> u8 {
        match self {
            FidKind::Fid => libc::FAN_EVENT_INFO_TYPE_FID,
            FidKind::Dfid => libc::FAN_EVENT_INFO_TYPE_DFID,
            FidKind::DfidName => libc::FAN_EVENT_INFO_TYPE_DFID_NAME,
            FidKind::OldDfidName => libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
            FidKind::NewDfidName => libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
        }
    }
    /// The kind of a record type number, if it is a file-identifier record.
    pub const fn from_info_type(t: u8) -> Option<FidKind> {
        Some(match t {
            libc::FAN_EVENT_INFO_TYPE_FID => FidKind::Fid,
            libc::FAN_EVENT_INFO_TYPE_DFID => FidKind::Dfid,
            libc::FAN_EVENT_INFO_TYPE_DFID_NAME => FidKind::DfidName,
            libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME => FidKind::OldDfidName,
            libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME => FidKind::NewDfidName,
            _ => return None,
        })
    }
    /// True for the kinds that carry an entry name.
    pub const fn has_name(self) -> bool {
        matches!(
            self,
            FidKind::DfidName | FidKind::OldDfidName | FidKind::NewDfidName
        )
    }
}

/// One info record, borrowed from the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawRecord<'a> {
    /// A file-identifier record (`struct fanotify_event_info_fid` + `struct file_handle`
    /// [+ NUL-terminated name]).
    Fid {
        /// Which kind.
        kind: FidKind,
        /// `fsid` (`__kernel_fsid_t`).
        fsid: [i32; 2],
        /// `handle_type` of the file handle.
        handle_type: i32,
        /// `f_handle` bytes.
        handle: &'a [u8],
        /// The entry name, without its NUL (only for the `*DFID_NAME` kinds).
        name: Option<&'a [u8]>,
    },
    /// `FAN_EVENT_INFO_TYPE_PIDFD`: a pidfd number (not owned), or `FAN_NOPIDFD` /
    /// `FAN_EPIDFD`.
    Pidfd(i32),
    /// `FAN_EVENT_INFO_TYPE_ERROR`.
    Error {
        /// The errno reported by the filesystem.
        error: i32,
        /// How many errors were merged into this event.
        error_count: u32,
    },
    /// A record type this crate does not know (kept for forward compatibility).
    Unknown {
        /// The record type.
        info_type: u8,
        /// The bytes after the record header.
        data: &'a [u8],
    },
}

/// Iterator over the events of a batch; yields at most one error, then stops.
#[derive(Debug, Clone)]
pub struct RawEvents<'a> {
    buf: &'a [u8],
    off: usize,
    failed: bool,
}

/// Parses the events of a batch (the bytes one `read(2)` returned).
pub fn events(buf: &[u8]) -> RawEvents<'_> {
    RawEvents {
        buf,
        off: 0,
        failed: false,
    }
}

impl<'a> Iterator for RawEvents<'a> {
    type Item = Result<RawEvent<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.off >= self.buf.len() {
            return None;
        }
        match parse_event(self.buf, self.off) {
            Ok(ev) => {
                self.off += ev.event_len as usize;
                Some(Ok(ev))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn parse_event(buf: &[u8], offset: usize) -> Result<RawEvent<'_>, ParseError> {
    let rest = &buf[offset..];
    // `event_len` (4) + `vers` (1) come first; check the version before trusting lengths.
    if rest.len() < 8 {
        return Err(ParseError::Truncated {
            what: "event metadata",
            offset,
            needed: METADATA_LEN,
            available: rest.len(),
        });
    }
    let vers = rest[4];
    if vers != libc::FANOTIFY_METADATA_VERSION {
        return Err(ParseError::Version {
            offset,
            found: vers,
        });
    }
    if rest.len() < METADATA_LEN {
        return Err(ParseError::Truncated {
            what: "event metadata",
            offset,
            needed: METADATA_LEN,
            available: rest.len(),
        });
    }
    let event_len = u32_at(rest, 0);
    let metadata_len = u16_at(rest, 6);
    if (metadata_len as usize) < METADATA_LEN {
        return Err(ParseError::BadLength {
            what: "metadata",
            offset,
            len: metadata_len as usize,
        });
    }
    if (event_len as usize) < metadata_len as usize {
        return Err(ParseError::BadLength {
            what: "event",
            offset,
            len: event_len as usize,
        });
    }
    if event_len as usize > rest.len() {
        return Err(ParseError::Truncated {
            what: "event",
            offset,
            needed: event_len as usize,
            available: rest.len(),
        });
    }
    Ok(RawEvent {
        offset,
        event_len,
        metadata_len,
        mask: u64_at(rest, 8),
        fd: i32_at(rest, 16),
        pid: i32_at(rest, 20),
        info: &rest[metadata_len as usize..event_len as usize],
    })
}

/// Iterator over the info records of one event; yields at most one error, then stops.
#[derive(Debug, Clone)]
pub struct RawRecords<'a> {
    buf: &'a [u8],
    base: usize,
    off: usize,
    failed: bool,
}

impl<'a> Iterator for RawRecords<'a> {
    type Item = Result<RawRecord<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.off >= self.buf.len() {
            return None;
        }
        let offset = self.base + self.off;
        let rest = &self.buf[self.off..];
        let r = parse_record(rest, offset);
        match r {
            Ok((rec, len)) => {
                self.off += len;
                Some(Ok(rec))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn parse_record(rest: &[u8], offset: usize) -> Result<(RawRecord<'_>, usize), ParseError> {
    if rest.len() < INFO_HEADER_LEN {
        return Err(ParseError::Truncated {
            what: "info record header",
            offset,
            needed: INFO_HEADER_LEN,
            available: rest.len(),
        });
    }
    let info_type = rest[0];
    let len = u16_at(rest, 2) as usize;
    if len < INFO_HEADER_LEN {
        return Err(ParseError::BadLength {
            what: "info record",
            offset,
            len,
        });
    }
    if len > rest.len() {
        return Err(ParseError::Truncated {
            what: "info record",
            offset,
            needed: len,
            available: rest.len(),
        });
    }
    let body = &rest[INFO_HEADER_LEN..len];
    let need = |what: &'static str, n: usize| {
        if body.len() < n {
            Err(ParseError::Truncated {
                what,
                offset,
                needed: INFO_HEADER_LEN + n,
                available: len,
            })
        } else {
            Ok(())
        }
    };
    let rec = if let Some(kind) = FidKind::from_info_type(info_type) {
        // fsid (8) + struct file_handle header: handle_bytes (4) + handle_type (4).
        need("file identifier record", 16)?;
        let fsid = [i32_at(body, 0), i32_at(body, 4)];
        let handle_bytes = u32_at(body, 8);
        let handle_type = i32_at(body, 12);
        let end = 16usize
            .checked_add(handle_bytes as usize)
            .filter(|&e| e <= body.len())
            .ok_or(ParseError::HandleOverflow {
                offset,
                handle_bytes,
            })?;
        let handle = &body[16..end];
        let name = if kind.has_name() {
            let tail = &body[end..];
            let nul = tail
                .iter()
                .position(|&b| b == 0)
                .ok_or(ParseError::NameNotTerminated { offset })?;
            Some(&tail[..nul])
        } else {
            None
        };
        RawRecord::Fid {
            kind,
            fsid,
            handle_type,
            handle,
            name,
        }
    } else if info_type == libc::FAN_EVENT_INFO_TYPE_PIDFD {
        need("pidfd record", 4)?;
        RawRecord::Pidfd(i32_at(body, 0))
    } else if info_type == libc::FAN_EVENT_INFO_TYPE_ERROR {
        need("error record", 8)?;
        RawRecord::Error {
            error: i32_at(body, 0),
            error_count: u32_at(body, 4),
        }
    } else {
        RawRecord::Unknown {
            info_type,
            data: body,
        }
    };
    Ok((rec, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds one event: metadata + the given records.
    fn event(mask: u64, fd: i32, pid: i32, records: &[Vec<u8>]) -> Vec<u8> {
        let info: Vec<u8> = records.concat();
        let len = (METADATA_LEN + info.len()) as u32;
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.push(libc::FANOTIFY_METADATA_VERSION);
        v.push(0);
        v.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&fd.to_ne_bytes());
        v.extend_from_slice(&pid.to_ne_bytes());
        v.extend_from_slice(&info);
        v
    }

    /// Builds a file-identifier record, padded to 4 bytes like the kernel does.
    fn fid(t: u8, fsid: [i32; 2], htype: i32, handle: &[u8], name: Option<&str>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&fsid[0].to_ne_bytes());
        body.extend_from_slice(&fsid[1].to_ne_bytes());
        body.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
        body.extend_from_slice(&htype.to_ne_bytes());
        body.extend_from_slice(handle);
        if let Some(n) = name {
            body.extend_from_slice(n.as_bytes());
            body.push(0);
        }
        while (body.len() + 4) % 4 != 0 {
            body.push(0);
        }
        record(t, &body)
    }

    fn record(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 0];
        v.extend_from_slice(&((body.len() + 4) as u16).to_ne_bytes());
        v.extend_from_slice(body);
        v
    }

    fn all(buf: &[u8]) -> Result<Vec<(RawEvent<'_>, Vec<RawRecord<'_>>)>, ParseError> {
        let mut out = Vec::new();
        for ev in events(buf) {
            let ev = ev?;
            let recs = ev.records().collect::<Result<Vec<_>, _>>()?;
            out.push((ev, recs));
        }
        Ok(out)
    }

    #[test]
    fn empty_batch_has_no_events() {
        assert_eq!(all(&[]).unwrap().len(), 0);
    }

    #[test]
    fn plain_events_in_one_batch() {
        let mut buf = event(libc::FAN_OPEN_PERM, 7, 1234, &[]);
        buf.extend(event(libc::FAN_Q_OVERFLOW, libc::FAN_NOFD, 0, &[]));
        let evs = all(&buf).unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].0.mask, libc::FAN_OPEN_PERM);
        assert_eq!(evs[0].0.fd, 7);
        assert_eq!(evs[0].0.pid, 1234);
        assert_eq!(evs[0].0.offset, 0);
        assert!(evs[0].1.is_empty());
        assert_eq!(evs[1].0.fd, -1);
        assert_eq!(evs[1].0.offset, METADATA_LEN);
    }

    #[test]
    fn dfid_name_record() {
        let rec = fid(
            libc::FAN_EVENT_INFO_TYPE_DFID_NAME,
            [1, -2],
            0x81,
            &[1, 2, 3, 4, 5, 6, 7, 8],
            Some("sub"),
        );
        let buf = event(libc::FAN_CREATE | libc::FAN_ONDIR, -1, 9, &[rec]);
        let evs = all(&buf).unwrap();
        assert_eq!(
            evs[0].1,
            vec![RawRecord::Fid {
                kind: FidKind::DfidName,
                fsid: [1, -2],
                handle_type: 0x81,
                handle: &[1, 2, 3, 4, 5, 6, 7, 8],
                name: Some(b"sub"),
            }]
        );
    }

    #[test]
    fn rename_records_fid_pidfd_error_and_unknown() {
        let recs = vec![
            fid(
                libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
                [0, 0],
                1,
                &[9; 12],
                Some("a"),
            ),
            fid(
                libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
                [0, 0],
                1,
                &[9; 12],
                Some("bb"),
            ),
            fid(libc::FAN_EVENT_INFO_TYPE_FID, [3, 4], 2, &[7; 6], None),
            fid(libc::FAN_EVENT_INFO_TYPE_DFID, [3, 4], 2, &[8; 4], None),
            record(libc::FAN_EVENT_INFO_TYPE_PIDFD, &42i32.to_ne_bytes()),
            record(libc::FAN_EVENT_INFO_TYPE_ERROR, &[5, 0, 0, 0, 3, 0, 0, 0]),
            record(99, &[1, 2, 3, 4]),
        ];
        let buf = event(libc::FAN_RENAME, -1, 1, &recs);
        let evs = all(&buf).unwrap();
        let r = &evs[0].1;
        assert_eq!(r.len(), 7);
        assert!(matches!(
            r[0],
            RawRecord::Fid {
                kind: FidKind::OldDfidName,
                name: Some(b"a"),
                ..
            }
        ));
        assert!(matches!(
            r[1],
            RawRecord::Fid {
                kind: FidKind::NewDfidName,
                name: Some(b"bb"),
                ..
            }
        ));
        assert!(matches!(
            r[2],
            RawRecord::Fid {
                kind: FidKind::Fid,
                name: None,
                handle: &[7, 7, 7, 7, 7, 7],
                ..
            }
        ));
        assert!(matches!(
            r[3],
            RawRecord::Fid {
                kind: FidKind::Dfid,
                ..
            }
        ));
        assert_eq!(r[4], RawRecord::Pidfd(42));
        assert_eq!(
            r[5],
            RawRecord::Error {
                error: 5,
                error_count: 3
            }
        );
        assert_eq!(
            r[6],
            RawRecord::Unknown {
                info_type: 99,
                data: &[1, 2, 3, 4]
            }
        );
    }

    #[test]
    fn truncated_metadata_is_an_error() {
        let buf = event(libc::FAN_OPEN, 3, 1, &[]);
        for cut in 1..buf.len() {
            let err = all(&buf[..cut]).unwrap_err();
            assert!(
                matches!(err, ParseError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
    }

    #[test]
    fn wrong_version_is_an_error() {
        let mut buf = event(libc::FAN_OPEN, 3, 1, &[]);
        buf[4] = 2;
        assert_eq!(
            all(&buf).unwrap_err(),
            ParseError::Version {
                offset: 0,
                found: 2
            }
        );
    }

    #[test]
    fn impossible_lengths_are_errors() {
        let mut buf = event(libc::FAN_OPEN, 3, 1, &[]);
        buf[6..8].copy_from_slice(&10u16.to_ne_bytes());
        assert!(matches!(
            all(&buf).unwrap_err(),
            ParseError::BadLength {
                what: "metadata",
                ..
            }
        ));
        let mut buf = event(libc::FAN_OPEN, 3, 1, &[]);
        buf[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(matches!(
            all(&buf).unwrap_err(),
            ParseError::BadLength { what: "event", .. }
        ));
        let mut buf = event(libc::FAN_OPEN, 3, 1, &[]);
        buf[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(
            all(&buf).unwrap_err(),
            ParseError::Truncated { what: "event", .. }
        ));
    }

    #[test]
    fn error_after_good_event_keeps_the_good_one() {
        let mut buf = event(libc::FAN_OPEN_PERM, 5, 1, &[]);
        buf.extend_from_slice(&[1, 2, 3]);
        let mut it = events(&buf);
        assert_eq!(it.next().unwrap().unwrap().fd, 5);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn malformed_records_are_errors() {
        // Zero-length record header: would loop forever if accepted.
        let buf = event(libc::FAN_CREATE, -1, 1, &[vec![2, 0, 0, 0]]);
        assert!(matches!(
            all(&buf).unwrap_err(),
            ParseError::BadLength {
                what: "info record",
                ..
            }
        ));
        // Record longer than the event.
        let buf = event(libc::FAN_CREATE, -1, 1, &[vec![2, 0, 40, 0, 0, 0, 0, 0]]);
        assert!(matches!(
            all(&buf).unwrap_err(),
            ParseError::Truncated {
                what: "info record",
                ..
            }
        ));
        // Partial record header.
        let buf = event(libc::FAN_CREATE, -1, 1, &[vec![2, 0]]);
        assert!(matches!(
            all(&buf).unwrap_err(),
            ParseError::Truncated {
                what: "info record header",
                ..
            }
        ));
        // Handle longer than the record.
        let mut rec = fid(
            libc::FAN_EVENT_INFO_TYPE_DFID_NAME,
            [0, 0],
            1,
            &[1; 8],
            Some("x"),
        );
        rec[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
        let buf = event(libc::FAN_CREATE, -1, 1, &[rec]);
        assert!(matches!(
            all(&buf).unwrap_err(),
            ParseError::HandleOverflow {
                handle_bytes: u32::MAX,
                ..
            }
        ));
        // Name without NUL.
        let rec = record(
            libc::FAN_EVENT_INFO_TYPE_DFID_NAME,
            &[
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'a', b'b', b'c', b'd',
            ],
        );
        let buf = event(libc::FAN_CREATE, -1, 1, &[rec]);
        assert!(matches!(
            all(&buf).unwrap_err(),
            ParseError::NameNotTerminated { .. }
        ));
        // FID record too short for fsid + handle header.
        let buf = event(
            libc::FAN_CREATE,
            -1,
            1,
            &[record(libc::FAN_EVENT_INFO_TYPE_FID, &[0; 8])],
        );
        assert!(matches!(
            all(&buf).unwrap_err(),
            ParseError::Truncated {
                what: "file identifier record",
                ..
            }
        ));
        // Short pidfd and error records.
        for (t, what) in [
            (libc::FAN_EVENT_INFO_TYPE_PIDFD, "pidfd record"),
            (libc::FAN_EVENT_INFO_TYPE_ERROR, "error record"),
        ] {
            let buf = event(libc::FAN_CREATE, -1, 1, &[record(t, &[])]);
            assert!(matches!(
                all(&buf).unwrap_err(),
                ParseError::Truncated { what: w, .. } if w == what
            ));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = all(&bytes);
        }

        #[test]
        fn arbitrary_records_never_panic(
            mask in any::<u64>(),
            recs in proptest::collection::vec(
                (prop_oneof![Just(1u8), Just(2), Just(3), Just(4), Just(5), Just(10), Just(12), any::<u8>()],
                 proptest::collection::vec(any::<u8>(), 0..64)),
                0..4),
            extra_len in 0u16..80,
            trailing in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let recs: Vec<Vec<u8>> = recs.into_iter().map(|(t, body)| {
                let mut r = record(t, &body);
                if extra_len % 3 == 0 {
                    // Corrupt the length field.
                    r[2..4].copy_from_slice(&extra_len.to_ne_bytes());
                }
                r
            }).collect();
            let mut buf = event(mask, -1, 1, &recs);
            buf.extend_from_slice(&trailing);
            let _ = all(&buf);
        }

        #[test]
        fn well_formed_names_round_trip(
            name in "[^\u{0}/]{1,40}",
            handle in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let rec = fid(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, [1, 2], 3, &handle, Some(&name));
            let buf = event(libc::FAN_CREATE, -1, 1, &[rec]);
            let evs = all(&buf).unwrap();
            match &evs[0].1[0] {
                RawRecord::Fid { name: Some(n), handle: h, .. } => {
                    prop_assert_eq!(*n, name.as_bytes());
                    prop_assert_eq!(*h, &handle[..]);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
