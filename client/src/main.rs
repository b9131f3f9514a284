//! `coffre`: the client. All logic lives in the library; see `coffre --help`.

/// jemalloc: the hot path hands megabyte buffers from thread to thread and
/// the network tasks free what blocking threads allocated. glibc turned that
/// into page faults (the backup ran 4× slower); mimalloc kept freed blocks in
/// per-thread caches (1.2 GB peak for a restore). jemalloc's arenas did
/// neither (docs/performance.md, "Allocator").
#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    coffre_client::main()
}
