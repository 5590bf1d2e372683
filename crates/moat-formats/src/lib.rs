//! File formats as ClamAV's signatures see them. Pure byte parsers: no I/O beyond the
//! [`ByteSource`] they are handed, no allocation proportional to hostile length fields,
//! no panics on any input (fuzzed).
//!
//! - [`filetype`]: what a file is ([`FileType`]), from its leading bytes, the way
//!   ClamAV's type detection decides it, and which `.ndb`/`.ldb` target type
//!   ([`FileType::target`]) it belongs to.
//! - [`exe`]: the layout of executables (PE, ELF, Mach-O): entry point and sections as
//!   file offsets, which resolve `EP+n`, `Sx+n`, `SEx`, `SL+n` offsets, the `.ldb`
//!   `EntryPoint`/`NumberOfSections` keys, and `.mdb`/`.msb` section hashes.

#![warn(missing_docs)]

pub mod exe;
pub mod filetype;
mod source;

pub use exe::{ExeInfo, ExeKind, Section};
pub use filetype::FileType;
pub use source::ByteSource;
