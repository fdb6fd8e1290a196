//! The service's memory between runs: what the start and each run used is
//! handed back to the system once nothing is running, so that a service that
//! is idle most of the week holds only what idling needs.
//!
//! Two kinds of memory stay behind after work without this:
//! - **Freed heap**: glibc keeps freed memory in its arenas (one per thread
//!   that allocated, up to eight per core). [`limit_arenas`] caps them at
//!   two and keeps large blocks out of them, [`release`] trims them
//!   (`malloc_trim`). The service kept 149 MB after a big run's 312 MB
//!   peak before it trimmed. glibc also raises the size from which a block
//!   is mapped on its own (128 KiB at first) to the largest such block
//!   freed, up to 32 MiB, and then the top of a thread's arena may keep
//!   twice that, which trimming does not return (the state read on two
//!   threads frees blocks of tens of MiB): fixed, a large block is
//!   unmapped when freed, whatever came before. And what a run's tasks
//!   free just after it ends is trimmed by a second release 2 s later:
//!   without it, 4 of 10 runs of a 1,000,000-assignment job left 21–48
//!   MiB of heap behind (2.2–4.5× the idle service), with it none of 6.
//! - **Pages of the binary**: the start (config check, the dry render of
//!   every delivery, TLS and SQLite set-up) and each run read in code and
//!   read-only data that idling never touches, and the kernel maps them in
//!   64 KiB at a time: 12 of the 25 MiB an idle service with 10 jobs held
//!   were its own code, of which idling uses 2–3 MiB. [`release`] unmaps
//!   the clean read-only mappings of the executable (`MADV_DONTNEED`); the
//!   page cache keeps the pages, unmapped, so the kernel can reclaim them
//!   first, and the next run maps back what it needs without reading the disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// At most this many glibc malloc arenas. The service has a few threads
/// (tokio's workers and its blocking pool); each arena keeps its own free
/// memory, so fewer arenas leave less behind after a run.
const ARENAS: i32 = 2;

/// Blocks at least this large are mapped on their own, and unmapped when
/// freed: glibc's first threshold, fixed (see the module's documentation).
const MAPPED_FROM: i32 = 128 * 1024;

/// Caps glibc's malloc arenas at 2 (`ARENAS`) and fixes the size from
/// which a block is mapped on its own (`MAPPED_FROM`). Call before
/// starting threads (before the tokio runtime): a thread picks its arena
/// at its first malloc.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc tunables; M_ARENA_MAX and
    // M_MMAP_THRESHOLD have no precondition (a threshold set by hand
    // also stops glibc from moving it).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MAPPED_FROM);
    }
}

/// Counts the work in flight (runs, mirror syncs); when the last one ends,
/// memory is [`release`]d. Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct Quiet(Arc<AtomicUsize>);

impl Quiet {
    /// Marks work as started; when the returned guard drops and no other
    /// work is in flight, memory is released. Releasing while other work
    /// runs would only unmap pages it maps right back.
    pub fn busy(&self) -> Busy {
        self.0.fetch_add(1, Ordering::SeqCst);
        Busy(self.0.clone())
    }
}

/// Work in flight; see [`Quiet::busy`].
#[derive(Debug)]
pub struct Busy(Arc<AtomicUsize>);

/// How long after the last work ends memory is released a second time.
const AGAIN_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.fetch_sub(1, Ordering::SeqCst) == 1 {
            release();
            // Again a little later, if still quiet: what tasks of the run
            // free after it ends (a blocking task's leftovers, a send's
            // buffers) is handed back too, not kept until the next run.
            let count = Arc::clone(&self.0);
            let _ = std::thread::Builder::new()
                .name("trainwatch-release".into())
                .spawn(move || {
                    std::thread::sleep(AGAIN_AFTER);
                    if count.load(Ordering::SeqCst) == 0 {
                        release();
                    }
                });
        }
    }
}

/// Hands freed heap and the binary's no-longer-used pages back to the
/// system (see the module's documentation).
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it has no
    // preconditions and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    unmap_clean_code();
}

/// `MADV_DONTNEED` on each mapping of the executable that is read-only and
/// holds no private (copy-on-write) page: its code and read-only data, as
/// the file has them. A dropped page of such a mapping reads back the same
/// from the file, so the program cannot tell. Mappings with private pages
/// (the relocated data, which is read-only after the loader's RELRO) are
/// left alone: dropping those would undo the relocations.
#[cfg(target_os = "linux")]
fn unmap_clean_code() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let exe = exe.to_string_lossy();
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, end) in clean_read_only_mappings(&smaps, &exe) {
        // SAFETY: the range is one whole mapping of this process, read-only
        // and file-backed with no private page (checked just above, and a
        // read-only mapping cannot gain one without an mprotect, which this
        // program never does on its executable); MADV_DONTNEED on it only
        // drops page-table entries, and each page faults back in from the
        // page cache with the same contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The `(start, end)` of each mapping of `path` in `smaps` (the text of
/// `/proc/PID/smaps`) that is not writable and has no anonymous page.
#[cfg(any(target_os = "linux", test))]
fn clean_read_only_mappings(smaps: &str, path: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    // The mapping being read: its range, if it is one of `path`'s read-only ones.
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            // A mapping's header: "start-end perms offset dev inode path".
            let perms = fields.next().unwrap_or_default();
            let name = fields.nth(3).unwrap_or_default();
            let read_only = perms.starts_with('r') && perms.as_bytes().get(1) == Some(&b'-');
            current = (read_only && name == path).then_some((start, end));
        } else if first == "Anonymous:"
            && let Some(range) = current.take()
            && fields.next() == Some("0")
        {
            found.push(range);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0100000 r--p 00000000 08:01 42 /usr/bin/trainwatch
Rss:                 400 kB
Anonymous:             0 kB
55d0a0100000-55d0a0900000 r-xp 00100000 08:01 42 /usr/bin/trainwatch
Rss:                9000 kB
Anonymous:             0 kB
55d0a0900000-55d0a0a00000 r--p 00900000 08:01 42 /usr/bin/trainwatch
Rss:                1800 kB
Anonymous:          1800 kB
55d0a0a00000-55d0a0a10000 rw-p 00a00000 08:01 42 /usr/bin/trainwatch
Rss:                  40 kB
Anonymous:            40 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 7 /usr/lib/libc.so.6
Rss:                1000 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
Rss:                 100 kB
Anonymous:           100 kB
";

    #[test]
    fn only_the_executables_clean_read_only_mappings_are_dropped() {
        assert_eq!(
            clean_read_only_mappings(SMAPS, "/usr/bin/trainwatch"),
            vec![
                (0x55d0a0000000, 0x55d0a0100000),
                (0x55d0a0100000, 0x55d0a0900000)
            ]
        );
    }

    #[test]
    fn releasing_leaves_the_program_working() {
        release();
        // Code and read-only data fault back in from the file.
        let text = format!("{}", std::hint::black_box(41) + 1);
        assert_eq!(text, "42");
        release();
    }
}
