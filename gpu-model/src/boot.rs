//! Firmware boot: the device runs no engine until the driver has uploaded a
//! firmware image it accepts (see the `rsvm-firmware` crate for the format).
//!
//! Model-private registers, laid out after nova-core's falcon blocks
//! (mailboxes at +0x40/+0x44, CPU control at +0x100, DMA at +0x110):
//!
//! | offset   | register | meaning |
//! |----------|----------|---------|
//! | 0x840040 | MAILBOX0 | boot status: 0 not booted, 1 running, `0x8000_0000 \| error` refused |
//! | 0x840044 | MAILBOX1 | firmware version (`major << 16 \| minor`) once running |
//! | 0x840100 | CPUCTL   | write bit 1 (STARTCPU): fetch the image by DMA, check it, boot |
//! | 0x840110 | DMA_BASE_LO | guest-physical address of the image, bits 31:0 |
//! | 0x840114 | DMA_BASE_HI | bits 63:32 |
//! | 0x840118 | DMA_SIZE | image size in bytes |
//! | 0x84011c | ENGINES  | engines the running firmware enabled (read-only) |

use rsvm_firmware::{parse, Error, Image, ARCH_RSVM_MODEL, MAX_SIZE};

use crate::mem::{PhysAddr, PhysMem};

pub const MAILBOX0: u64 = 0x84_0040;
pub const MAILBOX1: u64 = 0x84_0044;
pub const CPUCTL: u64 = 0x84_0100;
pub const DMA_BASE_LO: u64 = 0x84_0110;
pub const DMA_BASE_HI: u64 = 0x84_0114;
pub const DMA_SIZE: u64 = 0x84_0118;
pub const ENGINES: u64 = 0x84_011c;

pub const CPUCTL_STARTCPU: u32 = 1 << 1;
pub const STATUS_RUNNING: u32 = 1;
pub const STATUS_ERROR: u32 = 1 << 31;

/// The boot unit.
#[derive(Default)]
pub struct Boot {
    base: u64,
    size: u32,
    status: u32,
    image: Option<Image>,
}

impl Boot {
    /// Engines the running firmware enabled (0 before boot).
    pub fn engines(&self) -> u32 {
        self.image.as_ref().map_or(0, |i| i.engines)
    }

    pub fn read(&self, off: u64) -> Option<u32> {
        Some(match off {
            MAILBOX0 => self.status,
            MAILBOX1 => self.image.as_ref().map_or(0, |i| {
                (u32::from(i.version.0) << 16) | u32::from(i.version.1)
            }),
            DMA_BASE_LO => self.base as u32,
            DMA_BASE_HI => (self.base >> 32) as u32,
            DMA_SIZE => self.size,
            ENGINES => self.engines(),
            CPUCTL => u32::from(self.image.is_some()) << 4, // HALTED clear once running
            _ => return None,
        })
    }

    pub fn write(&mut self, off: u64, v: u32, mem: &dyn PhysMem) -> bool {
        match off {
            DMA_BASE_LO => self.base = (self.base & !0xffff_ffff) | u64::from(v),
            DMA_BASE_HI => self.base = (self.base & 0xffff_ffff) | (u64::from(v) << 32),
            DMA_SIZE => self.size = v,
            CPUCTL if v & CPUCTL_STARTCPU != 0 => self.start(mem),
            CPUCTL | MAILBOX0 | MAILBOX1 | ENGINES => {}
            _ => return false,
        }
        true
    }

    fn start(&mut self, mem: &dyn PhysMem) {
        if self.image.is_some() {
            log::warn!("firmware: already running; STARTCPU ignored");
            return;
        }
        let result = (|| {
            let size = self.size as usize;
            if size > MAX_SIZE {
                return Err(Error::BadSize);
            }
            let mut buf = vec![0u8; size];
            mem.read(PhysAddr::sys(self.base), &mut buf)
                .map_err(|_| Error::Unreachable)?;
            parse(&buf, ARCH_RSVM_MODEL)
        })();
        match result {
            Ok(img) => {
                log::info!(
                    "firmware {}.{} \"{}\" running, engines {:#x}",
                    img.version.0,
                    img.version.1,
                    img.name,
                    img.engines
                );
                self.status = STATUS_RUNNING;
                self.image = Some(img);
            }
            Err(e) => {
                log::warn!("firmware refused: {e:?}");
                self.status = STATUS_ERROR | e as u32;
            }
        }
    }
}
