// SPDX-License-Identifier: GPL-2.0

//! Test device for the kernel crate's HMM bindings, driven from user space.
//!
//! KUnit cannot `fork()`, `mprotect()` or clear soft-dirty bits, so the
//! notifier and `hmm_range_fault` paths those need are exercised through
//! `/dev/rsvm_hmm_test` by `igt-tests/rsvm_hmm_bindings.c`: a file mirrors
//! one range of its opener's address space with an
//! [`IntervalNotifier`] that records every invalidation, faults pages
//! through [`Range`] with read or write requests, and reports whether a
//! read started before an invalidation must retry.
//!
//! The ioctl ABI is in `igt-tests/lib/rsvm_hmm_test.h`.

use kernel::{
    fs::File,
    ioctl::{
        _IOR,
        _IOW,
        _IOWR, //
    },
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    mm::{
        hmm::{
            Range,
            Request, //
        },
        mmu_notifier::{
            Event,
            IntervalNotifier,
            IntervalNotifierOps,
            NotifierRange,
            ReadSeq, //
        }, //
    },
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

module! {
    type: HmmTestModule,
    name: "rsvm_hmm_test",
    authors: ["rsvm developers"],
    description: "User-space driven tests of the kernel crate's HMM bindings",
    license: "GPL",
}

/// `struct rsvm_hmm_test_range`: mirror `[addr, addr + len)`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct MirrorArgs {
    addr: u64,
    len: u64,
}

/// `struct rsvm_hmm_test_fault`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FaultArgs {
    addr: u64,
    len: u64,
    /// `RSVM_HMM_TEST_FAULT_WRITE` or 0.
    flags: u32,
    /// Out: pages the CPU maps.
    valid: u32,
    /// Out: pages the CPU maps writable.
    writable: u32,
    pad: u32,
}

/// `struct rsvm_hmm_test_events`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct EventsArgs {
    /// User pointer to `count` `struct rsvm_hmm_test_event`.
    ptr: u64,
    /// In: room; out: events returned (the log is emptied).
    count: u32,
    pad: u32,
}

/// `struct rsvm_hmm_test_event`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct EventRecord {
    event: u32,
    pad: u32,
    start: u64,
    end: u64,
}

// SAFETY: plain integers, no padding.
unsafe impl FromBytes for MirrorArgs {}
// SAFETY: as above.
unsafe impl AsBytes for MirrorArgs {}
// SAFETY: as above.
unsafe impl FromBytes for FaultArgs {}
// SAFETY: as above.
unsafe impl AsBytes for FaultArgs {}
// SAFETY: as above.
unsafe impl FromBytes for EventsArgs {}
// SAFETY: as above.
unsafe impl AsBytes for EventsArgs {}
// SAFETY: as above.
unsafe impl AsBytes for EventRecord {}

const MAGIC: u32 = b'H' as u32;
const MIRROR: u32 = _IOW::<MirrorArgs>(MAGIC, 0x00);
const FAULT: u32 = _IOWR::<FaultArgs>(MAGIC, 0x01);
const RETRY: u32 = _IOR::<u32>(MAGIC, 0x02);
const EVENTS: u32 = _IOWR::<EventsArgs>(MAGIC, 0x03);
const FAULT_WRITE: u32 = 1;

/// The uAPI number of an event.
fn event_code(e: Event) -> u32 {
    match e {
        Event::Unmap => 1,
        Event::Clear => 2,
        Event::ProtectionVma => 3,
        Event::ProtectionPage => 4,
        Event::SoftDirty => 5,
        Event::Release => 6,
        Event::Migrate { .. } => 7,
        Event::Exclusive { .. } => 8,
        Event::Unknown(n) => 0x100 + n,
    }
}

/// Records invalidations.
struct Recorder;

/// The log of invalidations (kept under the notifier lock).
#[derive(Default)]
struct Log {
    events: KVec<EventRecord>,
    lost: bool,
}

impl IntervalNotifierOps for Recorder {
    type State = Log;

    fn invalidate(&self, log: &mut Log, range: &NotifierRange<'_>) -> bool {
        let rec = EventRecord {
            event: event_code(range.event()),
            pad: 0,
            start: range.start() as u64,
            end: range.end() as u64,
        };
        if log.events.push(rec, GFP_ATOMIC).is_err() {
            log.lost = true;
        }
        true
    }
}

struct Inner {
    notifier: Option<Arc<IntervalNotifier<Recorder>>>,
    /// Sequence the last fault's result is valid at.
    seq: Option<ReadSeq>,
}

#[pin_data]
struct HmmTest {
    #[pin]
    inner: Mutex<Inner>,
}

#[pin_data]
struct HmmTestModule {
    #[pin]
    _misc: MiscDeviceRegistration<HmmTest>,
}

impl kernel::InPlaceModule for HmmTestModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"rsvm_hmm_test",
            }),
        })
    }
}

#[vtable]
impl MiscDevice for HmmTest {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                inner <- new_mutex!(Inner {
                    notifier: None,
                    seq: None,
                }),
            }),
            GFP_KERNEL,
        )
    }

    fn ioctl(me: Pin<&HmmTest>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let arg = UserPtr::from_addr(arg);
        match cmd {
            MIRROR => me.mirror(arg),
            FAULT => me.fault(arg),
            RETRY => me.retry(arg),
            EVENTS => me.events(arg),
            _ => Err(ENOTTY),
        }
        .map(|()| 0)
    }
}

impl HmmTest {
    fn mirror(&self, arg: UserPtr) -> Result {
        let a: MirrorArgs = UserSlice::new(arg, size_of::<MirrorArgs>())
            .reader()
            .read()?;
        let (addr, len) = (a.addr as usize, a.len as usize);
        if addr % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 || len == 0 {
            return Err(EINVAL);
        }
        let mut inner = self.inner.lock();
        if inner.notifier.is_some() {
            return Err(EEXIST);
        }
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        inner.notifier = Some(IntervalNotifier::new(
            mm,
            addr,
            len,
            Recorder,
            Log::default(),
        )?);
        Ok(())
    }

    fn notifier(&self) -> Result<Arc<IntervalNotifier<Recorder>>> {
        self.inner.lock().notifier.clone().ok_or(ENOENT)
    }

    fn fault(&self, arg: UserPtr) -> Result {
        let (mut reader, mut writer) = UserSlice::new(arg, size_of::<FaultArgs>()).reader_writer();
        let mut a: FaultArgs = reader.read()?;
        if a.flags & !FAULT_WRITE != 0 || a.pad != 0 {
            return Err(EINVAL);
        }
        let request = match a.flags {
            FAULT_WRITE => Request::Write,
            _ => Request::Read,
        };
        let n = self.notifier()?;
        let start = a.addr as usize;
        let end = start.checked_add(a.len as usize).ok_or(EINVAL)?;
        let mut range = Range::new(&n, start, end, request)?;
        let seq = range.fault(0)?;
        a.valid = range.pages().filter(|p| p.is_valid()).count() as u32;
        a.writable = range.pages().filter(|p| p.is_writable()).count() as u32;
        self.inner.lock().seq = Some(seq);
        writer.write(&a)
    }

    fn retry(&self, arg: UserPtr) -> Result {
        let n = self.notifier()?;
        let seq = self.inner.lock().seq.ok_or(ENOENT)?;
        // The authoritative check: would a mirror update made now, under
        // the notifier lock, have to start over?
        let retry = n.lock_if_unchanged(seq).is_none();
        // The lock-free hint agrees when nothing runs concurrently.
        if retry != n.check_retry(seq) {
            return Err(EIO);
        }
        UserSlice::new(arg, size_of::<u32>())
            .writer()
            .write(&u32::from(retry))
    }

    fn events(&self, arg: UserPtr) -> Result {
        let (mut reader, mut writer) = UserSlice::new(arg, size_of::<EventsArgs>()).reader_writer();
        let mut a: EventsArgs = reader.read()?;
        if a.pad != 0 {
            return Err(EINVAL);
        }
        let n = self.notifier()?;
        // Not under the notifier lock: copying out may fault on the range.
        let events = {
            let mut log = n.lock();
            if core::mem::take(&mut log.lost) {
                log.events.clear();
                return Err(ENOSPC);
            }
            core::mem::take(&mut log.events)
        };
        let count = events.len().min(a.count as usize);
        let mut out = UserSlice::new(
            UserPtr::from_addr(a.ptr as usize),
            count * size_of::<EventRecord>(),
        )
        .writer();
        for e in &events[..count] {
            out.write(e)?;
        }
        a.count = count as u32;
        writer.write(&a)
    }
}
