//! ClamAV signature database formats, parsed into plain data.
//!
//! This crate knows the *syntax* of ClamAV's databases and nothing about matching:
//! it turns `.hdb`/`.hsb` (hashes), `.fp`/`.sfp` (allow lists), `.ndb` (extended body
//! signatures), `.ldb` (logical signatures) and `.ign2` (disabled names), also inside `.cvd`/`.cld`/`.cud` containers, into the types below, and reports every
//! malformed line as an error that names the file, the line and the reason.
//! The compiled matchers live in `moat-engine`.
//!
//! Layout:
//! - [`hex`]: the body-signature hex syntax (`??`, `a?`, `{n-m}`, `(aa|bb)`, `[x-y]`, `(B)`…)
//!   parsed into a [`hex::Pattern`].
//! - [`offset`]: the offset column of `.ndb` lines (`*`, `n`, `EOF-n`, `EP+n`, `,maxshift`).
//! - [`ldb`]: logical signatures (`.ldb`): target description, expression, subsignatures.
//! - [`line`]: one database line of each format into a signature value.
//! - [`database`]: loading files and directories as `clamscan -d` does, FLEVEL filtering,
//!   `.ign2` application and the per-format "not supported yet" report.
//! - [`cvd`]: the `.cvd`/`.cld`/`.cud` containers (header, MD5, tar, `.info` checks);
//!   their members are loaded as the files they name.
//! - [`builtin`]: the small default set used when no database directory is populated.

#![warn(missing_docs)]

pub mod builtin;
pub mod checked;
pub mod cvd;
pub mod database;
pub mod error;
pub mod hashtable;
pub mod hex;
pub mod ldb;
pub mod line;
pub mod offset;

pub use database::{Database, LoadOptions, LoadReport, SkippedFile};
pub use error::{LoadError, ParseError};
pub use hashtable::{HashEntry, HashTable, Names, ANY_SIZE};
pub use hex::{Element, Gap, Part, Pattern};
pub use ldb::{Ldb, LdbSkip, LogicalSig, Subsig};
pub use line::{BodySig, Digest, HashKind, HashSig, Parsed, SkipReason, Target};
pub use offset::{Offset, OffsetBase};

/// The engine functionality level (FLEVEL) moat implements, as ClamAV 1.4.6 reports it ("running FLEVEL is 216").
///
/// Signatures carry optional `MINFL`/`MAXFL` fields; a signature whose range does not
/// contain this level is skipped at load time exactly as ClamAV 1.4 skips it.
pub const FLEVEL: u32 = 216;
