//! `coffre-server`: the daemon and admin commands. All logic lives in the library.

/// The same allocator as the client: the daemon moves megabyte blobs between tasks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    coffre_server::main()
}
