// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! rsvm_rust: the SVM interface from Rust, through the `rsvm` library.
//!
//! The GPU walks data Rust built with its own allocator (`Box`, `Vec`) after
//! one call that mirrors the whole process; job errors arrive as typed
//! values; the library's RAII types leave nothing behind.

use rsvm::{
    igt::{Igt, Outcome, Skip},
    uapi, Device, ErrorCode, JobError, Kernel, Param, Push, Stacks, PAGE_SIZE,
};
use std::{io, ptr, time::Duration};

const TIMEOUT: Duration = Duration::from_secs(20);

/// `kernels/src/list_sum.c`'s node and arguments.
#[repr(C)]
struct Node {
    next: *const Node,
    value: u64,
}

#[repr(C)]
struct ListSumArgs {
    head: *const Node,
    sum: *mut u64,
    count: *mut u64,
}

/// `kernels/src/array_scale.c`'s arguments.
#[repr(C)]
struct ArrayScaleArgs {
    input: *const u64,
    output: *mut u64,
    count: u64,
    mul: u64,
    sum: *mut u64,
}

fn open() -> Result<Device, Skip> {
    Device::open().map_err(|e| Skip(format!("no rsvm device: {e}")))
}

fn kernel(name: &str) -> Kernel {
    Kernel::builtin(name).expect("a kernel of kernels/src")
}

fn errno<T>(r: io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().expect("an errno"),
    }
}

fn params() -> Outcome {
    let dev = open()?;
    let version = dev.param(Param::UapiVersion).unwrap();
    assert_eq!(version, u64::from(uapi::DRM_RSVM_UAPI_VERSION));
    let engines = dev.param(Param::Engines).unwrap();
    let both = u64::from(uapi::DRM_RSVM_ENGINE_COPY | uapi::DRM_RSVM_ENGINE_COMPUTE);
    assert_eq!(engines & both, both, "engines {engines:#x}");
    let kstart = dev.param(Param::KernelVaStart).unwrap();
    let limit = dev.param(Param::SvmVaLimit).unwrap();
    assert!(
        kstart > 0 && kstart < limit,
        "kernel window {kstart:#x}, limit {limit:#x}"
    );
    // A parameter past the last one is refused, as the header promises.
    assert_eq!(
        errno(dev.param_raw(Param::PtPages as u32 + 1)),
        libc::EINVAL
    );
    Ok(())
}

fn box_list() -> Outcome {
    let dev = open()?;
    let _mirror = dev.bind_process().unwrap();
    let mut head: *const Node = ptr::null();
    let mut want = 0;
    for i in 0..3000u64 {
        let value = i * 7 + 1;
        want += value;
        head = Box::into_raw(Box::new(Node { next: head, value }));
    }
    let mut res = Box::new([0u64; 2]);
    let args = Box::new(ListSumArgs {
        head,
        sum: &mut res[0],
        count: &mut res[1],
    });
    let k = kernel("list_sum");
    let stacks = Stacks::new(1, 4096);
    let mut p = Push::new();
    p.launch(&k, &*args, &stacks);
    dev.run(&p, TIMEOUT).unwrap();
    assert_eq!(res[0], want, "GPU sum");
    assert_eq!(res[1], 3000, "GPU count");
    free_list(args.head);
    Ok(())
}

/// Frees a list built from `Box::into_raw` nodes.
fn free_list(mut p: *const Node) {
    while !p.is_null() {
        // SAFETY: every node came from `Box::into_raw` and is freed once.
        let n = unsafe { Box::from_raw(p as *mut Node) };
        p = n.next;
    }
}

fn vec_scale() -> Outcome {
    let dev = open()?;
    let _mirror = dev.bind_process().unwrap();
    const N: usize = 1 << 20;
    let input: Vec<u64> = (0..N as u64).map(|i| i ^ 0x5a5a).collect();
    let mut output = vec![0u64; N];
    let mut sum = Box::new(0u64);
    let args = Box::new(ArrayScaleArgs {
        input: input.as_ptr(),
        output: output.as_mut_ptr(),
        count: N as u64,
        mul: 3,
        sum: &mut *sum,
    });
    let k = kernel("array_scale");
    let stacks = Stacks::new(16, 4096);
    let mut p = Push::new();
    p.launch(&k, &*args, &stacks);
    dev.run(&p, TIMEOUT).unwrap();
    for (i, (o, x)) in output.iter().zip(&input).enumerate() {
        assert_eq!(*o, x * 3 + i as u64, "element {i}");
    }
    assert_eq!(*sum, input.iter().sum::<u64>());
    Ok(())
}

fn copy_engine() -> Outcome {
    let dev = open()?;
    let _mirror = dev.bind_process().unwrap();
    let src: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut dst = vec![0u8; src.len() + 8];
    // Rust's heap is above the host semaphores' 40 bits (a static PIE loads
    // high): the copy engine's semaphore reaches it.
    let mut done = Box::new(0u32);
    let mut p = Push::new();
    p.copy(dst.as_mut_ptr(), src.as_ptr(), src.len() as u32)
        .release32(&mut *done, 0xc0de);
    dev.run(&p, TIMEOUT).unwrap();
    assert!(dst[..src.len()] == src[..], "copied bytes differ");
    assert_eq!(dst[src.len()..], [0; 8], "copied past the end");
    assert_eq!(*done, 0xc0de);
    // A host semaphore cannot reach that far: the driver refuses the job.
    let mut wide = Box::new(0u64);
    assert!(&*wide as *const u64 as u64 >= Push::HOST_SEMAPHORE_LIMIT);
    let mut p = Push::new();
    p.release(&mut *wide, 1);
    let ch = dev.channel().unwrap();
    assert_eq!(errno(ch.submit(&p)), libc::EINVAL);
    Ok(())
}

fn fault_is_typed() -> Outcome {
    let dev = open()?;
    let _mirror = dev.bind_process().unwrap();
    // SAFETY: a fresh anonymous mapping, unmapped below.
    let page = unsafe {
        libc::mmap(
            ptr::null_mut(),
            PAGE_SIZE,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    let args = Box::new(ArrayScaleArgs {
        input: page.cast(),
        output: ptr::null_mut(),
        count: 1,
        mul: 1,
        sum: ptr::null_mut(),
    });
    let k = kernel("array_scale");
    let stacks = Stacks::new(1, 4096);
    let mut p = Push::new();
    p.launch(&k, &*args, &stacks);
    let ch = dev.channel().unwrap();
    let seq = ch.submit(&p).unwrap();
    let e = ch.wait(seq, TIMEOUT).unwrap_err();
    assert!(
        matches!(
            e,
            JobError::Stopped {
                code: ErrorCode::Fault,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.fault_address(), Some(page as u64));
    // The stopped channel takes no more work; a new one does.
    assert_eq!(errno(ch.submit(&p)), libc::EIO);
    let mut ok = Push::new();
    let mut v = Box::new(0u32);
    ok.release32(&mut *v, 5);
    dev.run(&ok, TIMEOUT).unwrap();
    assert_eq!(*v, 5);
    // SAFETY: mapped above, no longer used.
    assert_eq!(unsafe { libc::munmap(page, PAGE_SIZE) }, 0);
    Ok(())
}

fn raii() -> Outcome {
    let baseline = open()?.param(Param::PtPages).unwrap();
    {
        let dev = open()?;
        let buf = rsvm::PageBuf::new(64 * PAGE_SIZE);
        let start = buf.addr() as usize;
        let b = dev.bind(start, buf.len(), true).unwrap();
        assert_eq!(errno(dev.bind(start, PAGE_SIZE, false)), libc::EEXIST);
        drop(b);
        // Dropping the binding unbound it: the range binds again.
        let b = dev.bind(start, buf.len(), false).unwrap();
        b.unbind().unwrap();
        let _mirror = dev.bind_process().unwrap();
        let ch = dev.channel().unwrap();
        let mut v = Box::new(0u32);
        let mut p = Push::new();
        p.release32(&mut *v, 9);
        let seq = ch.submit(&p).unwrap();
        ch.wait(seq, TIMEOUT).unwrap();
        assert_eq!(*v, 9);
        // The channel and the bindings drop here, before the device.
    }
    let after = open()?.param(Param::PtPages).unwrap();
    assert_eq!(after, baseline, "page-table pages left behind");
    Ok(())
}

fn main() {
    let mut igt = Igt::from_args();
    igt.subtest("params", params);
    igt.subtest("box-list", box_list);
    igt.subtest("vec-scale", vec_scale);
    igt.subtest("copy-engine", copy_engine);
    igt.subtest("fault-is-typed", fault_is_typed);
    igt.subtest("raii", raii);
    igt.finish();
}
