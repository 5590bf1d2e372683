//! ClamAV's test files (Debian's clamav-testfiles): each container holds clam.exe,
//! somewhere below it. Skipped, with a note, when the package is not installed.

use std::io::Read;
use std::path::Path;

use moat_unpack::{unpack, Container, Contents, Flow, Input, Member, Options, Visitor};

const DIR: &str = "/usr/share/clamav-testfiles";

/// Walks members recursively, remembering whether one of them is `target`.
struct Find<'t> {
    target: &'t [u8],
    found: bool,
    depth: usize,
    trail: Vec<String>,
}

impl Visitor for Find<'_> {
    fn max_size(&mut self) -> u64 {
        100 << 20
    }
    fn member(&mut self, member: Member) -> Flow {
        let kind = member.kind;
        let data = match member.contents {
            Contents::Memory(v) => v,
            Contents::Spooled(mut f, _) => {
                let mut v = Vec::new();
                f.read_to_end(&mut v).unwrap();
                v
            }
        };
        self.trail.push(format!(
            "{}{} ({} bytes)",
            "  ".repeat(self.depth),
            member.name,
            data.len()
        ));
        if data == self.target {
            self.found = true;
            return Flow::Stop;
        }
        if self.depth < 17 {
            if let Some(kind) = kind.or_else(|| Container::sniff(&data)) {
                self.depth += 1;
                let _ = unpack(kind, Input::Bytes(&data), &Options::default(), self);
                self.depth -= 1;
            }
        }
        if self.found {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

fn holds_clam_exe(file: &str) -> Result<(), String> {
    let target = std::fs::read(Path::new(DIR).join("clam.exe")).unwrap();
    let data = std::fs::read(Path::new(DIR).join(file)).unwrap();
    let kind = Container::sniff(&data).ok_or(format!("{file}: not sniffed as a container"))?;
    let mut find = Find {
        target: &target,
        found: false,
        depth: 0,
        trail: Vec::new(),
    };
    let result = unpack(kind, Input::Bytes(&data), &Options::default(), &mut find);
    if find.found {
        Ok(())
    } else {
        Err(format!(
            "{file} ({kind:?}): clam.exe not found ({result:?}); members:\n{}",
            find.trail.join("\n")
        ))
    }
}

#[test]
fn every_supported_testfile_holds_clam_exe() {
    if !Path::new(DIR).join("clam.exe").exists() {
        eprintln!("skipped: {DIR} is missing (apt-get install clamav-testfiles)");
        return;
    }
    let files = [
        "clam.zip",
        "clam.d64.zip",
        "clam.impl.zip",
        "clam.bz2.zip",
        "clam.tar.gz",
        "clam.exe.bz2",
        "clam.7z",
        "clam.bin-le.cpio",
        "clam.bin-be.cpio",
        "clam.odc.cpio",
        "clam.newc.cpio",
        "clam.mail",
        "clam.exe.mbox.base64",
        "clam.exe.mbox.uu",
        "clam.ole.doc",
        "clam.exe.binhex",
        "clam.exe.szdd",
        "clam.pdf",
        "clam_cache_emax.tgz",
        "clam.ppt",
        "clam.cab",
        "clam.tnef",
        "clam.exe.rtf",
        "clam.exe.html",
        "clam.arj",
        "clam.chm",
        "clam.sis",
    ];
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| holds_clam_exe(f).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
