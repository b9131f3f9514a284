//! `coffre`: the client. All logic lives in the library; see `coffre --help`.

/// mimalloc: the hot path hands megabyte buffers from thread to thread; glibc's
/// allocator turned that into page faults and cost about 30 % of the
/// two-thread throughput (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    coffre_client::main()
}
