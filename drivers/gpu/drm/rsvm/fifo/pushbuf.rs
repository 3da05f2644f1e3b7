// SPDX-License-Identifier: GPL-2.0

//! Pushbuffers: the method header (`NV_FIFO_DMA_*`, `dev_ram.ref`), the host
//! methods (`clc36f.h`), and the check a user pushbuffer passes before the
//! GPU sees it.

use kernel::{
    bitfield,
    num::Bounded,
    prelude::*,
    uapi, //
};

use crate::ce;

/// The class of the compute engine (model-private, `hardware.rst`).
pub(crate) const CLASS_COMPUTE: u32 = 0x52c0;

/// Host methods (`clc36f.h`), byte offsets.
pub(crate) mod mthd {
    pub(crate) const SET_OBJECT: u32 = 0x000;
    pub(crate) const NOP: u32 = 0x008;
    pub(crate) const NON_STALL_INTERRUPT: u32 = 0x020;
    pub(crate) const SET_REFERENCE: u32 = 0x050;
    pub(crate) const SEM_ADDR_LO: u32 = 0x05c;
    pub(crate) const SEM_ADDR_HI: u32 = 0x060;
    pub(crate) const SEM_PAYLOAD_LO: u32 = 0x064;
    pub(crate) const SEM_PAYLOAD_HI: u32 = 0x068;
    pub(crate) const SEM_EXECUTE: u32 = 0x06c;
    pub(crate) const WFI: u32 = 0x078;
    /// First method of the engine's class (below: host methods).
    pub(crate) const ENGINE_BASE: u32 = 0x100;
}

/// `SEM_EXECUTE`: release, 64-bit payload.
pub(crate) const SEM_RELEASE_64: u32 = 1 | (1 << 24);

/// `SEC_OP` of a method header: how the methods after it take their data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecOp {
    /// `INC_METHOD`: `count` data words to consecutive methods.
    Inc = 1,
    /// `NON_INC_METHOD`: `count` data words to one method.
    NonInc = 3,
    /// `IMMD_DATA_METHOD`: the `count` field is the data, no words follow.
    Immediate = 4,
    /// `ONE_INC`: the first word to the method, the rest to the next one.
    OneInc = 5,
}

impl TryFrom<Bounded<u32, 3>> for SecOp {
    type Error = Error;

    fn try_from(v: Bounded<u32, 3>) -> Result<Self> {
        match *v {
            1 => Ok(Self::Inc),
            3 => Ok(Self::NonInc),
            4 => Ok(Self::Immediate),
            5 => Ok(Self::OneInc),
            // GRP0/GRP2 opcodes and the reserved ones: not for user work.
            _ => Err(EINVAL),
        }
    }
}

impl From<SecOp> for Bounded<u32, 3> {
    fn from(op: SecOp) -> Self {
        match op {
            SecOp::Inc => Bounded::<u32, _>::new::<1>(),
            SecOp::NonInc => Bounded::<u32, _>::new::<3>(),
            SecOp::Immediate => Bounded::<u32, _>::new::<4>(),
            SecOp::OneInc => Bounded::<u32, _>::new::<5>(),
        }
    }
}

bitfield! {
    /// A method header.
    pub(crate) struct Header(u32) {
        /// `SEC_OP`.
        31:29 sec_op ?=> SecOp;
        /// `METHOD_COUNT`, or the immediate data.
        28:16 count;
        /// `METHOD_SUBCHANNEL`.
        15:13 subchannel;
        /// `METHOD_ADDRESS`: the method's byte offset >> 2.
        11:0 address;
    }
}

impl Header {
    /// An `INC_METHOD` header for `count` words to `method` of `subch`.
    pub(crate) fn inc(subch: u32, method: u32, count: u32) -> Result<u32> {
        Ok(Self::zeroed()
            .with_sec_op(SecOp::Inc)
            .try_with_count(count)?
            .try_with_subchannel(subch)?
            .try_with_address(method >> 2)?
            .into_raw())
    }

    /// The method's byte offset.
    fn method(self) -> u32 {
        self.address().get() << 2
    }
}

/// Method state a job's check tracks.
#[derive(Default)]
struct SemState {
    lo: Option<u32>,
    hi: Option<u32>,
}

/// Whether userspace may send `data` to `method` of `subch`; semaphores
/// must lie below `sem_limit`.
fn check_method(subch: u32, method: u32, data: u32, sem: &mut SemState, sem_limit: u64) -> Result {
    if method < mthd::ENGINE_BASE {
        return match method {
            mthd::NOP | mthd::NON_STALL_INTERRUPT | mthd::SET_REFERENCE | mthd::WFI => Ok(()),
            mthd::SEM_PAYLOAD_LO | mthd::SEM_PAYLOAD_HI => Ok(()),
            mthd::SEM_ADDR_LO => {
                sem.lo = Some(data);
                Ok(())
            }
            mthd::SEM_ADDR_HI => {
                sem.hi = Some(data);
                Ok(())
            }
            mthd::SEM_EXECUTE => {
                let (Some(lo), Some(hi)) = (sem.lo, sem.hi) else {
                    return Err(EINVAL);
                };
                // Semaphore addresses have 40 bits: refuse what the host
                // would silently truncate.
                if hi > 0xff {
                    return Err(EINVAL);
                }
                let addr = (u64::from(hi) << 32) | u64::from(lo & !3);
                // The payload and the timestamp after it: 16 bytes.
                if addr + 16 > sem_limit {
                    return Err(EINVAL);
                }
                Ok(())
            }
            // SET_OBJECT, MEM_OP (TLB and fault control), CLEAR_FAULTED and
            // everything else is the kernel's.
            _ => Err(EINVAL),
        };
    }
    match subch {
        uapi::DRM_RSVM_SUBCHANNEL_COMPUTE => Ok(()),
        uapi::DRM_RSVM_SUBCHANNEL_COPY => {
            if method == ce::mthd::LAUNCH_DMA && ce::LaunchDma::from(data).is_physical() {
                return Err(EINVAL);
            }
            Ok(())
        }
        _ => Err(EINVAL),
    }
}

/// Checks a user pushbuffer: well-formed headers, and only methods a user
/// may send (see `check_method`); no semaphore at or above `sem_limit` (the
/// kernel's window).
pub(crate) fn check_push(words: &[u32], sem_limit: u64) -> Result {
    let mut sem = SemState::default();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        if w == 0 {
            continue;
        }
        let h = Header::from(w);
        let op = h.sec_op()?;
        let count = h.count().get() as usize;
        let subch = h.subchannel().get();
        let method = h.method();
        if op == SecOp::Immediate {
            check_method(subch, method, count as u32, &mut sem, sem_limit)?;
            continue;
        }
        let data = words.get(i..i + count).ok_or(EINVAL)?;
        if count == 0 {
            return Err(EINVAL);
        }
        for (k, d) in data.iter().enumerate() {
            let m = match (op, k) {
                (SecOp::Inc, k) => method + 4 * k as u32,
                (SecOp::OneInc, 0) | (SecOp::NonInc, _) => method,
                _ => method + 4,
            };
            check_method(subch, m, *d, &mut sem, sem_limit)?;
        }
        i += count;
    }
    Ok(())
}
