//! The rig the integration tests share: a fresh device and "guest RAM",
//! firmware boot, channels made and driven through BAR0 exactly as a
//! driver drives them (instance block, runlist, PCCSR, GPFIFO, USERD,
//! doorbell), method encoders and an RV64 assembler for test kernels.
//!
//! Each test file uses a part of it.
#![allow(dead_code, unused_imports)]

pub use rsvm_gpu::boot;
pub use rsvm_gpu::ce::{self, launch::*};
pub use rsvm_gpu::config::Config;
pub use rsvm_gpu::device::Gpu;
pub use rsvm_gpu::fault::{self, *};
pub use rsvm_gpu::fifo::{self, *};
pub use rsvm_gpu::mem::{PhysAddr, PhysMem};
pub use rsvm_gpu::mmu::builder::PageTables;
pub use rsvm_gpu::mmu::encode::{pte, Flags};
pub use rsvm_gpu::mmu::{SZ_4K, SZ_64K};
pub use rsvm_gpu::regs::*;
pub use rsvm_gpu::timing::Traffic;
pub use rsvm_gpu::vram::Vram;
pub use std::fs::File;
pub use std::io::Read;
pub use std::os::fd::FromRawFd;

pub const GPFIFO_VA: u64 = 0x100_0000;

pub const PB_VA: u64 = 0x200_0000;

pub const DATA_VA: u64 = 0x300_0000; // sysmem 0x40_0000, 16 pages
pub const VID_VA: u64 = 0x400_0000; // VRAM 0x80_0000, 2 big pages
pub const SEM_VA: u64 = 0x500_0000; // sysmem 0x50_0000
pub const CE_SUBCH: u32 = 4;

pub const GR_SUBCH: u32 = 1;

pub const CODE_VA: u64 = 0x600_0000; // sysmem 0x90_0000, 4 pages
pub const STACK_VA: u64 = 0x610_0000; // sysmem 0xa0_0000, 16 pages
pub const HOLE_VA: u64 = 0x800_0000; // unmapped until a test maps it

/// A 32 MiB device and 32 MiB of "guest RAM" mapped for its DMA at 0.
pub fn fresh_gpu() -> (Gpu, Vram) {
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
pub fn boot(gpu: &Gpu, image: &[u8]) {
    gpu.mem().write(PhysAddr::sys(0xf0_0000), image).unwrap();
    gpu.bar0_write(boot::DMA_BASE_LO, 0xf0_0000);
    gpu.bar0_write(boot::DMA_BASE_HI, 0);
    gpu.bar0_write(boot::DMA_SIZE, image.len() as u32);
    gpu.bar0_write(boot::CPUCTL, boot::CPUCTL_STARTCPU);
}

pub struct Rig {
    pub gpu: Gpu,
    pub _ram: Vram,
    pub pt: PageTables,
    pub chans: Vec<Chan>,
}

pub struct Chan {
    pub chid: u32,
    pub userd: PhysAddr,
    pub gpfifo: PhysAddr,
    pub pb: PhysAddr,
    pub put: u32,
    pub pb_off: u64,
}

pub fn hdr(kind: u32, subch: u32, mthd: u32, count: u32) -> u32 {
    (kind << 29) | (count << 16) | (subch << 13) | (mthd >> 2)
}

/// An incrementing method header followed by its data.
pub fn inc(subch: u32, mthd: u32, data: &[u32]) -> Vec<u32> {
    let mut v = vec![hdr(1, subch, mthd, data.len() as u32)];
    v.extend_from_slice(data);
    v
}

pub fn m(subch: u32, mthd: u32, data: u32) -> Vec<u32> {
    inc(subch, mthd, &[data])
}

impl Rig {
    /// A device with `nchan` channels set up and the shipped firmware booted.
    pub fn new(nchan: u32) -> Self {
        let r = Self::unbooted(nchan);
        boot(
            &r.gpu,
            &rsvm_firmware::build(&rsvm_firmware::default_image()),
        );
        assert_eq!(r.gpu.bar0_read(boot::MAILBOX0), boot::STATUS_RUNNING);
        r
    }

    /// The same, with no firmware uploaded yet.
    pub fn unbooted(nchan: u32) -> Self {
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

    pub fn w(&self, at: PhysAddr, v: u32) {
        self.gpu.mem().write_u32(at, v).unwrap();
    }

    pub fn r32(&self, at: PhysAddr) -> u32 {
        self.gpu.mem().read_u32(at).unwrap()
    }

    pub fn add_channel(&mut self, idx: u32, chid: u32) {
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

    pub fn commit_runlist(&self) {
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
    pub fn submit(&mut self, ch: usize, dwords: &[u32]) {
        self.queue(ch, dwords);
        self.kick(ch);
    }

    /// Rings channel `ch`'s doorbell and runs the engines.
    pub fn kick(&self, ch: usize) {
        self.gpu
            .bar0_write(NOTIFY_CHANNEL_PENDING, self.chans[ch].chid);
        self.gpu.run_pending();
    }

    /// Writes a segment and its GPFIFO entry and moves GP_PUT.
    pub fn queue(&mut self, ch: usize, dwords: &[u32]) {
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

    pub fn pccsr(&self, ch: usize) -> u32 {
        self.gpu
            .bar0_read(PCCSR_CHANNEL + 8 * u64::from(self.chans[ch].chid))
    }

    pub fn gp_get(&self, ch: usize) -> u32 {
        self.r32(self.chans[ch].userd.offset(0x88))
    }
}

pub fn copy_methods(src: u64, dst: u64, len: u32) -> Vec<u32> {
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

pub fn sem_release(payload: u32) -> Vec<u32> {
    let mut v = inc(
        0,
        fifo::mthd::SEM_ADDR_LO,
        &[SEM_VA as u32, (SEM_VA >> 32) as u32, payload, 0],
    );
    v.extend(m(0, fifo::mthd::SEM_EXECUTE, 1)); // RELEASE, 32-bit
    v
}

pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// Releases a 64-bit semaphore with the device timestamp at `SEM_VA + off`.
pub fn timestamp(off: u32) -> Vec<u32> {
    let mut v = inc(0, fifo::mthd::SEM_ADDR_LO, &[SEM_VA as u32 + off, 0, 1, 0]);
    v.extend(m(0, fifo::mthd::SEM_EXECUTE, 1 | (1 << 24) | (1 << 25)));
    v
}

/// Copies from DATA_VA ("old!") once, so its translation is cached, then
/// remaps DATA_VA to a page holding "new!" without invalidating.
pub fn remap_cached_page(r: &mut Rig) {
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

/// A few RV64 instruction encoders, enough for test kernels.
pub mod rv {
    pub const ZERO: u32 = 0;
    pub const SP: u32 = 2;
    pub const T0: u32 = 5;
    pub const T1: u32 = 6;
    pub const T2: u32 = 7;
    pub const A0: u32 = 10;
    pub const A1: u32 = 11;
    pub const T3: u32 = 28;

    pub fn i(imm: i32, rs1: u32, f3: u32, rd: u32, op: u32) -> u32 {
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

pub use rv::*;

impl Rig {
    pub fn load_code(&self, code: &[u32]) {
        for (k, w) in code.iter().enumerate() {
            self.w(PhysAddr::sys(0x90_0000 + 4 * k as u64), *w);
        }
    }

    /// Loads a kernel image built from C (`rsvm-kernels`).
    pub fn load_image(&self, image: &[u8]) {
        assert!(image.len() <= 4 * 4096, "the code window is 4 pages");
        self.gpu
            .mem()
            .write(PhysAddr::sys(0x90_0000), image)
            .unwrap();
    }

    /// Methods that launch the loaded code over `threads` threads.
    pub fn launch(&self, args_va: u64, threads: u32, flags: u32) -> Vec<u32> {
        self.launch_with_stack(args_va, threads, flags, 256)
    }

    /// [`Self::launch`] with `stack` bytes of stack per thread.
    pub fn launch_with_stack(
        &self,
        args_va: u64,
        threads: u32,
        flags: u32,
        stack: u32,
    ) -> Vec<u32> {
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

    pub fn u64_at(&self, at: PhysAddr) -> u64 {
        self.gpu.mem().read_u64(at).unwrap()
    }

    pub fn set_u64(&self, at: PhysAddr, v: u64) {
        self.gpu.mem().write_u64(at, v).unwrap();
    }

    /// Enables fault buffer `index` in system memory at 0x60_0000.
    pub fn fault_buffer(&self, index: usize, entries: u32) {
        let base = fault::FAULT_BUFFER_LO + fault::FAULT_BUFFER_STRIDE * index as u64;
        self.gpu.bar0_write(base, 0x60_0000 | (2 << 1) | 1);
        self.gpu.bar0_write(base + 16, (1 << 31) | entries);
    }

    pub fn replay_buffer(&self, entries: u32) {
        self.fault_buffer(fault::REPLAYABLE, entries);
    }

    pub fn replay_put(&self) -> u32 {
        self.gpu
            .bar0_read(fault::FAULT_BUFFER_LO + fault::FAULT_BUFFER_STRIDE + 12)
            & 0xf_ffff
    }

    /// Loads `double_kernel` with its arguments at `DATA_VA`: the input at
    /// `src`, the output in VRAM (`VID_VA`).
    pub fn load_double(&self, src: u64) {
        self.load_code(&double_kernel());
        self.set_u64(PhysAddr::sys(0x40_0000), src);
        self.set_u64(PhysAddr::sys(0x40_0008), VID_VA);
    }

    pub fn error_of(&self, ch: usize) -> Option<ErrorCode> {
        self.gpu
            .with_fifo(|f| f.channels[self.chans[ch].chid as usize].error)
    }
}

pub use rsvm_gpu::compute;

/// out[tid] = 2 * in[tid], through a push/pop on the thread's stack.
pub fn double_kernel() -> Vec<u32> {
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

/// Writes `v` at byte `off` of the data pages (mapped at `DATA_VA`).
pub fn data_u64(r: &Rig, off: u64, v: u64) {
    r.set_u64(PhysAddr::sys(0x40_0000 + off), v);
}

/// Builds `struct node { next, value }` nodes in the data pages, node `k` at
/// byte `at(k)` holding `value(k)`, linked in the order of `order`; returns
/// the head's GPU address.
pub fn scattered_list(
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
