//! PCI identity and configuration space.

use crate::irq::MSIX_VECTORS;
use crate::regs::BAR0_SIZE;

/// Model-private PCI vendor ID ("RS"); no in-tree driver matches it.
pub const VENDOR_ID: u16 = 0x5253;
/// Device ID of the GV100-subset model ("VM").
pub const DEVICE_ID: u16 = 0x564d;
/// Revision, as in `NV_PMC_BOOT_0`.
pub const REVISION: u8 = 0xa1;
/// Class code: display controller, 3D controller.
pub const CLASS_CODE: u32 = 0x03_02_00;

/// Size of the configuration space region.
pub const CONFIG_SIZE: usize = 256;
/// Offset of the MSI-X capability.
pub const MSIX_CAP: usize = 0x40;
/// MSI-X table offset in BAR0 (where Turing keeps it).
pub const MSIX_TABLE: u32 = 0x00b9_0000;
/// MSI-X pending-bit array offset in BAR0.
pub const MSIX_PBA: u32 = 0x00ba_0000;

/// Builds the initial configuration space.
///
/// BAR0 is a 32-bit register aperture ([`BAR0_SIZE`]); BAR1 (with BAR2 as
/// its upper half) is the 64-bit prefetchable VRAM aperture. QEMU
/// virtualises the BAR registers and the MSI-X capability itself.
pub fn config_space() -> [u8; CONFIG_SIZE] {
    let mut c = [0u8; CONFIG_SIZE];
    c[0x00..0x02].copy_from_slice(&VENDOR_ID.to_le_bytes());
    c[0x02..0x04].copy_from_slice(&DEVICE_ID.to_le_bytes());
    c[0x06] = 0x10; // status: capabilities list
    c[0x08] = REVISION;
    c[0x09..0x0c].copy_from_slice(&CLASS_CODE.to_le_bytes()[..3]);
    c[0x10] = 0x00; // BAR0: memory, 32-bit, non-prefetchable
    c[0x14] = 0x0c; // BAR1: memory, 64-bit, prefetchable
    c[0x2c..0x2e].copy_from_slice(&VENDOR_ID.to_le_bytes());
    c[0x2e..0x30].copy_from_slice(&DEVICE_ID.to_le_bytes());
    c[0x34] = MSIX_CAP as u8;
    c[0x3d] = 1; // INTA#
    c[MSIX_CAP] = 0x11; // MSI-X
    c[MSIX_CAP + 1] = 0; // end of list
    c[MSIX_CAP + 2..MSIX_CAP + 4].copy_from_slice(&((MSIX_VECTORS - 1) as u16).to_le_bytes());
    c[MSIX_CAP + 4..MSIX_CAP + 8].copy_from_slice(&MSIX_TABLE.to_le_bytes()); // BIR 0
    c[MSIX_CAP + 8..MSIX_CAP + 12].copy_from_slice(&MSIX_PBA.to_le_bytes()); // BIR 0
    const _: () = assert!((MSIX_PBA as u64) < BAR0_SIZE);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_msix_capability() {
        let c = config_space();
        assert_eq!(u16::from_le_bytes([c[0], c[1]]), 0x5253);
        assert_eq!(u16::from_le_bytes([c[2], c[3]]), 0x564d);
        assert_eq!((c[0x0b], c[0x0a], c[0x09]), (0x03, 0x02, 0x00));
        assert_eq!(c[0x14] & 0x6, 0x4, "BAR1 is 64-bit");
        let cap = c[0x34] as usize;
        assert_eq!(c[cap], 0x11);
        let table = u32::from_le_bytes(c[cap + 4..cap + 8].try_into().unwrap());
        assert_eq!(table & 7, 0, "table in BAR0");
        assert_eq!(
            u16::from_le_bytes([c[cap + 2], c[cap + 3]]) & 0x7ff,
            0,
            "one vector"
        );
    }
}
