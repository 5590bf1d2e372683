//! Each format's members, from archives built here: names, contents, nesting, and the
//! visitor's size limit and stop.

use std::io::Read;

use moat_unpack::{unpack, Container, Contents, Flow, Input, Member, Options, Visitor};

#[derive(Default)]
struct Collect {
    cap: Option<u64>,
    stop_after: Option<usize>,
    members: Vec<(String, Vec<u8>, bool, Option<Container>)>,
}

impl Visitor for Collect {
    fn max_size(&mut self) -> u64 {
        self.cap.unwrap_or(u64::MAX)
    }
    fn member(&mut self, member: Member) -> Flow {
        let data = match member.contents {
            Contents::Memory(v) => v,
            Contents::Spooled(mut f, _) => {
                let mut v = Vec::new();
                f.read_to_end(&mut v).unwrap();
                v
            }
        };
        self.members
            .push((member.name, data, member.truncated, member.kind));
        if self.stop_after == Some(self.members.len()) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

fn members(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let kind = Container::sniff(data).expect("a container");
    let mut c = Collect::default();
    unpack(kind, Input::Bytes(data), &Options::default(), &mut c).unwrap();
    c.members.into_iter().map(|(n, d, _, _)| (n, d)).collect()
}

#[test]
fn mail_parts_are_decoded() {
    let mail = b"From: a@example.com\nTo: b@example.com\nSubject: x\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"outer\"\n\n--outer\nContent-Type: text/plain\n\
Content-Transfer-Encoding: quoted-printable\n\nsoft=\nbreak =3D equals\n--outer\n\
Content-Type: multipart/alternative; boundary=inner\n\n--inner\nContent-Type: text/plain\n\n\
plain text\n--inner\nContent-Type: application/octet-stream; name=\"b.bin\"\n\
Content-Transfer-Encoding: base64\n\naGVsbG8gd29y\nbGQ=\n--inner--\n--outer\n\
Content-Type: text/plain\n\nsee below\nbegin 644 u.txt\n#86)C\n`\nend\n--outer--\n";
    let m = members(mail);
    let find = |d: &[u8]| m.iter().any(|(_, x)| x.starts_with(d));
    assert!(find(b"softbreak = equals"), "{m:?}");
    assert!(find(b"plain text"));
    assert!(
        m.iter().any(|(n, d)| n == "b.bin" && d == b"hello world"),
        "{m:?}"
    );
    assert!(m.iter().any(|(n, d)| n == "u.txt" && d == b"abc"), "{m:?}");
}

#[test]
fn an_mbox_is_split_into_messages() {
    let mbox = b"From a@b Thu Jul 31 13:51:21 2008\nFrom: a@b\nSubject: one\n\nfirst body\n\n\
From c@d Thu Jul 31 13:51:22 2008\nFrom: c@d\nSubject: two\nContent-Transfer-Encoding: base64\n\n\
c2Vjb25k\n";
    let m = members(mbox);
    assert!(m.iter().any(|(_, d)| d.starts_with(b"first body")), "{m:?}");
    assert!(m.iter().any(|(_, d)| d == b"second"), "{m:?}");
}

fn cpio_odc(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data, mode) in [(name, data, 0o100644), ("TRAILER!!!", &b""[..], 0)] {
        out.extend(
            format!(
                "070707{:06o}{:06o}{:06o}{:06o}{:06o}{:06o}{:06o}{:011o}{:06o}{:011o}",
                0,
                1,
                mode,
                0,
                0,
                1,
                0,
                0,
                name.len() + 1,
                data.len()
            )
            .as_bytes(),
        );
        out.extend(name.as_bytes());
        out.push(0);
        out.extend(data);
    }
    out
}

fn cpio_binary(name: &str, data: &[u8], le: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let w =
        |out: &mut Vec<u8>, v: u16| out.extend(if le { v.to_le_bytes() } else { v.to_be_bytes() });
    for (name, data, mode) in [(name, data, 0o100644u16), ("TRAILER!!!", &b""[..], 0)] {
        for v in [
            0o070707,
            0,
            1,
            mode,
            0,
            0,
            1,
            0,
            0,
            0,
            name.len() as u16 + 1,
        ] {
            w(&mut out, v);
        }
        w(&mut out, (data.len() >> 16) as u16);
        w(&mut out, data.len() as u16);
        out.extend(name.as_bytes());
        out.push(0);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        out.extend(data);
        if out.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

#[test]
fn cpio_variants() {
    let body = b"odd-length body";
    for archive in [
        cpio_odc("x/odc", body),
        cpio_binary("le", body, true),
        cpio_binary("be", body, false),
    ] {
        let m = members(&archive);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].1, body);
    }
}

#[test]
fn the_size_limit_truncates_and_stop_stops() {
    let mut tar = tar::Builder::new(Vec::new());
    for name in ["a", "b", "c"] {
        let data = vec![b'x'; 5000];
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_cksum();
        tar.append_data(&mut h, name, &data[..]).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut c = Collect {
        cap: Some(100),
        stop_after: Some(2),
        ..Default::default()
    };
    let done = unpack(
        Container::Tar,
        Input::Bytes(&tar),
        &Options::default(),
        &mut c,
    )
    .unwrap();
    assert!(done.stopped);
    assert_eq!(c.members.len(), 2);
    assert!(c
        .members
        .iter()
        .all(|(_, d, truncated, _)| d.len() == 100 && *truncated));
    // A member larger than the memory threshold is spooled, and whole.
    let mut c = Collect::default();
    let options = Options {
        memory_threshold: 1000,
    };
    unpack(Container::Tar, Input::Bytes(&tar), &options, &mut c).unwrap();
    assert_eq!(c.members.len(), 3);
    assert!(c
        .members
        .iter()
        .all(|(_, d, truncated, _)| d.len() == 5000 && !truncated));
}

#[test]
fn a_gzip_member_is_named_from_its_header() {
    let mut e = flate2::GzBuilder::new()
        .filename("inner.txt")
        .write(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, b"hello").unwrap();
    let gz = e.finish().unwrap();
    assert_eq!(
        members(&gz),
        vec![("inner.txt".to_owned(), b"hello".to_vec())]
    );
}

#[test]
fn sniffing_leaves_plain_files_alone() {
    for plain in [
        &b"hello world, just text\n"[..],
        b"MZ\x90\x00",
        b"",
        b"PK",
        b"From nowhere",
    ] {
        assert_eq!(Container::sniff(plain), None, "{plain:?}");
    }
}

#[test]
fn clamav_type_names() {
    assert_eq!(Container::Zip.clamav_type(), "CL_TYPE_ZIP");
    assert_eq!(
        Container::Cpio.clamav_type_of(b"070707..."),
        "CL_TYPE_CPIO_ODC"
    );
    assert_eq!(
        Container::Cpio.clamav_type_of(b"070701..."),
        "CL_TYPE_CPIO_NEWC"
    );
    assert_eq!(
        Container::Cpio.clamav_type_of(b"070702..."),
        "CL_TYPE_CPIO_CRC"
    );
    assert_eq!(
        Container::Cpio.clamav_type_of(&[0xc7, 0x71]),
        "CL_TYPE_CPIO_OLD"
    );
    let mut ustar = vec![0u8; 512];
    ustar[257..262].copy_from_slice(b"ustar");
    assert_eq!(Container::Tar.clamav_type_of(&ustar), "CL_TYPE_POSIX_TAR");
    assert_eq!(
        Container::Tar.clamav_type_of(&[1u8; 512]),
        "CL_TYPE_OLD_TAR"
    );
}

#[test]
fn large_decoded_members_are_spooled() {
    // A PDF stream larger than the memory threshold comes as a spooled member.
    let body = vec![b'q'; 5000];
    let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Length 5000 >>\nstream\n".to_vec();
    pdf.extend(&body);
    pdf.extend(b"\nendstream\nendobj\n");
    struct Spooled(Vec<bool>);
    impl Visitor for Spooled {
        fn max_size(&mut self) -> u64 {
            u64::MAX
        }
        fn member(&mut self, m: Member) -> Flow {
            self.0
                .push(matches!(m.contents, Contents::Spooled(_, 5000)));
            Flow::Continue
        }
    }
    let mut v = Spooled(Vec::new());
    let options = Options {
        memory_threshold: 1000,
    };
    unpack(Container::Pdf, Input::Bytes(&pdf), &options, &mut v).unwrap();
    assert_eq!(v.0, vec![true]);
}

/// The mail sniff's byte-level first-line test (a fast path) must keep its rules:
/// the first non-blank line, any case, no leading space; then enough known headers
/// (counted from the first line: after leading blank lines, none).
#[test]
fn mail_sniffing_first_line() {
    for mail in [
        &b"RECEIVED: from a\r\nSubject: x\r\n\r\nbody"[..],
        b"From someone Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody",
        b"tO: b\nfrom: a\n\nbody",
    ] {
        assert_eq!(Container::sniff(mail), Some(Container::Mail), "{mail:?}");
    }
    for plain in [
        &b"Fromage: cheese\nSubject: x\n\n"[..],
        b" From: a\nTo: b\n\n",
        b"\n\tto: b\nfrom: a\n\n",
        b"Dear reader,\nFrom: a\nTo: b\n\n",
        b"Subject: only one\n\nbody",
        b"\n\nSubject: x\nTo: b\n\nbody",
    ] {
        assert_eq!(Container::sniff(plain), None, "{plain:?}");
    }
}
