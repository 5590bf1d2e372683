//! Container metadata signatures (`.cdb`): a member's listing (name, sizes,
//! position) checked before its bytes are scanned.
//!
//! What ClamAV hands these signatures differs by container, measured with
//! `clamscan --debug` (its `CDBNAME:TYPE:CSIZE:NAME:CSIZE:SIZE:ENCRYPTED:POS:RES1`
//! lines) on clamscan 1.4.6, docs/clamav-oracle.md §16:
//!
//! | container        | size in container | position  |
//! |------------------|-------------------|-----------|
//! | zip              | compressed size   | entry + 1 |
//! | tar, cpio        | real size         | 1, 2, …   |
//! | ARJ              | compressed size   | 1, 2, …   |
//! | 7z, cab, CHM     | 0                 | 0, 1, …   |
//!
//! Other containers (gzip, bzip2, xz, OLE2, PDF, mail…) list nothing: no `.cdb`
//! signature is checked on their members. Members are never encrypted here (moat
//! does not hand out encrypted zip members), so `IsEncrypted:1` never matches.

use moat_sigs::checked::{in_meta_range, ContainerMeta};
use moat_unpack::{Container, Entry, Member};

/// What a `.cdb` signature sees of one member.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listing<'m> {
    /// The container's `CL_TYPE_*` name.
    pub container: &'static str,
    /// The container's own size.
    pub container_size: u64,
    pub name: &'m str,
    /// Size in the container: `None` where moat does not know it (ARJ).
    pub stored_size: Option<u64>,
    pub real_size: u64,
    pub position: u64,
}

impl<'m> Listing<'m> {
    /// The listing of `member`, the `seen`-th (from 0) member handed out by a
    /// `kind` container; `None` for containers ClamAV lists nothing of.
    pub fn of(
        kind: Container,
        container: &'static str,
        container_size: u64,
        member: &'m Member,
        seen: u64,
    ) -> Option<Listing<'m>> {
        let real = member.entry.map_or(member.contents.len(), |e| e.size);
        let (stored_size, position) = match kind {
            Container::Tar | Container::Cpio => (Some(real), seen + 1),
            Container::Arj => (None, seen + 1),
            Container::SevenZip | Container::Cab | Container::Chm => (Some(0), seen),
            _ => return None,
        };
        Some(Listing {
            container,
            container_size,
            name: &member.name,
            stored_size,
            real_size: real,
            position,
        })
    }

    /// The listing of a zip directory entry (directories included): its compressed
    /// size, position from 1.
    pub fn of_entry(
        container: &'static str,
        container_size: u64,
        name: &'m str,
        entry: &Entry,
    ) -> Listing<'m> {
        Listing {
            container,
            container_size,
            name,
            stored_size: Some(entry.stored_size),
            real_size: entry.size,
            position: entry.index + 1,
        }
    }

    /// Whether `sig` matches this listing: type, encryption, sizes, position, then
    /// the name. `Res1` is not compared (measured: a zip CRC-32 one off still
    /// matches on clamscan 1.4.6).
    pub fn matches(&self, sig: &ContainerMeta) -> bool {
        if sig
            .container
            .as_deref()
            .is_some_and(|c| c != self.container)
        {
            return false;
        }
        if sig.encrypted == Some(true) {
            return false;
        }
        let stored_ok = match self.stored_size {
            Some(v) => in_meta_range(sig.stored_size, v),
            None => sig.stored_size.is_none(),
        };
        stored_ok
            && in_meta_range(sig.container_size, self.container_size)
            && in_meta_range(sig.real_size, self.real_size)
            && in_meta_range(sig.position, self.position)
            && sig
                .name_regex
                .as_ref()
                .is_none_or(|re| re.is_match(self.name.as_bytes()).unwrap_or(false))
    }
}

/// The first of `sigs` (load order) that matches `listing`.
pub(crate) fn first_match<'e>(sigs: &'e [ContainerMeta], listing: &Listing) -> Option<&'e str> {
    sigs.iter()
        .find(|s| listing.matches(s))
        .map(|s| s.name.as_str())
}
