//! `coffre`: the client. All logic lives in the library; see `coffre --help`.

fn main() -> std::process::ExitCode {
    coffre_client::main()
}
