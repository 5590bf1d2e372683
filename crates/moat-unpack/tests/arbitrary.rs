//! Arbitrary bytes given to every unpacker never panic, whether or not they start
//! with the format's magic; members stay within the visitor's limit.

use moat_unpack::{unpack, Container, Flow, Input, Member, Options, Visitor};
use proptest::prelude::*;

struct Count {
    members: usize,
    cap: u64,
}

impl Visitor for Count {
    fn max_size(&mut self) -> u64 {
        self.cap
    }
    fn member(&mut self, member: Member) -> Flow {
        assert!(member.contents.len() <= self.cap);
        self.members += 1;
        if self.members > 1000 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

/// Each format's opening bytes, so the fuzzed input gets past the first check.
fn magic(kind: Container) -> &'static [u8] {
    match kind {
        Container::Zip => b"PK\x03\x04",
        Container::Gzip => &[0x1f, 0x8b, 8, 0],
        Container::Bzip2 => b"BZh9",
        Container::Xz => &[0xfd, b'7', b'z', b'X', b'Z', 0],
        Container::SevenZip => &[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c],
        Container::Ole2 => &[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1],
        Container::Szdd => b"SZDD\x88\xf0\x27\x33A\0",
        Container::Pdf => b"%PDF-1.4\n1 0 obj <</Filter /FlateDecode>> stream\n",
        Container::Cpio => b"070701",
        Container::Tar => b"",
        Container::BinHex => b"(This file must be converted with BinHex 4.0)\n:",
        Container::Mail => b"From: a\nTo: b\nContent-Type: multipart/mixed; boundary=b\n\n--b\n",
        Container::Cab => b"MSCF\0\0\0\0",
        Container::Sis => &[0, 0, 0, 1, 0x12, 0x3a, 0, 0x10, 0x19, 0x04, 0, 0x10],
        Container::Chm => b"ITSF\x03\0\0\0\x60\0\0\0",
        Container::Arj => &[0x60, 0xea, 0x22, 0, 0x22, 0, 0, 0, 0, 0, 2],
        Container::Tnef => &[0x78, 0x9f, 0x3e, 0x22, 0, 0],
        Container::Rtf => b"{\\rtf1 {\\object\\objdata 0105000002000000",
        Container::Html => b"<html>",
        Container::HtmlData => b"<a href=\"data:x;base64,",
        Container::Ole10Native => b"",
    }
}

fn every_kind() -> Vec<Container> {
    let mut kinds = Container::ALL.to_vec();
    kinds.push(Container::Ole10Native);
    kinds.push(Container::HtmlData);
    kinds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096), cap in 0u64..5000) {
        for kind in every_kind() {
            let mut input = magic(kind).to_vec();
            input.extend_from_slice(&data);
            for bytes in [&data[..], &input[..]] {
                let mut count = Count { members: 0, cap };
                let _ = unpack(kind, Input::Bytes(bytes), &Options::default(), &mut count);
                let _ = Container::sniff(bytes);
            }
        }
    }

    #[test]
    fn small_spool_threshold_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let options = Options { memory_threshold: 16 };
        for kind in every_kind() {
            let mut input = magic(kind).to_vec();
            input.extend_from_slice(&data);
            let mut count = Count { members: 0, cap: 1 << 20 };
            let _ = unpack(kind, Input::Bytes(&input), &options, &mut count);
        }
    }
}

/// Real archives (ClamAV's test files, when installed) with bytes changed and cut.
fn samples() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new("/usr/share/clamav-testfiles");
    let names = [
        "clam.zip",
        "clam.d64.zip",
        "clam.impl.zip",
        "clam.bz2.zip",
        "clam.tar.gz",
        "clam.7z",
        "clam.exe.bz2",
        "clam.bin-le.cpio",
        "clam.bin-be.cpio",
        "clam.odc.cpio",
        "clam.newc.cpio",
        "clam.mail",
        "clam.exe.mbox.uu",
        "clam.ole.doc",
        "clam.ppt",
        "clam.exe.binhex",
        "clam.exe.szdd",
        "clam.pdf",
        "clam.cab",
        "clam.tnef",
        "clam.exe.rtf",
        "clam.exe.html",
        "clam.arj",
        "clam.chm",
        "clam.sis",
    ];
    names
        .iter()
        .filter_map(|n| std::fs::read(dir.join(n)).ok())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn damaged_real_archives_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        for mut sample in samples() {
            for (at, byte) in &flips {
                let len = sample.len();
                sample[at % len] = *byte;
            }
            let len = sample.len();
            sample.truncate(len - cut % (len / 2 + 1));
            if let Some(kind) = Container::sniff(&sample) {
                let mut count = Count { members: 0, cap: 1 << 20 };
                let _ = unpack(kind, Input::Bytes(&sample), &Options::default(), &mut count);
            }
        }
    }
}

/// Inputs the fuzzers (fuzz/fuzz_targets/unpack_*) found to crash a decoder, kept so
/// the fix stays: (format, input as hex).
const FUZZ_FINDS: &[(Container, &str)] = &[
    // A cabinet whose folder has no data blocks, with a file at offset 0x4d2 in it:
    // the `cab` crate indexed its empty block list.
    (
        Container::Cab,
        "4d534346000000006d020000000000002c000000004000000301010001000000d2040000450000000000\
         000000000000610000000000000000000000000000000000000000000000000000000000000000000000\
         00000000000000000000c0",
    ),
    // A folder of one block and a file at offset 0x4d2, past the folder's end: the
    // `cab` crate stepped past its block list.
    (
        Container::Cab,
        "4d534346000300006d020000000000002c000000000000000301010001000000d2040000450000000100\
         00002002d0ffffff000000002631bc0c2000000000000000000000000000000000010000bb7110400033\
         c050508bf3535350b02940300466ac79f9ba3100780dad50ff66700e1fbe3100e9e5ffb409cd21b44ccd\
         21620c0a0102707617021e4e0c042fdacc1000000000000000000000000000002c100000801000000000\
         00000000000000000000da100000f410000000000000000000000000000000000000000000004b45524e\
         454c33322e444c4c0000457800000000004b45524e454c33332e444c4c00004578692150726f63657373\
         555300455233322e444c4c0000000000000000000000000000000000e1e1e1e1e1e1e1e1e1e1e1e1e1e1\
         e1e1e1000000000000000000000000000000000000000000000000000000000000000000000000000000\
         000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
         fa0000000000000000000000000000000000000000000000000000000000000000000000726563656976\
         65643a000000000000000000000000000000000000000000000000000000000000000000000000000000\
         000000000000000000000000000000002000000000000000000000000000000000000000000000000000\
         000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
         0000000000000000000000c0",
    ),
    // A block whose decompressed bytes fall short of its declared size: the `cab`
    // crate sliced out of range inside its reader (caught by moat-unpack).
    (
        Container::Cab,
        "4d534346000000006d020000000000002c000000000000000301010001000000d2040000450000000100\
         000002000000200000000000650b0b0b0b0b0b0b0bce43f3dd000000000000000000d204000045000000\
         0100004cff0225000001450f460d00000000efbfbd76000000000000000000000ac0",
    ),
];

#[test]
fn fuzz_finds_do_not_panic() {
    for (kind, hex) in FUZZ_FINDS {
        let data: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut visitor = Count {
            members: 0,
            cap: 1 << 20,
        };
        let _ = unpack(
            *kind,
            Input::Bytes(&data),
            &Options::default(),
            &mut visitor,
        );
    }
}
