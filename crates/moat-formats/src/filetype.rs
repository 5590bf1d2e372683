//! File-type detection, as ClamAV's (`CL_TYPE_*`) decides it from leading bytes.
//! (Interface; the implementation is being written.)

/// What a file is, for the purposes of signature target types and unpacking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileType {
    /// Nothing recognised, binary.
    Binary,
    /// Plain text (ASCII, UTF-8, UTF-16 with or without BOM): target 7.
    Text,
    /// HTML: target 3.
    Html,
    /// A mail message or mbox: target 4.
    Mail,
    /// Windows PE (MZ + PE header): target 1.
    Pe,
    /// ELF: target 6.
    Elf,
    /// Mach-O, 32/64-bit, either byte order, or a universal binary: target 9.
    MachO,
    /// OLE2 compound document: target 2.
    Ole2,
    /// PDF: target 10.
    Pdf,
    /// Flash (SWF, FWS/CWS/ZWS): target 11.
    Flash,
    /// Java class file: target 12.
    Java,
    /// Graphics (GIF, PNG, JPEG, BMP, TIFF, ICO...): target 5.
    Graphics,
    /// Zip archive.
    Zip,
    /// gzip stream.
    Gzip,
    /// bzip2 stream.
    Bzip2,
    /// xz stream.
    Xz,
    /// POSIX/GNU tar archive.
    Tar,
    /// 7-Zip archive.
    SevenZip,
    /// cpio archive (old binary either byte order, odc, newc, crc).
    Cpio,
    /// Microsoft cabinet.
    Cab,
    /// ARJ archive.
    Arj,
    /// RAR archive.
    Rar,
    /// Rich Text Format.
    Rtf,
    /// BinHex 4.0.
    BinHex,
    /// MS-TNEF (winmail.dat).
    Tnef,
    /// Compiled HTML Help (ITSF).
    Chm,
    /// MS SZDD (compress.exe) file.
    Szdd,
}

impl FileType {
    /// The `.ndb`/`.ldb` target type this file type belongs to (0 when none).
    pub fn target(self) -> u8 {
        match self {
            FileType::Pe => 1,
            FileType::Ole2 => 2,
            FileType::Html => 3,
            FileType::Mail => 4,
            FileType::Graphics => 5,
            FileType::Elf => 6,
            FileType::Text => 7,
            FileType::MachO => 9,
            FileType::Pdf => 10,
            FileType::Flash => 11,
            FileType::Java => 12,
            _ => 0,
        }
    }
}
