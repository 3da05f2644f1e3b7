//! The device: register behaviour and interrupt state.

use std::sync::Mutex;

use crate::config::{encode_local_memory_range, Config, ConfigError};
use crate::dma::DmaMap;
use crate::irq::Msix;
use crate::regs::*;
use crate::vram::Vram;

/// Register state that a device reset clears.
struct State {
    /// `NV_PMC_INTR_EN(0)`.
    intr_en: u32,
    /// Enabled interrupts already signalled and not yet cleared: MSI-X is
    /// edge-triggered, so only a newly pending bit sends a message.
    signalled: u32,
    /// Software interrupt unit: pending.
    swintr: bool,
    scratch: [u32; NV_PBUS_SW_SCRATCH_COUNT as usize],
}

impl Default for State {
    fn default() -> Self {
        Self {
            intr_en: 0,
            signalled: 0,
            swintr: false,
            scratch: [0; NV_PBUS_SW_SCRATCH_COUNT as usize],
        }
    }
}

/// The GPU.
pub struct Gpu {
    config: Config,
    local_memory_range: u32,
    pub vram: Vram,
    pub dma: DmaMap,
    pub msix: Msix,
    state: Mutex<State>,
}

/// An error creating the device.
#[derive(Debug)]
pub enum NewError {
    Config(ConfigError),
    Io(std::io::Error),
}

impl std::fmt::Display for NewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Io(e) => write!(f, "cannot allocate VRAM: {e}"),
        }
    }
}

impl std::error::Error for NewError {}

impl Gpu {
    /// Creates a device in its reset state.
    pub fn new(config: Config) -> Result<Self, NewError> {
        let local_memory_range =
            encode_local_memory_range(config.vram_size).map_err(NewError::Config)?;
        let vram = Vram::new(config.vram_size).map_err(NewError::Io)?;
        Ok(Self {
            config,
            local_memory_range,
            vram,
            dma: DmaMap::default(),
            msix: Msix::default(),
            state: Mutex::new(State::default()),
        })
    }

    /// The configuration the device was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Device reset: registers and interrupt state go back to their reset
    /// values. VRAM contents survive, as on real hardware.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("device state poisoned")
    }

    fn pmc_intr(st: &State) -> u32 {
        if st.swintr {
            PMC_INTR_SOFTWARE
        } else {
            0
        }
    }

    /// Sends an MSI-X message for enabled interrupts that became pending.
    fn update_interrupt(&self, st: &mut State) {
        let pending = Self::pmc_intr(st) & st.intr_en;
        let new = pending & !st.signalled;
        st.signalled = pending;
        if new != 0 && !self.msix.signal(0) {
            log::debug!("interrupt {new:#x} pending, but MSI-X is not set up");
        }
    }

    /// A 32-bit BAR0 read.
    pub fn bar0_read(&self, offset: u64) -> u32 {
        let st = self.lock();
        match offset {
            NV_PMC_BOOT_0 => BOOT_0_VALUE,
            NV_PMC_INTR_0 => Self::pmc_intr(&st),
            NV_PMC_INTR_EN_0 => st.intr_en,
            NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE => self.local_memory_range,
            RSVM_SWINTR_STATUS => st.swintr as u32,
            o if (NV_PBUS_SW_SCRATCH..NV_PBUS_SW_SCRATCH + 4 * NV_PBUS_SW_SCRATCH_COUNT)
                .contains(&o) =>
            {
                st.scratch[((o - NV_PBUS_SW_SCRATCH) / 4) as usize]
            }
            _ => {
                log::warn!("BAR0 read of unimplemented register {offset:#x}");
                PRI_ERROR
            }
        }
    }

    /// A 32-bit BAR0 write.
    pub fn bar0_write(&self, offset: u64, value: u32) {
        let mut st = self.lock();
        match offset {
            NV_PMC_INTR_EN_SET_0 => st.intr_en |= value,
            NV_PMC_INTR_EN_CLEAR_0 => st.intr_en &= !value,
            RSVM_SWINTR_TRIGGER => {
                if value & 1 != 0 {
                    st.swintr = true;
                }
            }
            RSVM_SWINTR_STATUS => {
                if value & 1 != 0 {
                    st.swintr = false;
                }
            }
            o if (NV_PBUS_SW_SCRATCH..NV_PBUS_SW_SCRATCH + 4 * NV_PBUS_SW_SCRATCH_COUNT)
                .contains(&o) =>
            {
                st.scratch[((o - NV_PBUS_SW_SCRATCH) / 4) as usize] = value;
            }
            _ => log::warn!("BAR0 write of {value:#x} to unimplemented register {offset:#x}"),
        }
        self.update_interrupt(&mut st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    fn gpu(mib: u64) -> Gpu {
        Gpu::new(Config {
            vram_size: mib << 20,
        })
        .unwrap()
    }

    fn eventfd() -> (File, File) {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
        assert!(fd >= 0);
        // SAFETY: `fd` is ours; `dup` gives a second handle on the same counter.
        unsafe { (File::from_raw_fd(fd), File::from_raw_fd(libc::dup(fd))) }
    }

    fn count(f: &mut File) -> u64 {
        let mut b = [0u8; 8];
        match f.read(&mut b) {
            Ok(8) => u64::from_le_bytes(b),
            _ => 0,
        }
    }

    #[test]
    fn identity_and_memory_size() {
        let g = gpu(384);
        assert_eq!(g.bar0_read(NV_PMC_BOOT_0) >> 24, 0x1f);
        let r = g.bar0_read(NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE);
        assert_eq!(u64::from((r >> 4) & 0x3f) << ((r & 0xf) + 20), 384 << 20);
    }

    #[test]
    fn unencodable_vram_is_refused() {
        assert!(matches!(
            Gpu::new(Config {
                vram_size: 100 << 10
            }),
            Err(NewError::Config(_))
        ));
    }

    #[test]
    fn scratch_registers_and_reset() {
        let g = gpu(16);
        g.bar0_write(NV_PBUS_SW_SCRATCH + 4 * 63, 0xdead_beef);
        assert_eq!(g.bar0_read(NV_PBUS_SW_SCRATCH + 4 * 63), 0xdead_beef);
        assert_eq!(g.bar0_read(NV_PBUS_SW_SCRATCH), 0);
        g.reset();
        assert_eq!(g.bar0_read(NV_PBUS_SW_SCRATCH + 4 * 63), 0);
    }

    #[test]
    fn unimplemented_registers_read_as_pri_error() {
        let g = gpu(16);
        assert_eq!(g.bar0_read(0x1234), PRI_ERROR);
        assert_eq!(g.bar0_read(NV_PBUS_SW_SCRATCH + 4 * 64), PRI_ERROR);
    }

    #[test]
    fn software_interrupt_is_masked_until_enabled() {
        let g = gpu(16);
        let (tx, mut rx) = eventfd();
        g.msix.set(0, [Some(tx)]);

        g.bar0_write(RSVM_SWINTR_TRIGGER, 1);
        assert_eq!(g.bar0_read(NV_PMC_INTR_0), PMC_INTR_SOFTWARE);
        assert_eq!(count(&mut rx), 0, "disabled: no message");

        g.bar0_write(NV_PMC_INTR_EN_SET_0, PMC_INTR_SOFTWARE);
        assert_eq!(count(&mut rx), 1, "enabling a pending interrupt sends it");

        g.bar0_write(RSVM_SWINTR_TRIGGER, 1);
        assert_eq!(count(&mut rx), 0, "still pending: edge, no new message");

        g.bar0_write(RSVM_SWINTR_STATUS, 1);
        assert_eq!(g.bar0_read(NV_PMC_INTR_0), 0);
        g.bar0_write(RSVM_SWINTR_TRIGGER, 1);
        assert_eq!(count(&mut rx), 1, "cleared then raised: new message");

        g.bar0_write(NV_PMC_INTR_EN_CLEAR_0, u32::MAX);
        assert_eq!(g.bar0_read(NV_PMC_INTR_EN_0), 0);
    }
}
