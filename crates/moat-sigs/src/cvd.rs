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
//! Memory is bounded: the file is streamed (read once for the MD5, once to inflate),
//! members are loaded one at a time as they come, and a member larger than
//! [`MAX_MEMBER`] or a body that inflates past [`MAX_INFLATED`] is refused. Members are
//! verified before they are loaded, but a load that fails later (a member missing at the
//! end) fails as a whole: nothing of a refused container is used.

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

/// What failed while unpacking: the container itself, or the visitor given a member.
pub(crate) enum Failure<E> {
    Container(ContainerError),
    Visit(E),
}

impl<E> From<ContainerError> for Failure<E> {
    fn from(e: ContainerError) -> Self {
        Failure::Container(e)
    }
}

/// Checks the container `file` and hands each verified member to `visit`, in archive
/// order, `.info` excluded. The file is read twice (once for the MD5, once to inflate),
/// never held in memory as a whole; members are held one at a time, except those that
/// come before `.info` in the archive (only `COPYING` in ClamAV's containers).
pub(crate) fn unpack<E>(
    file: &mut std::fs::File,
    kind: Kind,
    mut visit: impl FnMut(Member) -> Result<(), E>,
) -> Result<Header, Failure<E>> {
    use std::io::{BufReader, Seek, SeekFrom};
    let io = |e: std::io::Error| ContainerError::Truncated(format!("reading the file: {e}"));
    let mut head = Vec::with_capacity(HEADER_LEN);
    file.by_ref()
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    let header = parse_header(&head)?;
    let mut magic = Vec::with_capacity(2);
    file.by_ref().take(2).read_to_end(&mut magic).map_err(io)?;
    let gzip = magic == [0x1f, 0x8b];
    if kind != Kind::Cld {
        if !gzip {
            return Err(ContainerError::NotGzip.into());
        }
        file.seek(SeekFrom::Start(HEADER_LEN as u64)).map_err(io)?;
        let mut md5 = Md5::new();
        std::io::copy(&mut BufReader::new(&mut *file), &mut md5).map_err(io)?;
        let actual = faster_hex::hex_string(&md5.finalize());
        if actual != header.md5 {
            return Err(ContainerError::Md5Mismatch {
                expected: header.md5.clone(),
                actual,
            }
            .into());
        }
    }
    file.seek(SeekFrom::Start(HEADER_LEN as u64)).map_err(io)?;
    let body = BufReader::with_capacity(1 << 16, file);
    let mut info = InfoCheck::default();
    let mut visit = |member: Member| info.member(member, &mut visit);
    if gzip {
        read_tar(flate2::bufread::GzDecoder::new(body), &mut visit)?;
    } else {
        read_tar(body, &mut visit)?;
    }
    info.finish()?;
    Ok(header)
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

fn read_tar<R: Read, E>(
    reader: R,
    visit: &mut impl FnMut(Member) -> Result<(), Failure<E>>,
) -> Result<(), Failure<E>> {
    let mut bounded = Bounded {
        inner: reader,
        total: 0,
    };
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
                ))
                .into());
            }
            let mut data = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut data)
                .map_err(|e| io_error(e, &format!("reading member {name}")))?;
            if data.len() as u64 != size {
                return Err(ContainerError::Truncated(format!(
                    "member {name} has {} of its {size} bytes",
                    data.len()
                ))
                .into());
            }
            visit(Member { name, data })?;
        }
    }
    // Read the rest so that gzip's trailer (CRC and length) is checked.
    std::io::copy(&mut bounded, &mut std::io::sink())
        .map_err(|e| io_error(e, "after the archive"))?;
    Ok(())
}

fn is_info(name: &str) -> bool {
    name.ends_with(".info")
}

/// Checks members against the `.info` member as they come.
#[derive(Default)]
struct InfoCheck {
    /// `name -> (size, sha256)` once `.info` was read.
    listed: Option<HashMap<String, (u64, String)>>,
    /// Members seen before `.info`.
    pending: Vec<Member>,
    /// Listed members seen.
    seen: std::collections::HashSet<String>,
}

impl InfoCheck {
    fn member<E>(
        &mut self,
        member: Member,
        visit: &mut impl FnMut(Member) -> Result<(), E>,
    ) -> Result<(), Failure<E>> {
        if is_info(&member.name) {
            if self.listed.is_some() {
                return Err(ContainerError::BadInfo(format!(
                    "a second .info member, {}",
                    member.name
                ))
                .into());
            }
            self.listed = Some(parse_info(&member.data)?);
            for member in std::mem::take(&mut self.pending) {
                self.verify_and_visit(member, visit)?;
            }
            return Ok(());
        }
        if self.listed.is_none() {
            self.pending.push(member);
            return Ok(());
        }
        self.verify_and_visit(member, visit)
    }

    fn verify_and_visit<E>(
        &mut self,
        member: Member,
        visit: &mut impl FnMut(Member) -> Result<(), E>,
    ) -> Result<(), Failure<E>> {
        let listed = self.listed.as_ref().expect(".info read");
        match listed.get(&member.name) {
            None if crate::database::is_database_name(&member.name) => {
                return Err(ContainerError::MemberNotListed {
                    member: member.name,
                }
                .into())
            }
            None => {}
            Some((size, sha)) => {
                if member.data.len() as u64 != *size {
                    return Err(ContainerError::MemberSize {
                        expected: *size,
                        actual: member.data.len() as u64,
                        member: member.name,
                    }
                    .into());
                }
                if !faster_hex::hex_string(&Sha256::digest(&member.data)).eq_ignore_ascii_case(sha)
                {
                    return Err(ContainerError::MemberSha256 {
                        member: member.name,
                    }
                    .into());
                }
                self.seen.insert(member.name.clone());
            }
        }
        visit(member).map_err(Failure::Visit)
    }

    fn finish(self) -> Result<(), ContainerError> {
        let Some(listed) = self.listed else {
            return Err(ContainerError::BadInfo(
                "the archive has no .info member".into(),
            ));
        };
        let mut missing: Vec<&String> = listed.keys().filter(|n| !self.seen.contains(*n)).collect();
        missing.sort();
        match missing.first() {
            Some(member) => Err(ContainerError::MemberMissing {
                member: member.to_string(),
            }),
            None => Ok(()),
        }
    }
}

fn parse_info(data: &[u8]) -> Result<HashMap<String, (u64, String)>, ContainerError> {
    let bad = |why: String| ContainerError::BadInfo(why);
    let text = std::str::from_utf8(data).map_err(|_| bad("not text".into()))?;
    let mut lines = text.lines();
    if !lines.next().is_some_and(|l| l.starts_with("ClamAV-VDB:")) {
        return Err(bad("its first line is not a ClamAV-VDB: header".into()));
    }
    let mut listed = HashMap::new();
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
        listed.insert(name.to_owned(), (size, sha.to_owned()));
    }
    Ok(listed)
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
