// SPDX-License-Identifier: GPL-2.0

//! The copy engine's class, `VOLTA_DMA_COPY_A` (`clc3b5.h`): its method
//! offsets and the `LAUNCH_DMA` word.
//!
//! Today only the user pushbuffer check reads it (a user copy may not use
//! physical addresses); the kernel's own copy channel for migration will
//! build its pushbuffers from these definitions.

use kernel::{
    bitfield,
    num::Bounded, //
};

/// The class of the copy engine.
pub(crate) const CLASS: u32 = 0xc3b5;

/// Methods of the class (byte offsets, as in `clc3b5.h`).
pub(crate) mod mthd {
    pub(crate) const LAUNCH_DMA: u32 = 0x300;
}

/// `LAUNCH_DMA_SRC_TYPE` / `_DST_TYPE`: how an address is translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddressType {
    /// Through the channel's address space.
    Virtual = 0,
    /// A physical address, in the aperture `SET_*_PHYS_MODE` names.
    Physical = 1,
}

impl From<Bounded<u32, 1>> for AddressType {
    fn from(v: Bounded<u32, 1>) -> Self {
        match *v {
            0 => Self::Virtual,
            _ => Self::Physical,
        }
    }
}

impl From<AddressType> for Bounded<u32, 1> {
    fn from(t: AddressType) -> Self {
        (t == AddressType::Physical).into()
    }
}

bitfield! {
    /// The `LAUNCH_DMA` method's data: what a launch does.
    pub(crate) struct LaunchDma(u32) {
        /// `DATA_TRANSFER_TYPE`: none, pipelined, non-pipelined.
        1:0 data_transfer_type;
        /// `FLUSH_ENABLE`.
        2:2 flush_enable => bool;
        /// `SEMAPHORE_TYPE`: none, one word, four words.
        4:3 semaphore_type;
        /// `INTERRUPT_TYPE`: none, blocking, non-blocking.
        6:5 interrupt_type;
        /// `SRC_MEMORY_LAYOUT`: 1 pitch.
        7:7 src_pitch => bool;
        /// `DST_MEMORY_LAYOUT`: 1 pitch.
        8:8 dst_pitch => bool;
        /// `MULTI_LINE_ENABLE`.
        9:9 multi_line => bool;
        /// `REMAP_ENABLE`: a memset through `SET_REMAP_*`.
        10:10 remap => bool;
        /// `SRC_TYPE`.
        12:12 src_type => AddressType;
        /// `DST_TYPE`.
        13:13 dst_type => AddressType;
    }
}

impl LaunchDma {
    /// Whether either side of the launch is a physical address.
    pub(crate) fn is_physical(self) -> bool {
        self.src_type() == AddressType::Physical || self.dst_type() == AddressType::Physical
    }
}
