// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Pushbuffers: the NVIDIA method stream a job is made of.

use crate::{uapi, Kernel, Stacks};

/// Host (subchannel-independent) methods this library emits.
mod host {
    pub const SEM_ADDR_LO: u32 = 0x05c;
    pub const SEM_EXECUTE: u32 = 0x06c;
    /// SEM_EXECUTE: operation RELEASE, 64-bit payload.
    pub const SEM_RELEASE_64: u32 = 1 | (1 << 24);
}

/// Methods of the model's compute class (0x52c0).
mod compute {
    pub const SET_CODE_ADDRESS_UPPER: u32 = 0x200;
    pub const SET_GRID_SIZE: u32 = 0x220;
    pub const LAUNCH: u32 = 0x300;
}

/// Methods of the copy engine's class (0xc3b5).
mod copy {
    pub const OFFSET_IN_UPPER: u32 = 0x400;
    pub const LINE_LENGTH_IN: u32 = 0x418;
    pub const LAUNCH_DMA: u32 = 0x300;
    pub const SET_SEMAPHORE_A: u32 = 0x240;
    /// LAUNCH_DMA: no transfer, one-word semaphore release, flush.
    pub const LAUNCH_RELEASE_ONE_WORD: u32 = (1 << 2) | (1 << 3);
    /// LAUNCH_DMA: non-pipelined transfer, flush, pitch source and
    /// destination, virtual addresses.
    pub const LAUNCH_PITCH_VIRTUAL: u32 = 2 | (1 << 2) | (1 << 7) | (1 << 8);
}

/// A job being built. Addresses in it are GPU virtual addresses, which are
/// the process's own: what they point to must stay alive until the job
/// completed.
#[derive(Debug, Default, Clone)]
pub struct Push {
    dw: Vec<u32>,
}

fn split(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

impl Push {
    /// An empty pushbuffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The dwords built so far.
    pub fn dwords(&self) -> &[u32] {
        &self.dw
    }

    /// Forgets everything built so far.
    pub fn clear(&mut self) {
        self.dw.clear();
    }

    /// An incrementing method header (method, method + 4, ...) and its data.
    pub fn methods(&mut self, subch: u32, method: u32, data: &[u32]) -> &mut Self {
        assert!(subch < 8 && method < 0x8000 && method.is_multiple_of(4) && data.len() < 0x2000);
        self.dw
            .push((1 << 29) | ((data.len() as u32) << 16) | (subch << 13) | (method >> 2));
        self.dw.extend_from_slice(data);
        self
    }

    /// One method.
    pub fn method(&mut self, subch: u32, method: u32, data: u32) -> &mut Self {
        self.methods(subch, method, &[data])
    }

    /// Runs `kernel` on `threads` threads with argument pointer `args`; each
    /// thread gets its own slice of `stacks`.
    pub fn launch<T>(&mut self, kernel: &Kernel, args: *const T, stacks: &Stacks) -> &mut Self {
        self.launch_threads(kernel, args, stacks, stacks.threads())
    }

    /// As [`Push::launch`], on the first `threads` of `stacks`' threads.
    pub fn launch_threads<T>(
        &mut self,
        kernel: &Kernel,
        args: *const T,
        stacks: &Stacks,
        threads: u32,
    ) -> &mut Self {
        assert!(threads >= 1 && threads <= stacks.threads());
        let (ch, cl) = split(kernel.addr());
        let (ah, al) = split(args as u64);
        let (sh, sl) = split(stacks.buf.addr());
        let sub = uapi::DRM_RSVM_SUBCHANNEL_COMPUTE;
        // SET_CODE_ADDRESS_UPPER .. SET_STACK_SIZE are consecutive.
        self.methods(
            sub,
            compute::SET_CODE_ADDRESS_UPPER,
            &[ch, cl, ah, al, sh, sl, stacks.per_thread],
        )
        .method(sub, compute::SET_GRID_SIZE, threads)
        .method(sub, compute::LAUNCH, 0)
    }

    /// Highest address + 1 a host semaphore reaches ([`Push::release`]).
    pub const HOST_SEMAPHORE_LIMIT: u64 = 1 << 40;

    /// Writes the 64-bit `value` to `addr` when the job gets here, with a
    /// host semaphore: `addr` must be below [`Push::HOST_SEMAPHORE_LIMIT`]
    /// (the driver refuses the job otherwise); [`Push::release32`] reaches
    /// any address.
    pub fn release(&mut self, addr: *mut u64, value: u64) -> &mut Self {
        let (ah, al) = split(addr as u64);
        let (vh, vl) = split(value);
        // SEM_ADDR_LO, SEM_ADDR_HI, SEM_PAYLOAD_LO, SEM_PAYLOAD_HI.
        self.methods(0, host::SEM_ADDR_LO, &[al, ah, vl, vh])
            .method(0, host::SEM_EXECUTE, host::SEM_RELEASE_64)
    }

    /// Writes the 32-bit `value` to `addr` with the copy engine, after the
    /// copies queued before it: any GPU virtual address.
    pub fn release32(&mut self, addr: *mut u32, value: u32) -> &mut Self {
        let (ah, al) = split(addr as u64);
        let sub = uapi::DRM_RSVM_SUBCHANNEL_COPY;
        // SET_SEMAPHORE_A (upper), _B (lower), SET_SEMAPHORE_PAYLOAD.
        self.methods(sub, copy::SET_SEMAPHORE_A, &[ah, al, value])
            .method(sub, copy::LAUNCH_DMA, copy::LAUNCH_RELEASE_ONE_WORD)
    }

    /// Copies `len` bytes from `src` to `dst` with the copy engine.
    pub fn copy(&mut self, dst: *mut u8, src: *const u8, len: u32) -> &mut Self {
        let (sh, sl) = split(src as u64);
        let (dh, dl) = split(dst as u64);
        let sub = uapi::DRM_RSVM_SUBCHANNEL_COPY;
        self.methods(sub, copy::OFFSET_IN_UPPER, &[sh, sl, dh, dl])
            .method(sub, copy::LINE_LENGTH_IN, len)
            .method(sub, copy::LAUNCH_DMA, copy::LAUNCH_PITCH_VIRTUAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incrementing_header_layout() {
        let mut p = Push::new();
        p.methods(4, 0x400, &[1, 2, 3]);
        // SEC_OP 1 (incrementing) at 31:29, count 28:16, subchannel 15:13,
        // method dword address 11:0.
        assert_eq!(p.dwords(), &[0x2003_8100, 1, 2, 3]);
    }

    #[test]
    fn release_is_addr_payload_then_execute() {
        let mut p = Push::new();
        p.release(0x12_3456_7000 as *mut u64, 0x1_0000_0002);
        assert_eq!(
            p.dwords(),
            &[
                0x2004_0017,
                0x3456_7000,
                0x12,
                2,
                1,
                0x2001_001b,
                0x0100_0001
            ]
        );
    }

    #[test]
    fn copy_targets_the_copy_subchannel() {
        let mut p = Push::new();
        p.copy(0x2000 as *mut u8, 0x1000 as *const u8, 64);
        let d = p.dwords();
        assert_eq!(d[0] >> 13 & 7, uapi::DRM_RSVM_SUBCHANNEL_COPY);
        assert_eq!(&d[1..5], &[0, 0x1000, 0, 0x2000]);
        assert_eq!(d[6], 64);
        assert_eq!(d[8] & 3, 2, "non-pipelined");
        assert_eq!(d[8] >> 12 & 3, 0, "virtual addressing");
    }

    #[test]
    fn launch_runs_the_threads_asked_for() {
        let k = Kernel::new(&[0x73, 0, 0, 0]);
        // 3 x 2 KiB rounds up to two pages; still 3 threads.
        let stacks = Stacks::new(3, 2048);
        let mut p = Push::new();
        p.launch(&k, std::ptr::null::<u8>(), &stacks);
        let d = p.dwords();
        assert_eq!(&d[1..3], &[(k.addr() >> 32) as u32, k.addr() as u32]);
        assert_eq!(d[7], 2048, "stack size per thread");
        assert_eq!(d[9], 3, "grid size");
    }

    #[test]
    fn release32_is_a_copy_engine_semaphore() {
        let mut p = Push::new();
        p.release32(0x7f12_3456_7000 as *mut u32, 9);
        let d = p.dwords();
        assert_eq!(
            d[0], 0x2003_8090,
            "SET_SEMAPHORE_A..PAYLOAD on subchannel 4"
        );
        assert_eq!(&d[1..4], &[0x7f12, 0x3456_7000, 9]);
        assert_eq!(d[5] >> 3 & 3, 1, "one-word semaphore");
        assert_eq!(d[5] & 3, 0, "no transfer");
    }

    #[test]
    fn ioctl_numbers_follow_the_drm_encoding() {
        // _IOC(dir, 'd', DRM_COMMAND_BASE + nr, size): dir 31:30, size
        // 29:16, type 15:8, nr 7:0; bindgen read them from the header's
        // enum, this recomputes them from the structure sizes.
        let ioc = |dir: u32, nr: u32, size: usize| {
            dir << 30 | (size as u32) << 16 | 0x64 << 8 | (0x40 + nr)
        };
        use std::mem::size_of;
        assert_eq!(
            uapi::DRM_IOCTL_RSVM_GET_PARAM,
            ioc(3, 0, size_of::<uapi::drm_rsvm_get_param>())
        );
        assert_eq!(
            uapi::DRM_IOCTL_RSVM_SVM_BIND,
            ioc(1, 1, size_of::<uapi::drm_rsvm_svm_bind>())
        );
        assert_eq!(uapi::DRM_IOCTL_RSVM_EXEC, ioc(3, 4, 32));
        assert_eq!(uapi::DRM_IOCTL_RSVM_WAIT, ioc(3, 5, 48));
    }
}
