//! The device: register behaviour and interrupt state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::boot::Boot;
use crate::config::{encode_local_memory_range, Config, ConfigError};
use crate::dma::DmaMap;
use crate::fault::FaultUnit;
use crate::fifo::{Env, Events, Fifo};
use crate::irq::Msix;
use crate::mem::GpuMem;
use crate::mmu::{InvalidateRegs, Tlb};
use crate::regs::*;
use crate::vram::Vram;

/// Methods a channel runs before the scheduler looks at the others (and
/// before register accesses waiting for the lock get their turn).
const SCHED_BUDGET: u64 = 64;

/// Register state that a device reset clears.
struct State {
    /// `NV_PMC_INTR_EN(0)`.
    intr_en: u32,
    /// Non-stall interrupts pending (`NV_PMC_INTR(1)`, model: W1C).
    nonstall: u32,
    /// `NV_PMC_INTR_EN(1)`.
    nonstall_en: u32,
    fifo: Fifo,
    boot: Boot,
    faults: FaultUnit,
    tlb: Tlb,
    /// The device clock: modelled time in ns (see `timing`).
    clock_ns: u64,
    /// First access to an unimplemented register since the last clear:
    /// offset, and whether it was a write.
    pri_error: Option<(u64, bool)>,
    /// The MMU's register-path invalidate.
    inval: InvalidateRegs,
    /// Enabled interrupts already signalled and not yet cleared (tree 0 in
    /// the low word, tree 1 high): MSI-X is edge-triggered, so only a newly
    /// pending bit sends a message.
    signalled: u64,
    /// Software interrupt unit: pending.
    swintr: bool,
    scratch: [u32; NV_PBUS_SW_SCRATCH_COUNT as usize],
}

impl Default for State {
    fn default() -> Self {
        Self {
            intr_en: 0,
            nonstall: 0,
            nonstall_en: 0,
            fifo: Fifo::default(),
            boot: Boot::default(),
            faults: FaultUnit::default(),
            tlb: Tlb::default(),
            clock_ns: 0,
            pri_error: None,
            inval: InvalidateRegs::default(),
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
    /// Wakes the engine thread.
    work: Condvar,
    stop: AtomicBool,
    /// BAR0 accesses, for `RSVM_DEBUG_BAR0_*` (a driver's cost per fault).
    bar0_reads: AtomicU64,
    bar0_writes: AtomicU64,
    /// Host time spent running channels, for `RSVM_DEBUG_ENGINE_NS_*`.
    engine_ns: AtomicU64,
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
        let strict_tlb = config.strict_tlb;
        let local_memory_range =
            encode_local_memory_range(config.vram_size).map_err(NewError::Config)?;
        let vram = Vram::new(config.vram_size).map_err(NewError::Io)?;
        Ok(Self {
            config,
            local_memory_range,
            vram,
            dma: DmaMap::default(),
            msix: Msix::default(),
            state: Mutex::new(State {
                tlb: Tlb::new(strict_tlb),
                ..State::default()
            }),
            work: Condvar::new(),
            stop: AtomicBool::new(false),
            bar0_reads: AtomicU64::new(0),
            bar0_writes: AtomicU64::new(0),
            engine_ns: AtomicU64::new(0),
        })
    }

    /// The device clock: modelled engine time in ns.
    pub fn clock_ns(&self) -> u64 {
        self.lock().clock_ns
    }

    pub fn mem(&self) -> GpuMem<'_> {
        GpuMem {
            vram: &self.vram,
            dma: &self.dma,
        }
    }

    /// Runs every channel with work until none has any left (or all that
    /// have are blocked or faulted). Returns what happened.
    pub fn run_pending(&self) -> Events {
        let mut total = Events::default();
        loop {
            let mut st = self.lock();
            let pending: Vec<usize> = st.fifo.pending().collect();
            let mut progressed = false;
            for chid in pending {
                let st = &mut *st;
                let mem = self.mem();
                let mut env = Env {
                    mem: &mem,
                    tlb: &mut st.tlb,
                    faults: &mut st.faults,
                    timing: &self.config.timing,
                    now_ns: st.clock_ns,
                };
                let t0 = std::time::Instant::now();
                let ev = st.fifo.run(chid, &mut env, SCHED_BUDGET);
                self.engine_ns
                    .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                st.clock_ns = env.now_ns;
                progressed |= ev.methods > 0 || ev.instructions > 0;
                if ev.nonstall {
                    st.nonstall |= NONSTALL_HOST;
                }
                if ev.ce_nonstall || ev.stall {
                    st.nonstall |= NONSTALL_CE0;
                }
                if ev.compute_nonstall {
                    st.nonstall |= NONSTALL_COMPUTE;
                }
                total.instructions += ev.instructions;
                total.methods += ev.methods;
                total.faulted |= ev.faulted;
                total.error |= ev.error;
            }
            self.update_interrupt(&mut st);
            if !progressed {
                return total;
            }
        }
    }

    /// Starts the engine thread, which runs channels when doorbells ring.
    pub fn start_engines(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let gpu = self.clone();
        std::thread::Builder::new()
            .name("rsvm-engines".into())
            .spawn(move || {
                while !gpu.stop.load(Ordering::Acquire) {
                    gpu.run_pending();
                    let st = gpu.lock();
                    let blocked = st.fifo.channels.iter().any(|c| c.blocked);
                    let busy = st.fifo.pending().next().is_some();
                    if busy && !blocked {
                        continue;
                    }
                    // Blocked semaphore acquires are polled every 100 us.
                    let wait = if blocked {
                        Duration::from_micros(100)
                    } else {
                        Duration::from_secs(1)
                    };
                    drop(
                        gpu.work
                            .wait_timeout(st, wait)
                            .expect("device state poisoned"),
                    );
                }
            })
            .expect("cannot start the engine thread")
    }

    /// Stops the engine thread.
    pub fn stop_engines(&self) {
        self.stop.store(true, Ordering::Release);
        self.work.notify_all();
    }

    /// The configuration the device was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Device reset: registers and interrupt state go back to their reset
    /// values. VRAM contents survive, as on real hardware.
    pub fn reset(&self) {
        let mut st = self.lock();
        *st = State::default();
        st.tlb = Tlb::new(self.config.strict_tlb);
    }

    /// Channel state, for tests and diagnostics.
    pub fn with_fifo<R>(&self, f: impl FnOnce(&Fifo) -> R) -> R {
        f(&self.lock().fifo)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("device state poisoned")
    }

    fn pmc_intr(st: &State) -> u32 {
        let mut v = 0;
        if st.swintr {
            v |= PMC_INTR_SOFTWARE;
        }
        if st.fifo.interrupt() {
            v |= PMC_INTR_PFIFO;
        }
        if st.faults.interrupt() {
            v |= PMC_INTR_HUB;
        }
        if st.pri_error.is_some() {
            v |= PMC_INTR_PBUS;
        }
        v
    }

    /// Sends an MSI-X message for enabled interrupts that became pending.
    fn update_interrupt(&self, st: &mut State) {
        // Both trees share the vector: tree 0 in the low word, tree 1 high.
        let stall = Self::pmc_intr(st) & st.intr_en;
        let nonstall = st.nonstall & st.nonstall_en;
        let pending = u64::from(stall) | (u64::from(nonstall) << 32);
        let new = pending & !st.signalled;
        st.signalled = pending;
        if new != 0 && !self.msix.signal(0) {
            log::debug!("interrupt {new:#x} pending, but MSI-X is not set up");
        }
    }

    /// The debug counters' registers (not counted themselves).
    fn debug_counter(&self, offset: u64) -> Option<u32> {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Some(match offset {
            RSVM_DEBUG_BAR0_READS_LO => v(&self.bar0_reads) as u32,
            RSVM_DEBUG_BAR0_READS_HI => (v(&self.bar0_reads) >> 32) as u32,
            RSVM_DEBUG_BAR0_WRITES_LO => v(&self.bar0_writes) as u32,
            RSVM_DEBUG_BAR0_WRITES_HI => (v(&self.bar0_writes) >> 32) as u32,
            RSVM_DEBUG_ENGINE_NS_LO => v(&self.engine_ns) as u32,
            RSVM_DEBUG_ENGINE_NS_HI => (v(&self.engine_ns) >> 32) as u32,
            _ => return None,
        })
    }

    /// BAR0 reads and writes so far (`RSVM_DEBUG_BAR0_*`).
    pub fn bar0_accesses(&self) -> (u64, u64) {
        (
            self.bar0_reads.load(Ordering::Relaxed),
            self.bar0_writes.load(Ordering::Relaxed),
        )
    }

    /// A 32-bit BAR0 read.
    pub fn bar0_read(&self, offset: u64) -> u32 {
        if let Some(v) = self.debug_counter(offset) {
            return v;
        }
        self.bar0_reads.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        if let Some(v) = st.fifo.read(offset, st.clock_ns) {
            return v;
        }
        if let Some(v) = st.faults.read(offset) {
            return v;
        }
        if let Some(v) = st.boot.read(offset) {
            return v;
        }
        if let Some(v) = st.inval.read(offset) {
            return v;
        }
        match offset {
            NV_PMC_INTR_1 => st.nonstall,
            NV_PMC_INTR_EN_1 => st.nonstall_en,
            NV_PFB_PRI_MMU_CTRL => MMU_CTRL_PRI_FIFO_EMPTY | (0x10 << 16),
            _ => self.bar0_read_pmc(&mut st, offset),
        }
    }

    fn bar0_read_pmc(&self, st: &mut State, offset: u64) -> u32 {
        match offset {
            NV_PMC_BOOT_0 => BOOT_0_VALUE,
            NV_PMC_INTR_0 => Self::pmc_intr(st),
            NV_PMC_INTR_EN_0 => st.intr_en,
            NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE => self.local_memory_range,
            RSVM_SWINTR_STATUS => st.swintr as u32,
            o if (NV_PBUS_SW_SCRATCH..NV_PBUS_SW_SCRATCH + 4 * NV_PBUS_SW_SCRATCH_COUNT)
                .contains(&o) =>
            {
                st.scratch[((o - NV_PBUS_SW_SCRATCH) / 4) as usize]
            }
            NV_PTIMER_TIME_0 => (st.clock_ns as u32) & !0x1f,
            NV_PTIMER_TIME_1 => (st.clock_ns >> 32) as u32,
            RSVM_PRI_ERROR_ADDR => st
                .pri_error
                .map_or(0, |(a, w)| a as u32 | (u32::from(w) << 31)),
            RSVM_PRI_ERROR_STATUS => u32::from(st.pri_error.is_some()),
            _ => {
                log::warn!("BAR0 read of unimplemented register {offset:#x}");
                st.pri_error.get_or_insert((offset, false));
                self.update_interrupt(st);
                PRI_ERROR
            }
        }
    }

    /// A 32-bit BAR0 write.
    pub fn bar0_write(&self, offset: u64, value: u32) {
        if offset == RSVM_DEBUG_DUMP {
            let st = self.lock();
            st.fifo.dump(&self.mem(), &st.tlb);
            return;
        }
        if self.debug_counter(offset).is_some() {
            self.bar0_reads.store(0, Ordering::Relaxed);
            self.bar0_writes.store(0, Ordering::Relaxed);
            self.engine_ns.store(0, Ordering::Relaxed);
            return;
        }
        self.bar0_writes.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        let mem = self.mem();
        if let Some(kick) = st.fifo.write(offset, value, &mem) {
            self.update_interrupt(&mut st);
            if kick {
                self.work.notify_all();
            }
            return;
        }
        if st.faults.write(offset, value) {
            self.update_interrupt(&mut st);
            return;
        }
        if st.boot.write(offset, value, &mem) {
            st.fifo.engines = st.boot.engines();
            self.work.notify_all();
            return;
        }
        if let Some(triggered) = st.inval.write(offset, value) {
            if let Some(inv) = triggered {
                st.tlb.invalidate(inv.scope);
                // REPLAY: replay or cancel stalled accesses.
                if inv.replay != 0 {
                    let mem = self.mem();
                    if let Err(e) = st.fifo.replay(inv.replay, inv.va, 7, inv.replay_pdb, &mem) {
                        log::warn!("MMU_INVALIDATE: bad REPLAY value ({e:?})");
                    }
                    self.work.notify_all();
                }
            }
            self.update_interrupt(&mut st);
            return;
        }
        match offset {
            NV_PMC_INTR_1 => st.nonstall &= !value,
            NV_PMC_INTR_EN_SET_1 => st.nonstall_en |= value,
            NV_PMC_INTR_EN_CLEAR_1 => st.nonstall_en &= !value,
            _ => self.bar0_write_pmc(&mut st, offset, value),
        }
        self.update_interrupt(&mut st);
    }

    fn bar0_write_pmc(&self, st: &mut State, offset: u64, value: u32) {
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
            RSVM_PRI_ERROR_STATUS => {
                if value & 1 != 0 {
                    st.pri_error = None;
                }
            }
            _ => {
                log::warn!("BAR0 write of {value:#x} to unimplemented register {offset:#x}");
                st.pri_error.get_or_insert((offset, true));
            }
        }
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
            ..Default::default()
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
                vram_size: 100 << 10,
                ..Default::default()
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
    fn unimplemented_registers_raise_a_pri_error() {
        let g = gpu(16);
        assert_eq!(g.bar0_read(0x1234), PRI_ERROR);
        assert_eq!(g.bar0_read(NV_PBUS_SW_SCRATCH + 4 * 64), PRI_ERROR);
        assert!(g.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PBUS != 0);
        assert_eq!(
            g.bar0_read(RSVM_PRI_ERROR_ADDR),
            0x1234,
            "the first one is kept"
        );
        g.bar0_write(RSVM_PRI_ERROR_STATUS, 1);
        assert_eq!(g.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PBUS, 0);
        g.bar0_write(0x4321 << 4, 5);
        assert_eq!(
            g.bar0_read(RSVM_PRI_ERROR_ADDR),
            (0x4321 << 4) | (1 << 31),
            "a write"
        );
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
