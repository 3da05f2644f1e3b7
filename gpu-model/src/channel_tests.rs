//! Channels driven through BAR0 exactly as a driver drives them: instance
//! block, runlist, PCCSR, GPFIFO, USERD, doorbell, and the copy engine.

use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;

use crate::boot;
use crate::ce::{self, launch::*};
use crate::config::Config;
use crate::device::Gpu;
use crate::fault::{self, *};
use crate::fifo::{self, *};
use crate::mem::{PhysAddr, PhysMem};
use crate::mmu::builder::PageTables;
use crate::mmu::encode::{pte, Flags};
use crate::mmu::{SZ_4K, SZ_64K};
use crate::regs::*;
use crate::timing::Traffic;
use crate::vram::Vram;

const GPFIFO_VA: u64 = 0x100_0000;
const PB_VA: u64 = 0x200_0000;
const DATA_VA: u64 = 0x300_0000; // sysmem 0x40_0000, 16 pages
const VID_VA: u64 = 0x400_0000; // VRAM 0x80_0000, 2 big pages
const SEM_VA: u64 = 0x500_0000; // sysmem 0x50_0000
const CE_SUBCH: u32 = 4;
const GR_SUBCH: u32 = 1;
const CODE_VA: u64 = 0x600_0000; // sysmem 0x90_0000, 4 pages
const STACK_VA: u64 = 0x610_0000; // sysmem 0xa0_0000, 16 pages
const HOLE_VA: u64 = 0x800_0000; // unmapped until a test maps it

/// A 32 MiB device and 32 MiB of "guest RAM" mapped for its DMA at 0.
fn fresh_gpu() -> (Gpu, Vram) {
    let gpu = Gpu::new(Config {
        vram_size: 32 << 20,
        ..Default::default()
    })
    .unwrap();
    let ram = Vram::new(32 << 20).unwrap();
    gpu.dma.map(0, 32 << 20, ram.file(), 0).unwrap();
    (gpu, ram)
}

/// Uploads a firmware image the way the driver does: into guest memory,
/// then DMA base/size and STARTCPU.
fn boot(gpu: &Gpu, image: &[u8]) {
    gpu.mem().write(PhysAddr::sys(0xf0_0000), image).unwrap();
    gpu.bar0_write(boot::DMA_BASE_LO, 0xf0_0000);
    gpu.bar0_write(boot::DMA_BASE_HI, 0);
    gpu.bar0_write(boot::DMA_SIZE, image.len() as u32);
    gpu.bar0_write(boot::CPUCTL, boot::CPUCTL_STARTCPU);
}

struct Rig {
    gpu: Gpu,
    _ram: Vram,
    pt: PageTables,
    chans: Vec<Chan>,
}

struct Chan {
    chid: u32,
    userd: PhysAddr,
    gpfifo: PhysAddr,
    pb: PhysAddr,
    put: u32,
    pb_off: u64,
}

fn hdr(kind: u32, subch: u32, mthd: u32, count: u32) -> u32 {
    (kind << 29) | (count << 16) | (subch << 13) | (mthd >> 2)
}

/// An incrementing method header followed by its data.
fn inc(subch: u32, mthd: u32, data: &[u32]) -> Vec<u32> {
    let mut v = vec![hdr(1, subch, mthd, data.len() as u32)];
    v.extend_from_slice(data);
    v
}

fn m(subch: u32, mthd: u32, data: u32) -> Vec<u32> {
    inc(subch, mthd, &[data])
}

impl Rig {
    /// A device with `nchan` channels set up and the shipped firmware booted.
    fn new(nchan: u32) -> Self {
        let r = Self::unbooted(nchan);
        boot(
            &r.gpu,
            &rsvm_firmware::build(&rsvm_firmware::default_image()),
        );
        assert_eq!(r.gpu.bar0_read(boot::MAILBOX0), boot::STATUS_RUNNING);
        r
    }

    /// The same, with no firmware uploaded yet.
    fn unbooted(nchan: u32) -> Self {
        let (gpu, ram) = fresh_gpu();
        let pt = PageTables::new(0x10_0000);
        {
            let mem = gpu.mem();
            pt.map(
                &mem,
                DATA_VA,
                PhysAddr::sys(0x40_0000),
                16 * SZ_4K,
                SZ_4K,
                Flags::default(),
            );
            pt.map(
                &mem,
                VID_VA,
                PhysAddr::vid(0x80_0000),
                2 * SZ_64K,
                SZ_64K,
                Flags::default(),
            );
            pt.map(
                &mem,
                SEM_VA,
                PhysAddr::sys(0x50_0000),
                SZ_4K,
                SZ_4K,
                Flags::default(),
            );
            let f = Flags::default();
            pt.map(&mem, CODE_VA, PhysAddr::sys(0x90_0000), 4 * SZ_4K, SZ_4K, f);
            pt.map(
                &mem,
                STACK_VA,
                PhysAddr::sys(0xa0_0000),
                16 * SZ_4K,
                SZ_4K,
                f,
            );
        }
        let mut r = Rig {
            gpu,
            _ram: ram,
            pt,
            chans: vec![],
        };
        for i in 0..nchan {
            r.add_channel(i, 3 + i);
        }
        r.commit_runlist();
        r
    }

    fn w(&self, at: PhysAddr, v: u32) {
        self.gpu.mem().write_u32(at, v).unwrap();
    }

    fn r32(&self, at: PhysAddr) -> u32 {
        self.gpu.mem().read_u32(at).unwrap()
    }

    fn add_channel(&mut self, idx: u32, chid: u32) {
        let inst = PhysAddr::vid(0x1000 * (1 + u64::from(idx)));
        let userd = PhysAddr::sys(0x1000 + 0x200 * u64::from(idx));
        let gpfifo = PhysAddr::sys(0x20_0000 + 0x1000 * u64::from(idx));
        let pb = PhysAddr::sys(0x30_0000 + 0x1_0000 * u64::from(idx));
        let gva = GPFIFO_VA + 0x1000 * u64::from(idx);
        let pva = PB_VA + 0x1_0000 * u64::from(idx);
        {
            let mem = self.gpu.mem();
            self.pt
                .map(&mem, gva, gpfifo, SZ_4K, SZ_4K, Flags::default());
            self.pt
                .map(&mem, pva, pb, 16 * SZ_4K, SZ_4K, Flags::default());
        }
        // PDB: VID target, replayable faults (TEX, GCC), VER2, 64K big pages.
        let pdb = self.pt.pdb.0.addr as u32;
        self.w(inst.offset(0x200), pdb | (3 << 4) | (1 << 10) | (1 << 11));
        self.w(inst.offset(0x204), 0);
        // RAMFC GP_BASE: 16 entries.
        self.w(inst.offset(0x48), gva as u32);
        self.w(inst.offset(0x4c), (gva >> 32) as u32 | (4 << 16));
        self.gpu.bar0_write(
            PCCSR_CHANNEL_INST + 8 * u64::from(chid),
            (1 << 31) | (inst.addr >> 12) as u32,
        );
        self.gpu
            .bar0_write(PCCSR_CHANNEL + 8 * u64::from(chid), 1 << 10);
        self.chans.push(Chan {
            chid,
            userd,
            gpfifo,
            pb,
            put: 0,
            pb_off: 0,
        });
    }

    fn commit_runlist(&self) {
        let base = PhysAddr::sys(0x2000);
        for (i, c) in self.chans.iter().enumerate() {
            let e = base.offset(16 * i as u64);
            self.w(e, (2 << 6) | c.userd.addr as u32);
            self.w(e.offset(4), 0);
            let inst = 0x1000 * (1 + i as u32);
            self.w(e.offset(8), c.chid | inst);
            self.w(e.offset(12), 0);
        }
        self.gpu
            .bar0_write(fifo::RUNLIST_BASE, (2 << 28) | (0x2000 >> 12));
        self.gpu.bar0_write(fifo::RUNLIST, self.chans.len() as u32);
    }

    /// Writes a pushbuffer segment and a GPFIFO entry for it, rings the
    /// doorbell and lets the engines run.
    fn submit(&mut self, ch: usize, dwords: &[u32]) {
        self.queue(ch, dwords);
        self.kick(ch);
    }

    /// Rings channel `ch`'s doorbell and runs the engines.
    fn kick(&self, ch: usize) {
        self.gpu
            .bar0_write(NOTIFY_CHANNEL_PENDING, self.chans[ch].chid);
        self.gpu.run_pending();
    }

    /// Writes a segment and its GPFIFO entry and moves GP_PUT.
    fn queue(&mut self, ch: usize, dwords: &[u32]) {
        let c = &self.chans[ch];
        let mem = self.gpu.mem();
        let pb_off = c.pb_off;
        for (i, d) in dwords.iter().enumerate() {
            mem.write_u32(c.pb.offset(pb_off + 4 * i as u64), *d)
                .unwrap();
        }
        let va = PB_VA + 0x1_0000 * ch as u64 + pb_off;
        let e = c.gpfifo.offset(8 * u64::from(c.put));
        mem.write_u32(e, va as u32).unwrap();
        mem.write_u32(
            e.offset(4),
            ((va >> 32) as u32) | ((dwords.len() as u32) << 10),
        )
        .unwrap();
        let userd = c.userd;
        let c = &mut self.chans[ch];
        c.put = (c.put + 1) % 16;
        c.pb_off += 4 * dwords.len() as u64;
        let put = c.put;
        mem.write_u32(userd.offset(0x8c), put).unwrap();
    }

    fn pccsr(&self, ch: usize) -> u32 {
        self.gpu
            .bar0_read(PCCSR_CHANNEL + 8 * u64::from(self.chans[ch].chid))
    }

    fn gp_get(&self, ch: usize) -> u32 {
        self.r32(self.chans[ch].userd.offset(0x88))
    }
}

fn copy_methods(src: u64, dst: u64, len: u32) -> Vec<u32> {
    let mut v = m(CE_SUBCH, 0, ce::CLASS);
    v.extend(inc(
        CE_SUBCH,
        ce::mthd::OFFSET_IN_UPPER,
        &[
            (src >> 32) as u32,
            src as u32,
            (dst >> 32) as u32,
            dst as u32,
        ],
    ));
    v.extend(m(CE_SUBCH, ce::mthd::LINE_LENGTH_IN, len));
    v.extend(m(
        CE_SUBCH,
        ce::mthd::LAUNCH_DMA,
        TRANSFER_NON_PIPELINED | FLUSH_ENABLE | SRC_PITCH | DST_PITCH,
    ));
    v
}

fn sem_release(payload: u32) -> Vec<u32> {
    let mut v = inc(
        0,
        fifo::mthd::SEM_ADDR_LO,
        &[SEM_VA as u32, (SEM_VA >> 32) as u32, payload, 0],
    );
    v.extend(m(0, fifo::mthd::SEM_EXECUTE, 1)); // RELEASE, 32-bit
    v
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn copy_semaphore_and_nonstall_interrupt_through_a_channel() {
    let mut r = Rig::new(1);
    // SAFETY: plain syscall; checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
    assert!(fd >= 0);
    // SAFETY: `fd` is ours; the dup shares the counter.
    let (tx, mut rx) = unsafe { (File::from_raw_fd(fd), File::from_raw_fd(libc::dup(fd))) };
    r.gpu.msix.set(0, [Some(tx)]);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_1, NONSTALL_HOST);

    let data = pattern(3 * 4096 + 100);
    r.gpu.mem().write(PhysAddr::sys(0x40_0000), &data).unwrap();
    let mut pb = copy_methods(DATA_VA, VID_VA + 0x8000, data.len() as u32);
    pb.extend(sem_release(0x1234));
    pb.extend(m(0, fifo::mthd::NON_STALL_INTERRUPT, 0));
    r.submit(0, &pb);

    let mut out = vec![0; data.len()];
    r.gpu
        .mem()
        .read(PhysAddr::vid(0x80_8000), &mut out)
        .unwrap();
    assert_eq!(out, data);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 0x1234);
    assert_eq!(r.gp_get(0), 1, "GP_GET written back to USERD");
    assert_eq!(
        r.gpu.bar0_read(NV_PMC_INTR_1) & NONSTALL_HOST,
        NONSTALL_HOST
    );
    let mut b = [0u8; 8];
    assert_eq!(rx.read(&mut b).unwrap(), 8, "MSI-X sent");
    r.gpu.bar0_write(NV_PMC_INTR_1, NONSTALL_HOST);
    assert_eq!(r.gpu.bar0_read(NV_PMC_INTR_1), 0);
}

#[test]
fn copy_engine_fault_switches_the_channel_out_until_cleared() {
    let mut r = Rig::new(1);
    // Non-replayable buffer in sysmem at 0x60_0000, 8 entries.
    let b0 = fault::FAULT_BUFFER_LO;
    r.fault_buffer(fault::NON_REPLAYABLE, 8);
    r.gpu
        .bar0_write(fault::NISO_INTR_EN_SET, NISO_NON_REPLAYABLE_NOTIFY);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_0, PMC_INTR_HUB);

    let data = pattern(8192);
    r.gpu.mem().write(PhysAddr::sys(0x40_0000), &data).unwrap();
    // Destination 0x700_0000 is not mapped yet.
    let mut pb = copy_methods(DATA_VA, 0x700_0000, 8192);
    pb.extend(sem_release(7));
    r.submit(0, &pb);

    assert!(r.pccsr(0) & (1 << 23) != 0, "ENG_FAULTED");
    assert_eq!(
        r.r32(PhysAddr::sys(0x50_0000)),
        0,
        "the release after the copy has not run"
    );
    assert!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_HUB != 0);
    assert_eq!(r.gpu.bar0_read(b0 + 12), 1, "one entry");
    let mut pkt = [0u8; 32];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x60_0000), &mut pkt)
        .unwrap();
    let dw = |i: usize| u32::from_le_bytes(pkt[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(dw(0) & 0xffff_f000, 0x1000, "instance block");
    assert_eq!((dw(2), dw(3)), (0x700_0000, 0));
    assert_eq!(dw(6), u32::from(fault::engine::CE0));
    let info = dw(7);
    assert_eq!(info & 0x1f, 0, "PDE: nothing maps that 2 MiB region yet");
    assert_eq!((info >> 16) & 0xf, 1, "write");
    assert_eq!((info >> 8) & 0x7f, u32::from(fault::client::HUB_CE0));
    assert!(info & (1 << 20) != 0 && info & (1 << 7) == 0 && info & (1 << 31) != 0);

    // A doorbell does not run a faulted channel.
    r.gpu.bar0_write(NOTIFY_CHANNEL_PENDING, r.chans[0].chid);
    r.gpu.run_pending();
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 0);

    // Service: map the page, consume the entry, clear ENG_FAULTED.
    r.pt.map(
        &r.gpu.mem(),
        0x700_0000,
        PhysAddr::sys(0x70_0000),
        2 * SZ_4K,
        SZ_4K,
        Flags::default(),
    );
    r.gpu.bar0_write(b0 + 8, 1);
    assert_eq!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_HUB, 0);
    r.gpu
        .bar0_write(PCCSR_CHANNEL + 8 * u64::from(r.chans[0].chid), 1 << 23);
    r.gpu.run_pending();
    let mut out = vec![0; 8192];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x70_0000), &mut out)
        .unwrap();
    assert_eq!(out, data, "the LAUNCH_DMA ran again");
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 7);
}

#[test]
fn clear_faulted_method_from_another_channel() {
    let mut r = Rig::new(2);
    r.submit(0, &copy_methods(DATA_VA, 0x700_0000, 16));
    assert!(r.pccsr(0) & (1 << 23) != 0);
    r.pt.map(
        &r.gpu.mem(),
        0x700_0000,
        PhysAddr::sys(0x70_0000),
        SZ_4K,
        SZ_4K,
        Flags::default(),
    );
    let chid0 = r.chans[0].chid;
    r.submit(1, &m(0, fifo::mthd::CLEAR_FAULTED, (1 << 31) | chid0));
    assert_eq!(r.pccsr(0) & (1 << 23), 0);
    assert_eq!(r.gp_get(0), 1);
}

#[test]
fn semaphore_acquire_blocks_until_the_cpu_releases() {
    let mut r = Rig::new(1);
    let mut pb = inc(0, fifo::mthd::SEM_ADDR_LO, &[SEM_VA as u32, 0, 5, 0]);
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, 2)); // ACQ_STRICT_GEQ 5
    pb.extend(inc(
        0,
        fifo::mthd::SEM_ADDR_LO,
        &[SEM_VA as u32 + 8, 0, 99, 0],
    ));
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, 1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0008)), 0, "blocked");
    assert!(r
        .gpu
        .with_fifo(|f| f.channels[r.chans[0].chid as usize].blocked));
    r.w(PhysAddr::sys(0x50_0000), 4);
    r.gpu.run_pending();
    assert_eq!(r.r32(PhysAddr::sys(0x50_0008)), 0, "4 < 5: still blocked");
    r.w(PhysAddr::sys(0x50_0000), 5);
    r.gpu.run_pending();
    assert_eq!(r.r32(PhysAddr::sys(0x50_0008)), 99);
}

#[test]
fn semaphore_reduction_and_timestamped_release() {
    let mut r = Rig::new(1);
    r.w(PhysAddr::sys(0x50_0000), 10);
    let mut pb = inc(0, fifo::mthd::SEM_ADDR_LO, &[SEM_VA as u32, 0, 5, 0]);
    let iadd_unsigned = 6 | (5 << 27) | (1 << 31);
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, iadd_unsigned));
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, iadd_unsigned));
    pb.extend(inc(
        0,
        fifo::mthd::SEM_ADDR_LO,
        &[SEM_VA as u32 + 0x10, 0, 0xaa, 0xbb],
    ));
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, 1 | (1 << 24))); // 64-bit payload
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 20);
    assert_eq!(r.u64_at(PhysAddr::sys(0x50_0010)), 0xbb_0000_00aa);
}

/// Releases a 64-bit semaphore with the device timestamp at `SEM_VA + off`.
fn timestamp(off: u32) -> Vec<u32> {
    let mut v = inc(0, fifo::mthd::SEM_ADDR_LO, &[SEM_VA as u32 + off, 0, 1, 0]);
    v.extend(m(0, fifo::mthd::SEM_EXECUTE, 1 | (1 << 24) | (1 << 25)));
    v
}

#[test]
fn timestamps_measure_modelled_engine_time() {
    let mut r = Rig::new(1);
    let mut pb = timestamp(0x20);
    pb.extend(copy_methods(DATA_VA, VID_VA, 64 << 10)); // sysmem -> VRAM
    pb.extend(timestamp(0x40));
    pb.extend(copy_methods(VID_VA, VID_VA + (64 << 10), 64 << 10)); // VRAM -> VRAM
    pb.extend(timestamp(0x60));
    r.submit(0, &pb);
    let t = |o: u64| r.u64_at(PhysAddr::sys(0x50_0000 + o + 8));
    let timing = crate::timing::Timing::default();
    let k64 = 64 << 10;
    let sys_to_vid = timing.copy_ns(Traffic { vram: 0, sys: k64 }, Traffic { vram: k64, sys: 0 });
    let vid_to_vid = timing.copy_ns(Traffic { vram: k64, sys: 0 }, Traffic { vram: k64, sys: 0 });
    assert_eq!(t(0x40) - t(0x20), sys_to_vid);
    assert_eq!(t(0x60) - t(0x40), vid_to_vid);
    assert!(
        sys_to_vid > 10 * vid_to_vid / 2,
        "the link is the slow path"
    );
    assert_eq!(
        r.gpu.bar0_read(fifo::USERMODE_TIME_1),
        (t(0x60) >> 32) as u32
    );
    // The clock never runs behind a timestamp it wrote.
    assert!(r.gpu.clock_ns() >= t(0x60));
}

/// Copies from DATA_VA ("old!") once, so its translation is cached, then
/// remaps DATA_VA to a page holding "new!" without invalidating.
fn remap_cached_page(r: &mut Rig) {
    r.gpu
        .mem()
        .write(PhysAddr::sys(0x40_0000), b"old!")
        .unwrap();
    r.gpu
        .mem()
        .write(PhysAddr::sys(0x45_0000), b"new!")
        .unwrap();
    r.submit(0, &copy_methods(DATA_VA, VID_VA, 4));
    r.pt.set_pte_4k(
        &r.gpu.mem(),
        DATA_VA,
        pte(PhysAddr::sys(0x45_0000), Flags::default()),
    );
}

#[test]
fn stale_translation_until_mem_op_invalidate() {
    let mut r = Rig::new(1);
    remap_cached_page(&mut r);
    // No invalidate yet: the copy still reads the old page.
    r.submit(0, &copy_methods(DATA_VA, VID_VA + 16, 4));
    let mut b = [0u8; 4];
    r.gpu.mem().read(PhysAddr::vid(0x80_0010), &mut b).unwrap();
    assert_eq!(&b, b"old!");
    // MEM_OP targeted invalidate of one page of this PDB, then copy again.
    let pdb = r.pt.pdb.0.addr as u32;
    let mut pb = inc(
        0,
        fifo::mthd::MEM_OP_A,
        &[DATA_VA as u32, 0, pdb, 0xa << 27],
    );
    pb.extend(copy_methods(DATA_VA, VID_VA + 32, 4));
    r.submit(0, &pb);
    r.gpu.mem().read(PhysAddr::vid(0x80_0020), &mut b).unwrap();
    assert_eq!(&b, b"new!");
}

#[test]
fn register_path_invalidate() {
    let mut r = Rig::new(1);
    remap_cached_page(&mut r);
    // PDB then INVALIDATE(ALL_VA | TRIGGER), as nouveau does.
    r.gpu
        .bar0_write(NV_PFB_PRI_MMU_INVALIDATE_PDB, (r.pt.pdb.0.addr >> 8) as u32);
    r.gpu.bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | 1);
    assert!(r.gpu.bar0_read(NV_PFB_PRI_MMU_CTRL) & MMU_CTRL_PRI_FIFO_EMPTY != 0);
    r.submit(0, &copy_methods(DATA_VA, VID_VA + 16, 4));
    let mut b = [0u8; 4];
    r.gpu.mem().read(PhysAddr::vid(0x80_0010), &mut b).unwrap();
    assert_eq!(&b, b"new!");
}

#[test]
fn sched_disable_stops_the_runlist_until_enabled() {
    let mut r = Rig::new(1);
    r.gpu.bar0_write(fifo::SCHED_DISABLE, 1);
    r.gpu.bar0_write(fifo::RUNLIST_PREEMPT, 1);
    assert_eq!(
        r.gpu.bar0_read(fifo::RUNLIST_PREEMPT),
        0,
        "preempt complete"
    );
    r.submit(0, &sem_release(4));
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 0, "scheduling disabled");
    r.gpu.bar0_write(fifo::SCHED_DISABLE, 0);
    r.gpu.run_pending();
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 4);
}

#[test]
fn invalid_method_puts_only_that_channel_in_error() {
    let mut r = Rig::new(2);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_0, PMC_INTR_PFIFO);
    r.submit(0, &m(0, 0x0ff0 & !3, 1)); // no such host method
    assert!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PFIFO != 0);
    assert_eq!(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID), r.chans[0].chid);
    assert_eq!(
        r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CODE),
        ErrorCode::InvalidMethod as u32
    );
    // The other channel still works.
    r.submit(1, &sem_release(3));
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 3);
    // Unknown class, CE method without an object, bad header.
    let mut r = Rig::new(3);
    r.submit(0, &m(0, 0, 0xc0c0));
    r.submit(1, &m(2, ce::mthd::LAUNCH_DMA, 0));
    r.submit(2, &[6 << 29]);
    let codes: Vec<_> = r.gpu.with_fifo(|f| {
        r.chans
            .iter()
            .map(|c| f.channels[c.chid as usize].error)
            .collect()
    });
    assert_eq!(
        codes,
        [
            Some(ErrorCode::InvalidClass),
            Some(ErrorCode::InvalidMethod),
            Some(ErrorCode::InvalidPushbuffer)
        ]
    );
}

#[test]
fn pushbuffer_fetch_fault_is_a_pbdma_fault() {
    let r = Rig::new(1);
    r.fault_buffer(fault::NON_REPLAYABLE, 8);
    // A GP entry pointing at unmapped VA 0x900_0000.
    let c = &r.chans[0];
    r.w(c.gpfifo, 0x900_0000);
    r.w(c.gpfifo.offset(4), 4 << 10);
    r.w(c.userd.offset(0x8c), 1);
    r.gpu.bar0_write(NOTIFY_CHANNEL_PENDING, c.chid);
    r.gpu.run_pending();
    assert!(r.pccsr(0) & (1 << 22) != 0, "PBDMA_FAULTED");
    let mut pkt = [0u8; 32];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x60_0000), &mut pkt)
        .unwrap();
    assert_eq!(
        u32::from_le_bytes(pkt[24..28].try_into().unwrap()),
        u32::from(fault::engine::HOST0)
    );
}

#[test]
fn immediate_and_non_incrementing_headers() {
    let mut r = Rig::new(1);
    // IMMD: SEM_ADDR_HI = 0 with data in the header; NON_INC: SEM_PAYLOAD_LO
    // written three times, the last value wins.
    let mut pb = m(0, fifo::mthd::SEM_ADDR_LO, SEM_VA as u32 + 0x20);
    pb.push(hdr(4, 0, fifo::mthd::SEM_ADDR_HI, 0));
    pb.extend([hdr(3, 0, fifo::mthd::SEM_PAYLOAD_LO, 3), 1, 2, 0x77]);
    pb.extend(m(0, fifo::mthd::SEM_PAYLOAD_HI, 0));
    pb.push(hdr(4, 0, fifo::mthd::SEM_EXECUTE, 1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0020)), 0x77);
}

/// A few RV64 instruction encoders, enough for test kernels.
mod rv {
    pub const ZERO: u32 = 0;
    pub const SP: u32 = 2;
    pub const T0: u32 = 5;
    pub const T1: u32 = 6;
    pub const T2: u32 = 7;
    pub const A0: u32 = 10;
    pub const A1: u32 = 11;
    pub const T3: u32 = 28;

    fn i(imm: i32, rs1: u32, f3: u32, rd: u32, op: u32) -> u32 {
        ((imm as u32 & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op
    }
    pub fn ld(rd: u32, rs1: u32, imm: i32) -> u32 {
        i(imm, rs1, 3, rd, 0x03)
    }
    pub fn sd(rs2: u32, rs1: u32, imm: i32) -> u32 {
        let imm = imm as u32 & 0xfff;
        ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((imm & 31) << 7) | 0x23
    }
    pub fn addi(rd: u32, rs1: u32, imm: i32) -> u32 {
        i(imm, rs1, 0, rd, 0x13)
    }
    pub fn slli(rd: u32, rs1: u32, sh: u32) -> u32 {
        i(sh as i32, rs1, 1, rd, 0x13)
    }
    pub fn add(rd: u32, rs1: u32, rs2: u32) -> u32 {
        (rs2 << 20) | (rs1 << 15) | (rd << 7) | 0x33
    }
    pub fn beq(rs1: u32, rs2: u32, off: i32) -> u32 {
        let o = off as u32;
        (((o >> 12) & 1) << 31)
            | (((o >> 5) & 0x3f) << 25)
            | (rs2 << 20)
            | (rs1 << 15)
            | (((o >> 1) & 0xf) << 8)
            | (((o >> 11) & 1) << 7)
            | 0x63
    }
    pub fn jal(rd: u32, off: i32) -> u32 {
        let o = off as u32;
        (((o >> 20) & 1) << 31)
            | (((o >> 1) & 0x3ff) << 21)
            | (((o >> 11) & 1) << 20)
            | (((o >> 12) & 0xff) << 12)
            | (rd << 7)
            | 0x6f
    }
    pub fn amoadd_d(rd: u32, rs2: u32, rs1: u32) -> u32 {
        (rs2 << 20) | (rs1 << 15) | (3 << 12) | (rd << 7) | 0x2f
    }
    pub const ECALL: u32 = 0x73;
    pub const EBREAK: u32 = 0x0010_0073;
}

use rv::*;

impl Rig {
    fn load_code(&self, code: &[u32]) {
        for (k, w) in code.iter().enumerate() {
            self.w(PhysAddr::sys(0x90_0000 + 4 * k as u64), *w);
        }
    }

    /// Loads a kernel image built from C (`rsvm-kernels`).
    fn load_image(&self, image: &[u8]) {
        assert!(image.len() <= 4 * 4096, "the code window is 4 pages");
        self.gpu
            .mem()
            .write(PhysAddr::sys(0x90_0000), image)
            .unwrap();
    }

    /// Methods that launch the loaded code over `threads` threads.
    fn launch(&self, args_va: u64, threads: u32, flags: u32) -> Vec<u32> {
        self.launch_with_stack(args_va, threads, flags, 256)
    }

    /// [`Self::launch`] with `stack` bytes of stack per thread.
    fn launch_with_stack(&self, args_va: u64, threads: u32, flags: u32, stack: u32) -> Vec<u32> {
        let mut v = m(GR_SUBCH, 0, compute::CLASS);
        v.extend(inc(
            GR_SUBCH,
            compute::mthd::SET_CODE_ADDRESS_UPPER,
            &[
                (CODE_VA >> 32) as u32,
                CODE_VA as u32,
                (args_va >> 32) as u32,
                args_va as u32,
                (STACK_VA >> 32) as u32,
                STACK_VA as u32,
                stack,
            ],
        ));
        v.extend(m(GR_SUBCH, compute::mthd::SET_GRID_SIZE, threads));
        v.extend(m(GR_SUBCH, compute::mthd::LAUNCH, flags));
        v
    }

    fn u64_at(&self, at: PhysAddr) -> u64 {
        self.gpu.mem().read_u64(at).unwrap()
    }

    fn set_u64(&self, at: PhysAddr, v: u64) {
        self.gpu.mem().write_u64(at, v).unwrap();
    }

    /// Enables fault buffer `index` in system memory at 0x60_0000.
    fn fault_buffer(&self, index: usize, entries: u32) {
        let base = fault::FAULT_BUFFER_LO + fault::FAULT_BUFFER_STRIDE * index as u64;
        self.gpu.bar0_write(base, 0x60_0000 | (2 << 1) | 1);
        self.gpu.bar0_write(base + 16, (1 << 31) | entries);
    }

    fn replay_buffer(&self, entries: u32) {
        self.fault_buffer(fault::REPLAYABLE, entries);
    }

    fn replay_put(&self) -> u32 {
        self.gpu
            .bar0_read(fault::FAULT_BUFFER_LO + fault::FAULT_BUFFER_STRIDE + 12)
            & 0xf_ffff
    }

    /// Loads `double_kernel` with its arguments at `DATA_VA`: the input at
    /// `src`, the output in VRAM (`VID_VA`).
    fn load_double(&self, src: u64) {
        self.load_code(&double_kernel());
        self.set_u64(PhysAddr::sys(0x40_0000), src);
        self.set_u64(PhysAddr::sys(0x40_0008), VID_VA);
    }

    fn error_of(&self, ch: usize) -> Option<ErrorCode> {
        self.gpu
            .with_fifo(|f| f.channels[self.chans[ch].chid as usize].error)
    }
}

use crate::compute;

/// out[tid] = 2 * in[tid], through a push/pop on the thread's stack.
fn double_kernel() -> Vec<u32> {
    vec![
        ld(T0, A0, 0),
        ld(T1, A0, 8),
        slli(T2, A1, 3),
        add(T0, T0, T2),
        add(T1, T1, T2),
        ld(T3, T0, 0),
        addi(SP, SP, -16),
        sd(T3, SP, 8),
        ld(T3, SP, 8),
        add(T3, T3, T3),
        sd(T3, T1, 0),
        ECALL,
    ]
}

#[test]
fn compute_kernel_reads_sysmem_and_writes_vram() {
    let mut r = Rig::new(1);
    r.load_code(&double_kernel());
    let n = 200u64;
    for k in 0..n {
        r.set_u64(PhysAddr::sys(0x40_0000 + 0x100 + 8 * k), 1000 + k);
    }
    // args at DATA_VA: [in, out]
    r.set_u64(PhysAddr::sys(0x40_0000), DATA_VA + 0x100);
    r.set_u64(PhysAddr::sys(0x40_0008), VID_VA);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_1, NONSTALL_COMPUTE);
    let mut pb = r.launch(DATA_VA, n as u32, 1);
    pb.extend(sem_release(1));
    r.submit(0, &pb);
    for k in 0..n {
        assert_eq!(r.u64_at(PhysAddr::vid(0x80_0000 + 8 * k)), 2 * (1000 + k));
    }
    assert_eq!(
        r.r32(PhysAddr::sys(0x50_0000)),
        1,
        "the release after the grid"
    );
    assert!(r.gpu.bar0_read(NV_PMC_INTR_1) & NONSTALL_COMPUTE != 0);
}

/// Writes `v` at byte `off` of the data pages (mapped at `DATA_VA`).
fn data_u64(r: &Rig, off: u64, v: u64) {
    r.set_u64(PhysAddr::sys(0x40_0000 + off), v);
}

/// Builds `struct node { next, value }` nodes in the data pages, node `k` at
/// byte `at(k)` holding `value(k)`, linked in the order of `order`; returns
/// the head's GPU address.
fn scattered_list(
    r: &Rig,
    order: &[u64],
    at: impl Fn(u64) -> u64,
    value: impl Fn(u64) -> u64,
) -> u64 {
    for (i, &k) in order.iter().enumerate() {
        let next = order.get(i + 1).map_or(0, |&n| DATA_VA + at(n));
        data_u64(r, at(k), next);
        data_u64(r, at(k) + 8, value(k));
    }
    DATA_VA + at(order[0])
}

#[test]
fn compute_walks_a_cpu_built_linked_list() {
    let mut r = Rig::new(1);
    // sum = 0; for (p = head; p; p = p->next) sum += p->val; *out = sum
    r.load_code(&[
        ld(T0, A0, 0),
        addi(T1, ZERO, 0),
        beq(T0, ZERO, 20),
        ld(T2, T0, 8),
        add(T1, T1, T2),
        ld(T0, T0, 0),
        jal(ZERO, -16),
        ld(T3, A0, 8),
        sd(T1, T3, 0),
        ECALL,
    ]);
    // Nodes {next, val} scattered over the data pages, linked in a shuffled order.
    let order = [7u64, 2, 11, 5, 0, 14, 9, 3];
    let head = scattered_list(&r, &order, |k| 0x400 + k * 0x7f8, |k| 10 * (k + 1)); // nodes cross pages
    r.set_u64(PhysAddr::sys(0x40_0000), head);
    r.set_u64(PhysAddr::sys(0x40_0008), DATA_VA + 0x200);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    let want: u64 = order.iter().map(|k| 10 * (k + 1)).sum();
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0200)), want);
}

#[test]
fn a_c_kernel_walks_a_cpu_built_linked_list() {
    let mut r = Rig::new(1);
    r.load_image(rsvm_kernels::LIST_SUM);
    // struct node { next, value }, scattered and linked out of order.
    let order = [5u64, 12, 1, 9, 30, 2, 17];
    let head = scattered_list(&r, &order, |k| 0x800 + k * 0x1f0, |k| 1000 + k);
    // struct args { head, sum, count } at offset 0.
    data_u64(&r, 0, head);
    data_u64(&r, 8, DATA_VA + 0x100);
    data_u64(&r, 16, DATA_VA + 0x108);
    let mut pb = r.launch(DATA_VA, 4, 0);
    pb.extend(sem_release(1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 1, "the job completed");
    let want: u64 = order.iter().map(|k| 1000 + k).sum();
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0100)), want);
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0108)), order.len() as u64);
}

#[test]
fn a_c_kernel_sums_a_tree_with_a_grid() {
    let mut r = Rig::new(1);
    r.load_image(rsvm_kernels::TREE_SUM);
    // A complete tree of 63 nodes { left, right, value } in heap order.
    let nodes = 63u64;
    let at = |i: u64| 0x400 + i * 24;
    for i in 0..nodes {
        let child = |c: u64| if c < nodes { DATA_VA + at(c) } else { 0 };
        data_u64(&r, at(i), child(2 * i + 1));
        data_u64(&r, at(i) + 8, child(2 * i + 2));
        data_u64(&r, at(i) + 16, i * i + 1);
    }
    // struct args { root, depth, sum }: 2^3 threads below level 3.
    data_u64(&r, 0, DATA_VA + at(0));
    data_u64(&r, 8, 3);
    data_u64(&r, 16, DATA_VA + 0x100);
    data_u64(&r, 0x100, 0);
    let mut pb = r.launch_with_stack(DATA_VA, 8, 0, 2048);
    pb.extend(sem_release(1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 1, "the job completed");
    let want: u64 = (0..nodes).map(|i| i * i + 1).sum();
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0100)), want);
}

#[test]
fn a_c_kernel_counts_atomically_from_every_thread() {
    let mut r = Rig::new(1);
    r.load_image(rsvm_kernels::ATOMIC_INC);
    // struct args { counter, iterations }; the counter starts at 7.
    data_u64(&r, 0, DATA_VA + 0x100);
    data_u64(&r, 8, 50);
    data_u64(&r, 0x100, 7);
    let mut pb = r.launch(DATA_VA, 64, 0);
    pb.extend(sem_release(1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 1, "the job completed");
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0100)), 7 + 64 * 50);
}

#[test]
fn replayable_faults_are_batched_then_replayed() {
    let mut r = Rig::new(1);
    r.replay_buffer(128);
    r.gpu
        .bar0_write(fault::NISO_INTR_EN_SET, NISO_REPLAYABLE_NOTIFY);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_0, PMC_INTR_HUB);
    // in[] lives in the hole: 64 threads x 8 bytes, two pages.
    r.load_double(HOLE_VA + 0xf00);
    let pb = r.launch(DATA_VA, 64, 0);
    r.submit(0, &pb);

    assert_eq!(r.replay_put(), 64, "every thread reported one fault");
    assert!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_HUB != 0);
    assert!(r
        .gpu
        .with_fifo(|f| f.channels[r.chans[0].chid as usize].replay_wait));
    let mut pkt = [0u8; 32];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x60_0000 + 32 * 63), &mut pkt)
        .unwrap();
    let dw = |i: usize| u32::from_le_bytes(pkt[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(dw(2), (HOLE_VA + 0x1000) as u32, "thread 63's page");
    assert_eq!(dw(6), u32::from(fault::engine::GRAPHICS));
    let info = dw(7);
    assert_eq!(info & 0x1f, 0, "PDE: the 2 MiB region is empty");
    assert!(info & (1 << 7) != 0 && info & (1 << 30) != 0, "replayable");
    assert_eq!(info & (1 << 20), 0, "GPC client");

    // A doorbell while stalled reports nothing new.
    r.gpu.bar0_write(NOTIFY_CHANNEL_PENDING, r.chans[0].chid);
    r.gpu.run_pending();
    assert_eq!(r.replay_put(), 64);

    // Preempting a channel stalled on a replayable fault completes.
    r.gpu.bar0_write(fifo::PREEMPT, r.chans[0].chid);
    assert_eq!(
        r.gpu.bar0_read(fifo::PREEMPT) & (1 << 20),
        0,
        "PENDING clear"
    );

    // Service: map the pages, consume the entries, replay.
    for k in 0..64u64 {
        r.set_u64(PhysAddr::sys(0xc0_0f00 + 8 * k), k);
    }
    r.pt.map(
        &r.gpu.mem(),
        HOLE_VA,
        PhysAddr::sys(0xc0_0000),
        2 * SZ_4K,
        SZ_4K,
        Flags::default(),
    );
    let b1 = fault::FAULT_BUFFER_LO + fault::FAULT_BUFFER_STRIDE;
    r.gpu.bar0_write(b1 + 8, 64);
    r.gpu
        .bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (1 << 3) | 3); // REPLAY=START, all
    r.gpu.run_pending();
    for k in 0..64u64 {
        assert_eq!(r.u64_at(PhysAddr::vid(0x80_0000 + 8 * k)), 2 * k);
    }
    assert_eq!(r.replay_put(), 64, "no new faults");
    assert_eq!(r.error_of(0), None);
}

#[test]
fn a_replay_without_service_refaults() {
    let mut r = Rig::new(1);
    r.replay_buffer(128);
    r.load_double(HOLE_VA);
    let pb = r.launch(DATA_VA, 4, 0);
    r.submit(0, &pb);
    assert_eq!(r.replay_put(), 4);
    r.gpu
        .bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (1 << 3) | 3);
    r.gpu.run_pending();
    assert_eq!(r.replay_put(), 8, "each stalled access faulted again");
}

#[test]
fn cancel_fails_the_job_with_a_reported_error() {
    let mut r = Rig::new(2);
    r.replay_buffer(128);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.load_double(HOLE_VA);
    let pb = r.launch(DATA_VA, 4, 0);
    r.submit(0, &pb);
    r.gpu
        .bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (4 << 3) | 3); // CANCEL_GLOBAL
    assert_eq!(r.error_of(0), Some(ErrorCode::FaultCancelled));
    assert_eq!(
        r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CODE),
        ErrorCode::FaultCancelled as u32
    );
    // The other channel is unaffected.
    r.submit(1, &sem_release(9));
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 9);
}

#[test]
fn cancel_va_global_through_mem_op_of_another_channel() {
    let mut r = Rig::new(3);
    r.replay_buffer(128);
    // Channel 0 faults on HOLE_VA, channel 1 on HOLE_VA + 1 MiB.
    r.load_double(HOLE_VA);
    r.set_u64(PhysAddr::sys(0x40_0010), HOLE_VA + (1 << 20));
    r.set_u64(PhysAddr::sys(0x40_0018), VID_VA);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    let pb = r.launch(DATA_VA + 0x10, 1, 0);
    r.submit(1, &pb);
    assert_eq!(r.replay_put(), 2);
    // Channel 2: MEM_OP invalidate of all PDBs + CANCEL_VA_GLOBAL(HOLE_VA, VIRT_ALL).
    let c = 1 | (5 << 2) | (7 << 7);
    r.submit(
        2,
        &inc(0, fifo::mthd::MEM_OP_A, &[HOLE_VA as u32, 0, c, 0xa << 27]),
    );
    assert_eq!(r.error_of(0), Some(ErrorCode::FaultCancelled));
    // The detail is the cancelled page's number, in two registers.
    assert_eq!(
        r.gpu.bar0_read(RSVM_CHANNEL_ERROR_INFO),
        (HOLE_VA >> 12) as u32
    );
    assert_eq!(r.gpu.bar0_read(fifo::RSVM_CHANNEL_ERROR_INFO_HI), 0);
    assert_eq!(r.error_of(1), None, "a stall at another address survives");
    assert!(r
        .gpu
        .with_fifo(|f| f.channels[r.chans[1].chid as usize].replay_wait));
}

#[test]
fn write_to_a_read_only_page_is_a_replayable_ro_violation() {
    let mut r = Rig::new(1);
    r.replay_buffer(16);
    r.load_code(&double_kernel());
    let ro = Flags {
        read_only: true,
        ..Default::default()
    };
    r.pt.map(
        &r.gpu.mem(),
        HOLE_VA,
        PhysAddr::sys(0xd0_0000),
        SZ_4K,
        SZ_4K,
        ro,
    );
    r.set_u64(PhysAddr::sys(0x40_0000), DATA_VA + 0x100);
    r.set_u64(PhysAddr::sys(0x40_0008), HOLE_VA);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    let mut pkt = [0u8; 32];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x60_0000), &mut pkt)
        .unwrap();
    let info = u32::from_le_bytes(pkt[28..32].try_into().unwrap());
    assert_eq!(info & 0x1f, 6, "RO violation");
    assert_eq!((info >> 16) & 0xf, 1, "write");
    assert_eq!(r.u64_at(PhysAddr::sys(0xd0_0000)), 0, "nothing written");
}

#[test]
fn without_replay_enabled_a_compute_fault_switches_the_channel_out() {
    let mut r = Rig::new(1);
    let b0 = fault::FAULT_BUFFER_LO;
    r.fault_buffer(fault::NON_REPLAYABLE, 8);
    let pdb = r.pt.pdb.0.addr as u32;
    r.w(PhysAddr::vid(0x1200), pdb | (1 << 10) | (1 << 11)); // no FAULT_REPLAY_*
    r.load_double(HOLE_VA);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    assert!(r.pccsr(0) & (1 << 23) != 0, "ENG_FAULTED");
    assert_eq!(
        r.gpu.bar0_read(b0 + 12) & 0xf_ffff,
        1,
        "non-replayable entry"
    );
    r.set_u64(PhysAddr::sys(0xc0_0000), 21);
    r.pt.map(
        &r.gpu.mem(),
        HOLE_VA,
        PhysAddr::sys(0xc0_0000),
        SZ_4K,
        SZ_4K,
        Flags::default(),
    );
    r.gpu
        .bar0_write(PCCSR_CHANNEL + 8 * u64::from(r.chans[0].chid), 1 << 23);
    r.gpu.run_pending();
    assert_eq!(r.u64_at(PhysAddr::vid(0x80_0000)), 42);
}

#[test]
fn gpu_and_cpu_atomics_on_one_counter_lose_nothing() {
    let mut r = Rig::new(1);
    // for (i = iters; i; i--) amoadd.d(counter, 1)
    r.load_code(&[
        ld(T0, A0, 0),
        ld(T1, A0, 8),
        addi(T2, ZERO, 1),
        beq(T1, ZERO, 16),
        amoadd_d(ZERO, T2, T0),
        addi(T1, T1, -1),
        jal(ZERO, -12),
        ECALL,
    ]);
    let counter = 0x40_0800u64;
    r.set_u64(PhysAddr::sys(0x40_0000), DATA_VA + 0x800);
    r.set_u64(PhysAddr::sys(0x40_0008), 2000);
    let pb = r.launch(DATA_VA, 32, 0);
    r.queue(0, &pb);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cpu_adds = std::thread::scope(|s| {
        let ram = &r._ram;
        let stop2 = stop.clone();
        let cpu = s.spawn(move || {
            let mut n = 0u64;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) || n < 10_000 {
                ram.atomic64(counter, |a| {
                    a.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                })
                .unwrap();
                n += 1;
            }
            n
        });
        r.kick(0);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        cpu.join().unwrap()
    });
    assert_eq!(r.u64_at(PhysAddr::sys(counter)), 32 * 2000 + cpu_adds);
}

#[test]
fn broken_kernels_fail_the_job() {
    let mut r = Rig::new(3);
    r.load_code(&[0]); // not an instruction
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    assert_eq!(r.error_of(0), Some(ErrorCode::JobFailed));
    r.load_code(&[EBREAK]);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(1, &pb);
    assert_eq!(r.error_of(1), Some(ErrorCode::JobFailed));
    r.load_code(&[jal(ZERO, 0)]); // spins forever
    let mut pb = m(GR_SUBCH, 0, compute::CLASS);
    pb.extend(m(GR_SUBCH, compute::mthd::SET_INSTRUCTION_LIMIT, 100_000));
    pb.extend(r.launch(DATA_VA, 1, 0));
    r.submit(2, &pb);
    assert_eq!(r.error_of(2), Some(ErrorCode::JobFailed));
}

#[test]
fn firmware_is_checked_before_engines_run() {
    let (gpu, _ram) = fresh_gpu();
    assert_eq!(gpu.bar0_read(boot::MAILBOX0), 0, "not booted");
    let good = rsvm_firmware::build(&rsvm_firmware::default_image());
    let mut bad = good.clone();
    bad[30] ^= 1;
    boot(&gpu, &bad);
    let st = gpu.bar0_read(boot::MAILBOX0);
    assert_eq!(
        st,
        boot::STATUS_ERROR | rsvm_firmware::Error::BadChecksum as u32
    );
    boot(&gpu, &good[..good.len() - 4]);
    assert_eq!(
        gpu.bar0_read(boot::MAILBOX0),
        boot::STATUS_ERROR | rsvm_firmware::Error::BadSize as u32
    );
    let mut other = rsvm_firmware::default_image();
    other.chip = 0x14;
    boot(&gpu, &rsvm_firmware::build(&other));
    assert_eq!(
        gpu.bar0_read(boot::MAILBOX0),
        boot::STATUS_ERROR | rsvm_firmware::Error::WrongChip as u32
    );
    assert_eq!(gpu.bar0_read(boot::ENGINES), 0);
    // DMA outside guest memory.
    gpu.bar0_write(boot::DMA_BASE_LO, 0xf000_0000);
    gpu.bar0_write(boot::DMA_SIZE, good.len() as u32);
    gpu.bar0_write(boot::CPUCTL, boot::CPUCTL_STARTCPU);
    assert_eq!(
        gpu.bar0_read(boot::MAILBOX0),
        boot::STATUS_ERROR | rsvm_firmware::Error::Unreachable as u32
    );

    boot(&gpu, &good);
    assert_eq!(gpu.bar0_read(boot::MAILBOX0), boot::STATUS_RUNNING);
    assert_eq!(gpu.bar0_read(boot::MAILBOX1), 1 << 16);
    assert_eq!(gpu.bar0_read(boot::ENGINES), 3);
    // A second STARTCPU changes nothing.
    boot(&gpu, &bad);
    assert_eq!(gpu.bar0_read(boot::MAILBOX0), boot::STATUS_RUNNING);
}

#[test]
fn no_channel_runs_before_boot_and_only_enabled_engines_exist() {
    let mut r = Rig::unbooted(2);
    r.submit(0, &sem_release(5));
    assert_eq!(
        r.r32(PhysAddr::sys(0x50_0000)),
        0,
        "no firmware: nothing ran"
    );
    // A copy-only image: the compute class does not exist.
    let mut img = rsvm_firmware::default_image();
    img.engines = rsvm_firmware::ENGINE_COPY;
    boot(&r.gpu, &rsvm_firmware::build(&img));
    r.kick(0);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 5, "runs once booted");
    r.submit(1, &m(GR_SUBCH, 0, compute::CLASS));
    assert_eq!(r.error_of(1), Some(ErrorCode::InvalidClass));
}

#[test]
fn cancel_va_global_is_scoped_to_one_pdb_and_every_error_is_reported() {
    let mut r = Rig::new(2);
    r.replay_buffer(128);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.load_double(HOLE_VA);
    for ch in 0..2 {
        let pb = r.launch(DATA_VA, 1, 0);
        r.submit(ch, &pb);
    }
    assert_eq!(r.replay_put(), 2);
    let cancel_in = |r: &Rig, pdb: u64| {
        r.gpu
            .bar0_write(NV_PFB_PRI_MMU_INVALIDATE_PDB, ((pdb >> 12) as u32) << 4);
        r.gpu.bar0_write(NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB, 0);
        r.gpu.bar0_write(
            NV_PFB_PRI_MMU_INVALIDATE_VADDR,
            ((HOLE_VA >> 12) as u32) << 4,
        );
        r.gpu.bar0_write(NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR, 0);
        // TRIGGER, neither ALL_VA nor ALL_PDB, REPLAY = CANCEL_VA_GLOBAL.
        r.gpu
            .bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (5 << 3));
    };
    // Another address space's cancel leaves these stalls alone.
    cancel_in(&r, 0x70_0000);
    assert_eq!((r.error_of(0), r.error_of(1)), (None, None));
    assert_eq!(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID), u32::MAX);
    // Their own cancels both; each error is reported, one after the other.
    cancel_in(&r, r.pt.pdb.0.addr);
    assert_eq!(r.error_of(0), Some(ErrorCode::FaultCancelled));
    assert_eq!(r.error_of(1), Some(ErrorCode::FaultCancelled));
    let mut seen = vec![];
    while r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PFIFO != 0 {
        seen.push(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID));
        assert_eq!(
            r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CODE),
            ErrorCode::FaultCancelled as u32
        );
        r.gpu.bar0_write(fifo::PFIFO_INTR_0, PFIFO_INTR_CHANNEL);
    }
    assert_eq!(seen, vec![r.chans[0].chid, r.chans[1].chid]);
    assert_eq!(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID), u32::MAX);
}

#[test]
fn a_misaligned_access_is_its_own_error_with_its_address() {
    let mut r = Rig::new(1);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.load_double(DATA_VA + 0x101);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    assert_eq!(r.error_of(0), Some(ErrorCode::Misaligned));
    assert_eq!(
        r.gpu.bar0_read(RSVM_CHANNEL_ERROR_INFO),
        (DATA_VA + 0x101) as u32
    );
}

#[test]
fn debug_counters_count_bar0_accesses() {
    let r = Rig::new(1);
    r.gpu.bar0_write(RSVM_DEBUG_BAR0_READS_LO, 0);
    assert_eq!(r.gpu.bar0_accesses(), (0, 0));
    r.gpu.bar0_read(NV_PMC_BOOT_0);
    r.gpu.bar0_read(NV_PMC_INTR_0);
    r.gpu.bar0_write(NV_PBUS_SW_SCRATCH, 1);
    assert_eq!(r.gpu.bar0_read(RSVM_DEBUG_BAR0_READS_LO), 2);
    assert_eq!(r.gpu.bar0_read(RSVM_DEBUG_BAR0_WRITES_LO), 1);
    assert_eq!(r.gpu.bar0_read(RSVM_DEBUG_BAR0_READS_HI), 0);
    assert_eq!(r.gpu.bar0_accesses(), (2, 1), "reading them is not counted");
}

#[test]
fn unbinding_a_channel_drops_its_pending_error_and_the_interrupt() {
    let mut r = Rig::new(1);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.submit(0, &m(GR_SUBCH, 0x2fc, 1));
    assert!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PFIFO != 0);
    r.gpu
        .bar0_write(PCCSR_CHANNEL_INST + 8 * u64::from(r.chans[0].chid), 0);
    assert_eq!(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID), u32::MAX);
    // Nothing left to acknowledge: a later error must be a new edge.
    assert_eq!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PFIFO, 0);
}
