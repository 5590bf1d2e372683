//! moat-fanotify's pure event parser (`moat_fanotify::raw`) on synthetic batches, as the
//! reader thread parses every `read(2)` from a fanotify group: no kernel, no root.
//!
//! - `permission_64`: 64 bare `fanotify_event_metadata` records (`FAN_OPEN_PERM`, an fd, a
//!   pid): the enforcement group's batch;
//! - `dfid_name_64`: 64 events each with one `FAN_EVENT_INFO_TYPE_DFID_NAME` record (fsid,
//!   an 8-byte file handle and a name), as the tracking group reports directory changes;
//!   the info records are iterated too.
//!
//! Run: `cargo bench -p moat-fanotify --bench parse`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use moat_fanotify::raw::{self, RawRecord, METADATA_LEN};

const EVENTS: usize = 64;

/// One event: metadata (version 3) followed by `info`.
fn event(mask: u64, fd: i32, pid: i32, info: &[u8]) -> Vec<u8> {
    let len = (METADATA_LEN + info.len()) as u32;
    let mut v = Vec::with_capacity(len as usize);
    v.extend_from_slice(&len.to_ne_bytes());
    v.push(libc::FANOTIFY_METADATA_VERSION);
    v.push(0);
    v.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
    v.extend_from_slice(&mask.to_ne_bytes());
    v.extend_from_slice(&fd.to_ne_bytes());
    v.extend_from_slice(&pid.to_ne_bytes());
    v.extend_from_slice(info);
    v
}

/// A `DFID_NAME` info record, padded to 4 bytes as the kernel pads it.
fn dfid_name(handle: &[u8], name: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1234_5678i32.to_ne_bytes());
    body.extend_from_slice(&(-2i32).to_ne_bytes());
    body.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
    body.extend_from_slice(&0x81i32.to_ne_bytes());
    body.extend_from_slice(handle);
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    while (body.len() + 4) % 4 != 0 {
        body.push(0);
    }
    let mut v = vec![libc::FAN_EVENT_INFO_TYPE_DFID_NAME, 0];
    v.extend_from_slice(&((body.len() + 4) as u16).to_ne_bytes());
    v.extend_from_slice(&body);
    v
}

/// Parses every event and record of `buf`; returns a checksum so nothing is optimized out.
fn parse_all(buf: &[u8]) -> u64 {
    let mut sum = 0u64;
    for ev in raw::events(buf) {
        let ev = ev.expect("well-formed batch");
        sum = sum.wrapping_add(ev.mask ^ ev.fd as u64 ^ ev.pid as u64);
        for rec in ev.records() {
            if let RawRecord::Fid { handle, .. } = rec.expect("well-formed record") {
                sum = sum.wrapping_add(handle.len() as u64);
            }
        }
    }
    sum
}

fn parse(c: &mut Criterion) {
    let permission: Vec<u8> = (0..EVENTS)
        .flat_map(|i| event(libc::FAN_OPEN_PERM, 5 + i as i32, 1000 + i as i32, &[]))
        .collect();
    let dfid: Vec<u8> = (0..EVENTS)
        .flat_map(|i| {
            let handle = (i as u64 * 0x9E37_79B9).to_ne_bytes();
            let info = dfid_name(&handle, &format!("file-{i:04}.txt"));
            event(
                libc::FAN_CREATE | libc::FAN_ONDIR,
                libc::FAN_NOFD,
                2000 + i as i32,
                &info,
            )
        })
        .collect();
    assert_eq!(raw::events(&permission).count(), EVENTS);
    assert_eq!(raw::events(&dfid).count(), EVENTS);

    let mut group = c.benchmark_group("parse");
    for (name, buf) in [("permission_64", &permission), ("dfid_name_64", &dfid)] {
        group.throughput(Throughput::Elements(EVENTS as u64));
        group.bench_function(name, |b| b.iter(|| parse_all(black_box(buf))));
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
