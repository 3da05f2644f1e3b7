// SPDX-License-Identifier: GPL-2.0

//! Firmware: the device runs no engine until it has accepted a firmware
//! image. The driver loads the image with `request_firmware`, checks its
//! structure, hands it to the device by DMA and waits for the verdict.
//!
//! The container format is specified in `firmware/src/lib.rs` and
//! `Documentation/gpu/rsvm/hardware.rst`: a 24-byte header (magic, format
//! version, header size, total size, CRC-32, record count) and TLV records.
//! The device verifies the checksum; the driver checks the structure and the
//! records it needs itself.

use kernel::{
    device::Bound,
    dma::Coherent,
    firmware::{
        self,
        Firmware, //
    },
    io::{
        poll::read_poll_timeout,
        Io, //
    },
    pci,
    prelude::*,
    time::Delta, //
};

use crate::{
    hw::Bar0,
    regs, //
};

/// The image the driver requests, as `modinfo` declares it.
const FIRMWARE_PATH: &str = "rsvm/gv100-model.bin";
/// The same, for `request_firmware`.
pub(crate) const FIRMWARE_NAME: &CStr = c"rsvm/gv100-model.bin";
const _: () = assert!(bytes_eq(FIRMWARE_NAME.to_bytes(), FIRMWARE_PATH.as_bytes()));

/// Whether two byte strings are equal, at compile time.
const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The `firmware=` entries of `modinfo` (`MODULE_FIRMWARE`), so that
/// `modinfo` and initramfs tools know what the driver loads.
pub(crate) struct ModInfo<const N: usize>;

impl<const N: usize> ModInfo<N> {
    pub(crate) const fn create(module_name: &'static CStr) -> firmware::ModInfoBuilder<N> {
        firmware::ModInfoBuilder::new(module_name)
            .new_entry()
            .push(FIRMWARE_PATH)
    }
}

const MAGIC: [u8; 8] = *b"RSVMFW\0\x01";
const FORMAT_VERSION: u16 = 1;
const HEADER_SIZE: usize = 24;
const TAG_CHIP: u32 = 1;
const TAG_VERSION: u32 = 2;

/// What the driver needs from an image.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ImageInfo {
    /// Architecture the image is for.
    pub(crate) chip: u32,
    /// `major << 16 | minor`.
    pub(crate) version: u32,
}

fn le32(b: &[u8], at: usize) -> Result<u32> {
    let end = at.checked_add(4).ok_or(EINVAL)?;
    let s = b.get(at..end).ok_or(EINVAL)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Checks the container's structure and reads its chip and version.
pub(crate) fn parse(b: &[u8]) -> Result<ImageInfo> {
    if b.len() < HEADER_SIZE || b[0..8] != MAGIC {
        return Err(EINVAL);
    }
    let format = le32(b, 8)?;
    if format & 0xffff != u32::from(FORMAT_VERSION) || (format >> 16) as usize != HEADER_SIZE {
        return Err(EINVAL);
    }
    let total = le32(b, 12)? as usize;
    if total != b.len() || total % 4 != 0 {
        return Err(EINVAL);
    }
    let (mut chip, mut version) = (None, None);
    let mut at = HEADER_SIZE;
    for _ in 0..le32(b, 20)? {
        let tag = le32(b, at)?;
        let len = le32(b, at + 4)? as usize;
        let value = at.checked_add(8).ok_or(EINVAL)?;
        let next = value.checked_add(len).ok_or(EINVAL)?;
        if next > total {
            return Err(EINVAL);
        }
        match tag {
            TAG_CHIP if len == 4 => chip = Some(le32(b, value)?),
            TAG_VERSION if len == 4 => version = Some(le32(b, value)?),
            _ => {}
        }
        // OVERFLOW: `next <= total`, which is at most `isize::MAX`.
        at = (next + 3) & !3;
    }
    if at != total {
        return Err(EINVAL);
    }
    Ok(ImageInfo {
        chip: chip.ok_or(EINVAL)?,
        // The record is u16 major, u16 minor.
        version: version
            .map(|v| ((v & 0xffff) << 16) | (v >> 16))
            .ok_or(EINVAL)?,
    })
}

/// Boots the device's firmware; returns its version (`major << 16 | minor`).
pub(crate) fn boot(pdev: &pci::Device<Bound>, bar: &Bar0<'_>, arch: u32) -> Result<u32> {
    let status = bar.read(regs::RSVM_FW_MAILBOX0).into_raw();
    if status == regs::FW_STATUS_RUNNING {
        // Booted by an earlier probe: the device keeps running it.
        return Ok(bar.read(regs::RSVM_FW_MAILBOX1).into_raw());
    }

    let fw = Firmware::request(FIRMWARE_NAME, pdev.as_ref())
        .inspect_err(|e| dev_err!(pdev, "cannot load firmware {}: {:?}\n", FIRMWARE_NAME, e))?;
    let info = parse(fw.data())
        .inspect_err(|_| dev_err!(pdev, "firmware {}: malformed image\n", FIRMWARE_NAME))?;
    if info.chip != arch {
        dev_err!(
            pdev,
            "firmware is for architecture {:#x}, not {:#x}\n",
            info.chip,
            arch
        );
        return Err(ENODEV);
    }

    let image = Coherent::from_slice(pdev.as_ref(), fw.data(), GFP_KERNEL)?;
    let addr = image.dma_address();
    let size = u32::try_from(fw.data().len())?;
    bar.write_reg(regs::RSVM_FW_DMA_BASE_LO::from(addr as u32));
    bar.write_reg(regs::RSVM_FW_DMA_BASE_HI::from((addr >> 32) as u32));
    bar.write_reg(regs::RSVM_FW_DMA_SIZE::from(size));
    bar.write_reg(regs::RSVM_FW_CPUCTL::zeroed().with_startcpu(true));

    // The device fetches the image before it reports anything, so `image`
    // may go once the status is there.
    let status = read_poll_timeout(
        || Ok(bar.read(regs::RSVM_FW_MAILBOX0).into_raw()),
        |&s| s != 0,
        Delta::from_millis(1),
        Delta::from_secs(2),
    )
    .inspect_err(|_| dev_err!(pdev, "firmware: no answer from the device\n"))?;
    drop(image);
    if status != regs::FW_STATUS_RUNNING {
        dev_err!(
            pdev,
            "firmware refused by the device (error {})\n",
            status & 0xff
        );
        return Err(ENODEV);
    }
    let version = bar.read(regs::RSVM_FW_MAILBOX1).into_raw();
    if version != info.version {
        dev_err!(
            pdev,
            "firmware reports version {:#x}, image says {:#x}\n",
            version,
            info.version
        );
        return Err(ENODEV);
    }
    dev_info!(
        pdev,
        "firmware {}.{} running\n",
        version >> 16,
        version & 0xffff
    );
    Ok(version)
}
