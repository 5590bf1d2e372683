//! ClamAV's database containers: `.cvd` (signed), `.cld` (a `.cvd` updated locally by
//! freshclam) and `.cud` (unsigned, built with `sigtool --unsigned`).
//!
//! A container is a 512-byte header,
//! `ClamAV-VDB:build time:version:signatures:functionality level:MD5:digital signature:builder:build time (s)`
//! padded with spaces, then a tar archive: gzip-compressed in a `.cvd` and a `.cud`, plain
//! (or gzip-compressed, with freshclam's `CompressLocalDatabase`) in a `.cld`. The archive
//! holds a `NAME.info` member whose first line is the header again (with `X` for the MD5
//! and the signature) followed by one `member:size:sha256` line per database member, then
//! the members themselves (`main.hdb`, `main.ndb`, ..., and `COPYING`, not listed).
//!
//! What moat checks, and what it does not:
//! - the header's syntax (magic, numeric version, signature count and level);
//! - the MD5 of everything after the header against the header's MD5 field, for `.cvd`
//!   and `.cud`. Not for a `.cld`: freshclam rewrites the body when it applies an update
//!   but keeps the header it had, and ClamAV does not verify a `.cld`'s MD5 (nor its
//!   signature) either;
//! - the `.info` member: its first line must be a `ClamAV-VDB:` header, every member with
//!   a database extension must be listed in it, and every listed member must be present
//!   with the listed size and SHA-256;
//! - **not** the RSA digital signature of a `.cvd` (ClamAV's own scheme) nor the `DSIG:`
//!   line of the `.info` member: a `.cvd` is trusted as far as its checksums go.
//!
//! Memory is bounded: a member larger than [`MAX_MEMBER`] or a body that inflates past
//! [`MAX_INFLATED`] is refused.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// The size of a container's header.
pub const HEADER_LEN: usize = 512;

/// The largest member moat accepts (ClamAV's biggest, `main.hdb`, is well below).
pub const MAX_MEMBER: u64 = 512 << 20;

/// The most a container's body may inflate to.
pub const MAX_INFLATED: u64 = 4 << 30;

/// Which kind of container, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.cvd`: signed, official.
    Cvd,
    /// `.cld`: an official `.cvd` updated locally; body usually not compressed.
    Cld,
    /// `.cud`: unsigned; its signatures are reported with `.UNOFFICIAL`.
    Cud,
}

impl Kind {
    /// The kind for a file extension (`cvd`, `cld`, `cud`).
    pub fn from_extension(ext: &str) -> Option<Kind> {
        match ext {
            "cvd" => Some(Kind::Cvd),
            "cld" => Some(Kind::Cld),
            "cud" => Some(Kind::Cud),
            _ => None,
        }
    }

    /// Whether ClamAV treats the container's signatures as official (no `.UNOFFICIAL`).
    pub fn official(self) -> bool {
        matches!(self, Kind::Cvd | Kind::Cld)
    }
}

/// The parsed 512-byte header of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Build time as written (`01 Dec 2026 22-47 +0000`).
    pub time: String,
    /// Database version; the higher of a `.cvd` and a `.cld` of the same name wins.
    pub version: u32,
    /// Number of signatures the builder counted.
    pub signatures: u32,
    /// Functionality level the database needs.
    pub flevel: u32,
    /// MD5 of the body, lowercase hex (as written).
    pub md5: String,
    /// The builder's name.
    pub builder: String,
}

/// Why a container was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerError {
    /// The 512-byte header is missing, short or malformed.
    BadHeader(String),
    /// A `.cvd`/`.cud` body that is not gzip data.
    NotGzip,
    /// The body's MD5 differs from the header's.
    Md5Mismatch {
        /// From the header.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// The compressed stream or the tar archive is cut short or corrupt.
    Truncated(String),
    /// A member or the whole body exceeds moat's memory bounds.
    TooLarge(String),
    /// The `.info` member is missing or malformed.
    BadInfo(String),
    /// A member's size differs from its `.info` line.
    MemberSize {
        /// The member's name.
        member: String,
        /// From `.info`.
        expected: u64,
        /// In the archive.
        actual: u64,
    },
    /// A member's SHA-256 differs from its `.info` line.
    MemberSha256 {
        /// The member's name.
        member: String,
    },
    /// A database member not listed in `.info`.
    MemberNotListed {
        /// The member's name.
        member: String,
    },
    /// A member listed in `.info` but absent from the archive.
    MemberMissing {
        /// The member's name.
        member: String,
    },
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerError::BadHeader(why) => write!(f, "bad CVD header: {why}"),
            ContainerError::NotGzip => f.write_str("body is not gzip-compressed (bad magic)"),
            ContainerError::Md5Mismatch { expected, actual } => write!(
                f,
                "MD5 mismatch: the header says {expected}, the body's is {actual}"
            ),
            ContainerError::Truncated(why) => write!(f, "truncated or corrupt body: {why}"),
            ContainerError::TooLarge(why) => write!(f, "too large: {why}"),
            ContainerError::BadInfo(why) => write!(f, "bad .info member: {why}"),
            ContainerError::MemberSize {
                member,
                expected,
                actual,
            } => write!(
                f,
                "size mismatch for member {member}: .info says {expected} bytes, it has {actual}"
            ),
            ContainerError::MemberSha256 { member } => {
                write!(f, "SHA-256 mismatch for member {member}")
            }
            ContainerError::MemberNotListed { member } => {
                write!(f, "member {member} is not listed in the .info member")
            }
            ContainerError::MemberMissing { member } => write!(
                f,
                "member {member} listed in .info is missing from the archive (truncated?)"
            ),
        }
    }
}

impl std::error::Error for ContainerError {}

/// Parses the first [`HEADER_LEN`] bytes of a container.
pub fn parse_header(bytes: &[u8]) -> Result<Header, ContainerError> {
    let bad = |why: &str| ContainerError::BadHeader(why.to_owned());
    if bytes.len() < HEADER_LEN {
        return Err(bad(&format!(
            "the file has {} bytes, a header alone is {HEADER_LEN}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(&bytes[..HEADER_LEN]).map_err(|_| bad("not ASCII text"))?;
    let text = text.trim_end_matches([' ', '\0', '\n', '\r']);
    let fields: Vec<&str> = text.split(':').collect();
    if fields[0] != "ClamAV-VDB" {
        return Err(bad("does not start with ClamAV-VDB:"));
    }
    if fields.len() < 8 {
        return Err(bad(&format!(
            "{} fields, expected at least 8 (ClamAV-VDB:time:version:sigs:flevel:md5:dsig:builder)",
            fields.len()
        )));
    }
    let number = |i: usize, what: &str| {
        fields[i]
            .parse::<u32>()
            .map_err(|_| bad(&format!("{what} {:?} is not a number", fields[i])))
    };
    Ok(Header {
        time: fields[1].to_owned(),
        version: number(2, "version")?,
        signatures: number(3, "signature count")?,
        flevel: number(4, "functionality level")?,
        md5: fields[5].to_ascii_lowercase(),
        builder: fields[7].to_owned(),
    })
}

/// One member of the archive.
pub(crate) struct Member {
    pub name: String,
    pub data: Vec<u8>,
}

/// Checks a whole container (`bytes` is the file) and returns its header and members in
/// archive order, `.info` included.
pub(crate) fn unpack(bytes: &[u8], kind: Kind) -> Result<(Header, Vec<Member>), ContainerError> {
    let header = parse_header(bytes)?;
    let body = &bytes[HEADER_LEN..];
    let gzip = body.starts_with(&[0x1f, 0x8b]);
    if kind != Kind::Cld {
        if !gzip {
            return Err(ContainerError::NotGzip);
        }
        let actual = faster_hex::hex_string(&Md5::digest(body));
        if actual != header.md5 {
            return Err(ContainerError::Md5Mismatch {
                expected: header.md5.clone(),
                actual,
            });
        }
    }
    let members = if gzip {
        read_tar(flate2::read::GzDecoder::new(body))?
    } else {
        read_tar(body)?
    };
    verify_info(&members)?;
    Ok((header, members))
}

/// Counts inflated bytes and refuses more than [`MAX_INFLATED`].
struct Bounded<R> {
    inner: R,
    total: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > MAX_INFLATED {
            return Err(std::io::Error::other(TooLargeBody));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct TooLargeBody;

impl fmt::Display for TooLargeBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the body inflates past {} GiB", MAX_INFLATED >> 30)
    }
}

impl std::error::Error for TooLargeBody {}

fn io_error(e: std::io::Error, context: &str) -> ContainerError {
    if e.get_ref().is_some_and(|inner| inner.is::<TooLargeBody>()) {
        ContainerError::TooLarge(e.to_string())
    } else {
        ContainerError::Truncated(format!("{context}: {e}"))
    }
}

fn read_tar<R: Read>(reader: R) -> Result<Vec<Member>, ContainerError> {
    let mut bounded = Bounded {
        inner: reader,
        total: 0,
    };
    let mut members = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut bounded);
        let entries = archive
            .entries()
            .map_err(|e| io_error(e, "reading the archive"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| io_error(e, "reading a tar header"))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let size = entry.size();
            if size > MAX_MEMBER {
                return Err(ContainerError::TooLarge(format!(
                    "member {name} has {size} bytes, the limit is {} MiB",
                    MAX_MEMBER >> 20
                )));
            }
            let mut data = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut data)
                .map_err(|e| io_error(e, &format!("reading member {name}")))?;
            if data.len() as u64 != size {
                return Err(ContainerError::Truncated(format!(
                    "member {name} has {} of its {size} bytes",
                    data.len()
                )));
            }
            members.push(Member { name, data });
        }
    }
    // Read the rest so that gzip's trailer (CRC and length) is checked.
    std::io::copy(&mut bounded, &mut std::io::sink())
        .map_err(|e| io_error(e, "after the archive"))?;
    Ok(members)
}

fn is_info(name: &str) -> bool {
    name.ends_with(".info")
}

fn verify_info(members: &[Member]) -> Result<(), ContainerError> {
    let bad = |why: String| ContainerError::BadInfo(why);
    let info = members
        .iter()
        .find(|m| is_info(&m.name))
        .ok_or_else(|| bad("the archive has no .info member".into()))?;
    let text = std::str::from_utf8(&info.data).map_err(|_| bad("not text".into()))?;
    let mut lines = text.lines();
    if !lines.next().is_some_and(|l| l.starts_with("ClamAV-VDB:")) {
        return Err(bad("its first line is not a ClamAV-VDB: header".into()));
    }
    let mut listed: HashMap<&str, (u64, &str)> = HashMap::new();
    for (i, line) in lines.enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with("DSIG:") {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let [name, size, sha] = fields[..] else {
            return Err(bad(format!(
                "line {}: expected name:size:sha256, got {line:?}",
                i + 2
            )));
        };
        let size = size
            .parse::<u64>()
            .map_err(|_| bad(format!("line {}: size {size:?} is not a number", i + 2)))?;
        listed.insert(name, (size, sha));
    }
    let mut seen = 0;
    for member in members {
        if is_info(&member.name) {
            continue;
        }
        let Some(&(size, sha)) = listed.get(member.name.as_str()) else {
            if crate::database::is_database_name(&member.name) {
                return Err(ContainerError::MemberNotListed {
                    member: member.name.clone(),
                });
            }
            continue;
        };
        seen += 1;
        if member.data.len() as u64 != size {
            return Err(ContainerError::MemberSize {
                member: member.name.clone(),
                expected: size,
                actual: member.data.len() as u64,
            });
        }
        if !faster_hex::hex_string(&Sha256::digest(&member.data)).eq_ignore_ascii_case(sha) {
            return Err(ContainerError::MemberSha256 {
                member: member.name.clone(),
            });
        }
    }
    if seen != listed.len() {
        let present: std::collections::HashSet<&str> =
            members.iter().map(|m| m.name.as_str()).collect();
        let mut missing: Vec<&&str> = listed.keys().filter(|n| !present.contains(**n)).collect();
        missing.sort();
        if let Some(member) = missing.first() {
            return Err(ContainerError::MemberMissing {
                member: member.to_string(),
            });
        }
    }
    Ok(())
}

/// Reads only the header of the container at `path`.
pub fn read_header(path: &std::path::Path) -> std::io::Result<Result<Header, ContainerError>> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(HEADER_LEN);
    file.by_ref()
        .take(HEADER_LEN as u64)
        .read_to_end(&mut buf)?;
    Ok(parse_header(&buf))
}
