//! The rsvm firmware container.
//!
//! The model GPU, like nova-core's chips, runs no engine until the driver
//! has uploaded a firmware image that the device accepts. The image is a
//! small TLV container (all integers little-endian):
//!
//! ```text
//! offset  size  field
//! 0       8     magic "RSVMFW\0\x01"
//! 8       2     format version (1)
//! 10      2     header size (24)
//! 12      4     total size of the image in bytes
//! 16      4     CRC-32 (IEEE) of bytes [24, total)
//! 20      4     number of records
//! 24      ...   records: u32 type, u32 length, `length` bytes, padded to 4
//! ```
//!
//! Record types: [`Tag::Chip`] (u32 architecture the image is for),
//! [`Tag::Version`] (u16 major, u16 minor), [`Tag::Engines`] (u32 mask of
//! [`ENGINE_COPY`]/[`ENGINE_COMPUTE`]), [`Tag::Name`] (UTF-8 text). Chip,
//! Version and Engines are required, each exactly once; unknown types are
//! refused, so a newer format fails loudly rather than half-working.

pub const MAGIC: [u8; 8] = *b"RSVMFW\0\x01";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_SIZE: usize = 24;
/// Largest image the device accepts.
pub const MAX_SIZE: usize = 1 << 20;

/// Engine bits of [`Tag::Engines`].
pub const ENGINE_COPY: u32 = 1 << 0;
pub const ENGINE_COMPUTE: u32 = 1 << 1;

/// Architecture of the model chip (`NV_PMC_BOOT_0.ARCHITECTURE`).
pub const ARCH_RSVM_MODEL: u32 = 0x1f;

/// Record types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Tag {
    Chip = 1,
    Version = 2,
    Engines = 3,
    Name = 4,
}

impl Tag {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Chip,
            2 => Self::Version,
            3 => Self::Engines,
            4 => Self::Name,
            _ => return None,
        })
    }
}

/// What an image says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub chip: u32,
    pub version: (u16, u16),
    pub engines: u32,
    pub name: String,
}

/// Why an image was refused. The numbers are what the device reports in
/// its boot status (`0x8000_0000 | code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Error {
    TooShort = 1,
    BadMagic = 2,
    BadFormatVersion = 3,
    BadSize = 4,
    BadChecksum = 5,
    BadRecord = 6,
    UnknownRecord = 7,
    MissingRecord = 8,
    DuplicateRecord = 9,
    WrongChip = 10,
    /// The device could not read the image (DMA outside guest memory).
    Unreachable = 11,
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

/// Builds an image.
pub fn build(img: &Image) -> Vec<u8> {
    let mut recs: Vec<(Tag, Vec<u8>)> = vec![
        (Tag::Chip, img.chip.to_le_bytes().to_vec()),
        (
            Tag::Version,
            [img.version.0.to_le_bytes(), img.version.1.to_le_bytes()].concat(),
        ),
        (Tag::Engines, img.engines.to_le_bytes().to_vec()),
    ];
    if !img.name.is_empty() {
        recs.push((Tag::Name, img.name.as_bytes().to_vec()));
    }
    let mut out = vec![0u8; HEADER_SIZE];
    for (t, v) in &recs {
        out.extend((*t as u32).to_le_bytes());
        out.extend((v.len() as u32).to_le_bytes());
        out.extend(v);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let total = out.len() as u32;
    out[0..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[10..12].copy_from_slice(&(HEADER_SIZE as u16).to_le_bytes());
    out[12..16].copy_from_slice(&total.to_le_bytes());
    let crc = crc32(&out[HEADER_SIZE..]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    out[20..24].copy_from_slice(&(recs.len() as u32).to_le_bytes());
    out
}

/// Parses and checks an image for chip `arch`.
pub fn parse(b: &[u8], arch: u32) -> Result<Image, Error> {
    if b.len() < HEADER_SIZE {
        return Err(Error::TooShort);
    }
    if b[0..8] != MAGIC {
        return Err(Error::BadMagic);
    }
    if u16_at(b, 8) != FORMAT_VERSION || usize::from(u16_at(b, 10)) != HEADER_SIZE {
        return Err(Error::BadFormatVersion);
    }
    let total = u32_at(b, 12) as usize;
    if total != b.len() || total > MAX_SIZE || !total.is_multiple_of(4) {
        return Err(Error::BadSize);
    }
    if crc32(&b[HEADER_SIZE..]) != u32_at(b, 16) {
        return Err(Error::BadChecksum);
    }
    let count = u32_at(b, 20);
    let (mut chip, mut version, mut engines, mut name) = (None, None, None, None);
    let mut at = HEADER_SIZE;
    for _ in 0..count {
        if at + 8 > total {
            return Err(Error::BadRecord);
        }
        let tag = Tag::from_u32(u32_at(b, at)).ok_or(Error::UnknownRecord)?;
        let len = u32_at(b, at + 4) as usize;
        let v = b.get(at + 8..at + 8 + len).ok_or(Error::BadRecord)?;
        let slot_ok = match tag {
            Tag::Chip if len == 4 => chip.replace(u32_at(v, 0)).is_none(),
            Tag::Version if len == 4 => version.replace((u16_at(v, 0), u16_at(v, 2))).is_none(),
            Tag::Engines if len == 4 => engines.replace(u32_at(v, 0)).is_none(),
            Tag::Name => {
                let s = std::str::from_utf8(v).map_err(|_| Error::BadRecord)?;
                name.replace(s.to_owned()).is_none()
            }
            _ => return Err(Error::BadRecord),
        };
        if !slot_ok {
            return Err(Error::DuplicateRecord);
        }
        at = (at + 8 + len).next_multiple_of(4);
    }
    if at != total {
        return Err(Error::BadRecord);
    }
    let (Some(chip), Some(version), Some(engines)) = (chip, version, engines) else {
        return Err(Error::MissingRecord);
    };
    if chip != arch {
        return Err(Error::WrongChip);
    }
    if engines & !(ENGINE_COPY | ENGINE_COMPUTE) != 0 {
        return Err(Error::BadRecord);
    }
    Ok(Image {
        chip,
        version,
        engines,
        name: name.unwrap_or_default(),
    })
}

/// The image the project ships.
pub fn default_image() -> Image {
    Image {
        chip: ARCH_RSVM_MODEL,
        version: (1, 0),
        engines: ENGINE_COPY | ENGINE_COMPUTE,
        name: "rsvm gv100-model boot image".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trip() {
        let img = default_image();
        let b = build(&img);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(parse(&b, ARCH_RSVM_MODEL), Ok(img));
    }

    #[test]
    fn corruption_is_detected() {
        let good = build(&default_image());
        let mut b = good.clone();
        b[0] ^= 1;
        assert_eq!(parse(&b, ARCH_RSVM_MODEL), Err(Error::BadMagic));
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 0x40;
        assert_eq!(parse(&b, ARCH_RSVM_MODEL), Err(Error::BadChecksum));
        assert_eq!(
            parse(&good[..good.len() - 4], ARCH_RSVM_MODEL),
            Err(Error::BadSize)
        );
        assert_eq!(parse(&good[..10], ARCH_RSVM_MODEL), Err(Error::TooShort));
        assert_eq!(parse(&good, 0x14), Err(Error::WrongChip));
    }

    /// Rewrites the record area and fixes up size and checksum.
    fn forge(records: &[(u32, &[u8])]) -> Vec<u8> {
        let mut b = build(&default_image())[..HEADER_SIZE].to_vec();
        for (t, v) in records {
            b.extend(t.to_le_bytes());
            b.extend((v.len() as u32).to_le_bytes());
            b.extend(*v);
            b.resize(b.len().next_multiple_of(4), 0);
        }
        let total = b.len() as u32;
        b[12..16].copy_from_slice(&total.to_le_bytes());
        b[20..24].copy_from_slice(&(records.len() as u32).to_le_bytes());
        let crc = crc32(&b[HEADER_SIZE..]);
        b[16..20].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn records_are_checked() {
        let chip = ARCH_RSVM_MODEL.to_le_bytes();
        let ver = [1, 0, 0, 0];
        let eng = 3u32.to_le_bytes();
        assert!(parse(&forge(&[(1, &chip), (2, &ver), (3, &eng)]), ARCH_RSVM_MODEL).is_ok());
        assert_eq!(
            parse(&forge(&[(1, &chip), (2, &ver)]), ARCH_RSVM_MODEL),
            Err(Error::MissingRecord)
        );
        assert_eq!(
            parse(
                &forge(&[(1, &chip), (1, &chip), (2, &ver), (3, &eng)]),
                ARCH_RSVM_MODEL
            ),
            Err(Error::DuplicateRecord)
        );
        assert_eq!(
            parse(
                &forge(&[(1, &chip), (2, &ver), (3, &eng), (9, &[])]),
                ARCH_RSVM_MODEL
            ),
            Err(Error::UnknownRecord)
        );
        assert_eq!(
            parse(
                &forge(&[(1, &[1, 2]), (2, &ver), (3, &eng)]),
                ARCH_RSVM_MODEL
            ),
            Err(Error::BadRecord)
        );
        let bad_eng = 0x10u32.to_le_bytes();
        assert_eq!(
            parse(
                &forge(&[(1, &chip), (2, &ver), (3, &bad_eng)]),
                ARCH_RSVM_MODEL
            ),
            Err(Error::BadRecord)
        );
    }
}
