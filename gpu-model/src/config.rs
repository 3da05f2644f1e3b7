//! Model configuration.

use std::fmt;

/// Default VRAM size, MiB.
pub const DEFAULT_VRAM_MIB: u64 = 256;

use crate::timing::Timing;

/// What can be configured on the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// VRAM size in bytes.
    pub vram_size: u64,
    /// The timing model.
    pub timing: Timing,
    /// Keep translations until invalidated (the hardware behaviour).
    pub strict_tlb: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            vram_size: DEFAULT_VRAM_MIB << 20,
            timing: Timing::default(),
            strict_tlb: true,
        }
    }
}

/// A configuration the hardware could not report.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE` encodes sizes as
    /// `mag << (scale + 20)` with a 6-bit `mag` and a 4-bit `scale`.
    VramSizeNotEncodable(u64),
    /// A timing parameter out of range.
    Timing(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VramSizeNotEncodable(s) => write!(
                f,
                "VRAM size {s:#x} is not of the form mag << (scale + 20) with mag < 64, scale < 16"
            ),
            Self::Timing(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Encodes a memory size as `NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE` does:
/// `LOWER_MAG` (9:4) shifted by `LOWER_SCALE` (3:0) + 20.
pub fn encode_local_memory_range(size: u64) -> Result<u32, ConfigError> {
    (0..16u32)
        .find_map(|scale| {
            let unit = 1u64 << (scale + 20);
            let mag = size / unit;
            (size.is_multiple_of(unit) && (1..64).contains(&mag))
                .then_some(((mag as u32) << 4) | scale)
        })
        .ok_or(ConfigError::VramSizeNotEncodable(size))
}

impl Config {
    /// Checks that the device can present this configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.timing.validate().map_err(ConfigError::Timing)?;
        encode_local_memory_range(self.vram_size).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(v: u32) -> u64 {
        u64::from((v >> 4) & 0x3f) << ((v & 0xf) + 20)
    }

    #[test]
    fn local_memory_range_round_trips() {
        for mib in [1u64, 16, 128, 192, 256, 384, 1024, 4096, 16384] {
            let v = encode_local_memory_range(mib << 20).unwrap();
            assert_eq!(decode(v), mib << 20, "{mib} MiB");
        }
    }

    #[test]
    fn unencodable_sizes_are_refused() {
        assert!(encode_local_memory_range(0).is_err());
        assert!(encode_local_memory_range(4096).is_err());
        assert!(encode_local_memory_range((1 << 20) + 4096).is_err());
        assert!(encode_local_memory_range(65 << 20).is_err());
    }
}
