// SPDX-License-Identifier: GPL-2.0

//! Per-open-file state and the ioctl handlers.
//!
//! A file has one GPU VM, made by its first VM ioctl for the calling
//! process, and the channels created in it. Every field of every argument is
//! checked before anything changes.

use kernel::{
    drm::{
        self,
        Registered, //
    },
    mm::MmWithUser,
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::Relaxed,
        Arc,
        Mutex, //
    },
    time::{
        msecs_to_jiffies,
        Jiffies, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi, //
};

use crate::{
    driver::{
        RsvmDevice,
        RsvmDriver,
        RsvmRegData, //
    },
    fifo,
    mmu,
    vm::{
        layout,
        Channel,
        Vm, //
    }, //
};

/// Channels one file may have.
const MAX_CHANNELS_PER_FILE: usize = fifo::MAX_CHANNELS_PER_VM;

/// The VM and channels of a file.
#[derive(Default)]
struct FileState {
    vm: Option<Arc<Vm>>,
    /// Channel handle `h` is index `h - 1`.
    channels: KVec<Option<Arc<Channel>>>,
}

/// State of one open DRM file.
#[pin_data]
pub(crate) struct File {
    #[pin]
    state: Mutex<FileState>,
}

impl drm::file::DriverFile for File {
    type Driver = RsvmDriver;

    fn open(_dev: &RsvmDevice) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                state <- new_mutex!(FileState::default()),
            }),
            GFP_KERNEL,
        )
    }
}

/// The calling process's address space.
fn current_mm() -> Result<ARef<MmWithUser>> {
    let task = kernel::current!();
    let mm = task.mm().ok_or(EINVAL)?;
    Ok(ARef::from(mm))
}

impl File {
    /// The file's VM for the calling process: made on first use, refused
    /// (`EACCES`) to any other process.
    fn vm(&self, reg: &RsvmRegData<'_>, mm: &MmWithUser) -> Result<Arc<Vm>> {
        let mut st = self.state.lock();
        if let Some(vm) = &st.vm {
            return if vm.is_owner(mm) {
                Ok(vm.clone())
            } else {
                Err(EACCES)
            };
        }
        let vm = Vm::new(reg.gpu.pdev.as_ref(), &reg.gpu.shared, mm)?;
        st.vm = Some(vm.clone());
        Ok(vm)
    }

    /// The slot of the channel with `handle`, checking that the caller owns
    /// the VM.
    fn channel_slot(st: &mut FileState, handle: u32) -> Result<&mut Option<Arc<Channel>>> {
        let mm = current_mm()?;
        match &st.vm {
            Some(vm) if vm.is_owner(&mm) => {}
            Some(_) => return Err(EACCES),
            None => return Err(ENOENT),
        }
        let i = (handle as usize).checked_sub(1).ok_or(ENOENT)?;
        st.channels.get_mut(i).filter(|c| c.is_some()).ok_or(ENOENT)
    }

    /// The channel with `handle`, checking that the caller owns the VM.
    fn channel(&self, handle: u32) -> Result<Arc<Channel>> {
        let mut st = self.state.lock();
        Self::channel_slot(&mut st, handle)?.clone().ok_or(ENOENT)
    }

    /// `DRM_IOCTL_RSVM_GET_PARAM`: reports one device parameter.
    pub(crate) fn get_param(
        _dev: &RsvmDevice<Registered>,
        reg: &RsvmRegData<'_>,
        args: &mut uapi::drm_rsvm_get_param,
        _file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let hw = &reg.gpu.hw;
        let spec = reg.gpu.spec();
        args.value = match args.param {
            uapi::DRM_RSVM_PARAM_CHIP_ID => spec.boot0.into(),
            uapi::DRM_RSVM_PARAM_VRAM_SIZE => spec.vram_size,
            uapi::DRM_RSVM_PARAM_VA_BITS => layout::VA_BITS.into(),
            uapi::DRM_RSVM_PARAM_PAGE_SIZES => layout::PAGE_SIZES,
            uapi::DRM_RSVM_PARAM_UAPI_VERSION => uapi::DRM_RSVM_UAPI_VERSION.into(),
            uapi::DRM_RSVM_PARAM_FIRMWARE_VERSION => reg.gpu.firmware_version().into(),
            uapi::DRM_RSVM_PARAM_KERNEL_VA_START => layout::KERNEL_VA_START,
            uapi::DRM_RSVM_PARAM_KERNEL_VA_SIZE => layout::KERNEL_VA_SIZE,
            uapi::DRM_RSVM_PARAM_SVM_VA_LIMIT => layout::SVM_VA_LIMIT,
            uapi::DRM_RSVM_PARAM_ENGINES => {
                let mut e = 0;
                if hw.has_copy() {
                    e |= uapi::DRM_RSVM_ENGINE_COPY;
                }
                if hw.has_compute() {
                    e |= uapi::DRM_RSVM_ENGINE_COMPUTE;
                }
                e.into()
            }
            uapi::DRM_RSVM_PARAM_PT_PAGES => mmu::PT_PAGES.load(Relaxed),
            _ => return Err(EINVAL),
        };
        Ok(0)
    }

    /// `DRM_IOCTL_RSVM_SVM_BIND`: mirrors or stops mirroring a range.
    pub(crate) fn svm_bind(
        _dev: &RsvmDevice<Registered>,
        reg: &RsvmRegData<'_>,
        args: &mut uapi::drm_rsvm_svm_bind,
        file: &drm::File<File>,
    ) -> Result<u32> {
        let this = file.inner();
        let mm = current_mm()?;
        match args.op {
            uapi::DRM_RSVM_SVM_OP_BIND => {
                if args.flags & !uapi::DRM_RSVM_SVM_BIND_POPULATE != 0 {
                    return Err(EINVAL);
                }
                let populate = args.flags & uapi::DRM_RSVM_SVM_BIND_POPULATE != 0;
                let vm = this.vm(reg, &mm)?;
                vm.bind(
                    reg.gpu.pdev.as_ref(),
                    &mm,
                    args.start,
                    args.length,
                    populate,
                )?;
            }
            uapi::DRM_RSVM_SVM_OP_UNBIND => {
                if args.flags != 0 {
                    return Err(EINVAL);
                }
                this.vm(reg, &mm)?.unbind(args.start, args.length)?;
            }
            _ => return Err(EINVAL),
        }
        Ok(0)
    }

    /// `DRM_IOCTL_RSVM_CHANNEL_CREATE`.
    pub(crate) fn channel_create(
        _dev: &RsvmDevice<Registered>,
        reg: &RsvmRegData<'_>,
        args: &mut uapi::drm_rsvm_channel_create,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.flags != 0 {
            return Err(EINVAL);
        }
        let this = file.inner();
        let mm = current_mm()?;
        let vm = this.vm(reg, &mm)?;
        {
            let st = this.state.lock();
            if st.channels.iter().flatten().count() >= MAX_CHANNELS_PER_FILE {
                return Err(ENOSPC);
            }
        }
        let ch = vm.new_channel(reg.gpu.pdev.as_ref())?;
        let mut st = this.state.lock();
        // Again under the lock: a concurrent create may have taken the
        // last slot meanwhile. The channel is stopped outside the lock.
        if st.channels.iter().flatten().count() >= MAX_CHANNELS_PER_FILE {
            drop(st);
            drop(ch);
            return Err(ENOSPC);
        }
        let i = match st.channels.iter().position(Option::is_none) {
            Some(i) => {
                st.channels[i] = Some(ch);
                i
            }
            None => {
                st.channels.push(Some(ch), GFP_KERNEL)?;
                st.channels.len() - 1
            }
        };
        args.handle = (i + 1) as u32;
        Ok(0)
    }

    /// `DRM_IOCTL_RSVM_CHANNEL_DESTROY`.
    pub(crate) fn channel_destroy(
        _dev: &RsvmDevice<Registered>,
        _reg: &RsvmRegData<'_>,
        args: &mut uapi::drm_rsvm_channel_destroy,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let this = file.inner();
        let ch = {
            let mut st = this.state.lock();
            Self::channel_slot(&mut st, args.handle)?.take()
        };
        // Stopped and freed once the last user (a waiter) lets go.
        drop(ch);
        Ok(0)
    }

    /// `DRM_IOCTL_RSVM_EXEC`.
    pub(crate) fn exec(
        _dev: &RsvmDevice<Registered>,
        _reg: &RsvmRegData<'_>,
        args: &mut uapi::drm_rsvm_exec,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.flags != 0 || args.pad != 0 {
            return Err(EINVAL);
        }
        let dwords = args.dwords as usize;
        if dwords == 0 || dwords > uapi::DRM_RSVM_EXEC_MAX_DWORDS as usize {
            return Err(EINVAL);
        }
        let ch = file.inner().channel(args.channel)?;
        // One copy from user memory for the whole pushbuffer.
        let mut bytes = KVec::<u8>::with_capacity(dwords * 4, GFP_KERNEL)?;
        UserSlice::new(UserPtr::from_addr(args.push as usize), dwords * 4)
            .read_all(&mut bytes, GFP_KERNEL)?;
        let mut push = KVec::<u32>::with_capacity(dwords, GFP_KERNEL)?;
        for w in bytes.chunks_exact(4) {
            push.push(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]), GFP_KERNEL)?;
        }
        args.seqno = ch.exec(&push)?;
        Ok(0)
    }

    /// `DRM_IOCTL_RSVM_WAIT`.
    pub(crate) fn wait(
        _dev: &RsvmDevice<Registered>,
        _reg: &RsvmRegData<'_>,
        args: &mut uapi::drm_rsvm_wait,
        file: &drm::File<File>,
    ) -> Result<u32> {
        args.error = uapi::DRM_RSVM_ERROR_NONE;
        args.error_info = 0;
        args.fault_address = 0;
        args.result_flags = 0;
        if args.flags != 0 || args.pad != 0 || args.timeout_ns < 0 {
            return Err(EINVAL);
        }
        let ch = file.inner().channel(args.channel)?;
        let ms = (args.timeout_ns as u64).div_ceil(1_000_000);
        let timeout: Jiffies = msecs_to_jiffies(ms.min(u64::from(u32::MAX / 2)) as u32);
        let res = ch.wait(args.seqno, timeout);
        if res == Err(EIO) {
            if let Some((code, info)) = ch.error() {
                args.error = code;
                args.error_info = info as u32;
                // For these two the detail is an address.
                match code {
                    uapi::DRM_RSVM_ERROR_FAULT => {
                        args.error_info = (info >> 12) as u32;
                        args.fault_address = info & !0xfff;
                        args.result_flags = uapi::DRM_RSVM_WAIT_FAULT_ADDRESS_VALID;
                    }
                    uapi::DRM_RSVM_ERROR_MISALIGNED => {
                        args.fault_address = info;
                        args.result_flags = uapi::DRM_RSVM_WAIT_FAULT_ADDRESS_VALID;
                    }
                    _ => {}
                }
            }
        }
        res.map(|()| 0)
    }
}
