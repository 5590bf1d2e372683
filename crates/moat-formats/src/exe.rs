//! Executable layout: PE, ELF and Mach-O headers parsed into file offsets.
//! (Interface; the implementation is being written.)

/// Which executable format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExeKind {
    /// Windows PE (32 or 64-bit).
    Pe,
    /// ELF (32 or 64-bit, either byte order).
    Elf,
    /// Mach-O (32 or 64-bit, either byte order).
    MachO,
}

/// One section as ClamAV's offset and section-hash logic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// Relative virtual address (PE) or virtual address.
    pub rva: u64,
    /// Virtual size.
    pub virtual_size: u64,
    /// Where the section's bytes start in the file.
    pub raw_offset: u64,
    /// How many bytes of the file it occupies.
    pub raw_size: u64,
}

/// What the offsets `EP+n`, `Sx+n`, `SEx`, `SL+n` and the `.ldb` keys need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExeInfo {
    /// The format.
    pub kind: ExeKind,
    /// The entry point as a file offset, when it maps into the file.
    pub entry_point: Option<u64>,
    /// Sections in header order (ClamAV numbers them from 0).
    pub sections: Vec<Section>,
}
