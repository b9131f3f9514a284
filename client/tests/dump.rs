//! `coffre dump SNAPSHOT PATH` (issue 18, item 5), end to end: the real
//! daemon on loopback and the real `coffre` program. A file comes back byte
//! for byte on standard output; a folder comes as a tar stream that both
//! the system's `tar` and the `tar` crate unpack into the same tree (bytes,
//! permissions, modification times, a symbolic link kept as a link, a name
//! longer than tar's 100 bytes, a name that is not UTF-8), and the whole
//! snapshot comes from its top-level names; a missing path, a link and a damaged chunk
//! are clear errors (the output of a damaged file stops, it never holds a
//! byte that was not verified); on a terminal a binary file and a folder
//! are refused and a text file is shown.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use coffre_core::benchmark::{random_bytes, text_bytes};
use coffre_store::{RawPacks, Role};
use support::{assert_same_tree, one_line_error, Client, Server};

const QUOTA: u64 = 10 << 30;

/// The long name: a path inside the folder beyond ustar's 100 bytes.
const LONG: &str = "un nom de dossier vraiment très long pour une archive tar, comme en font les services comptables/procès-verbal de l'assemblée générale ordinaire du 14 mars.odt";

fn write(root: &Path, rel: &str, data: &[u8], mode: u32, mtime: u64) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    let f = fs::File::options().write(true).open(&p).unwrap();
    // Whole seconds: tar keeps modification times to the second.
    f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
        .unwrap();
}

/// The folder dumped: a multi-chunk document, text, a script, a private
/// file, a link, an empty folder, a long name.
fn make_compta(compta: &Path) {
    write(
        compta,
        "bilan 2026.ods",
        &random_bytes(3_000_000, 7),
        0o644,
        1_700_000_000,
    );
    write(
        compta,
        "notes.txt",
        &text_bytes(20_000, 8),
        0o600,
        1_700_000_100,
    );
    write(
        compta,
        "outils/sauve.sh",
        b"#!/bin/sh\necho ok\n",
        0o755,
        1_700_000_200,
    );
    write(
        compta,
        "factures/2026-01.pdf",
        &random_bytes(70_000, 9),
        0o640,
        1_700_000_300,
    );
    write(compta, LONG, &text_bytes(5_000, 10), 0o644, 1_700_000_400);
    fs::create_dir_all(compta.join("vide")).unwrap();
    // A name that is not UTF-8 (an old Windows share copied as Latin-1).
    let latin1 = std::ffi::OsStr::from_bytes(b"r\xe9sum\xe9.txt");
    fs::write(compta.join(latin1), b"ete").unwrap();
    let f = fs::File::options()
        .write(true)
        .open(compta.join(latin1))
        .unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_500))
        .unwrap();
    std::os::unix::fs::symlink("bilan 2026.ods", compta.join("dernier bilan")).unwrap();
}

/// Every field is bound by the tests: a field left to `..` is dropped at
/// once (the server stopped, the folder deleted).
struct Setup {
    _work: tempfile::TempDir,
    _server: Server,
    pc: Client,
    compta: PathBuf,
}

fn setup() -> Setup {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = fs::canonicalize(work.path()).unwrap().join("home");
    let compta = home.join("Compta");
    make_compta(&compta);
    let pc = Client::new();
    pc.enrol(
        &server.token("asso", QUOTA, "compta-pc", Role::Backup),
        &[&home],
    );
    pc.ok(&["backup", "--quiet"]);
    Setup {
        _work: work,
        _server: server,
        pc,
        compta,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `coffre dump ARGS`, which must succeed; its standard output.
fn dump(pc: &Client, args: &[&str]) -> Vec<u8> {
    let mut a = vec!["dump"];
    a.extend_from_slice(args);
    let out = pc.run(&a);
    assert!(
        out.status.success(),
        "coffre {a:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_file_and_a_folder_come_back_byte_for_byte_and_a_folder_as_tar() {
    let Setup {
        _work,
        _server,
        pc,
        compta,
    } = setup();

    // One file, byte for byte (several chunks).
    let bilan = compta.join("bilan 2026.ods");
    assert_eq!(dump(&pc, &["latest", s(&bilan)]), fs::read(&bilan).unwrap());

    // The folder as tar, unpacked by the system's tar...
    let stream = dump(&pc, &["latest", s(&compta)]);
    let by_tar = tempfile::tempdir().unwrap();
    let mut child = Command::new("tar")
        .args(["-x", "-p", "-C", s(by_tar.path())])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success(), "tar -x failed");
    assert_same_tree(&compta, &by_tar.path().join("Compta"));
    let link = by_tar.path().join("Compta/dernier bilan");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // ... and by the tar crate.
    let by_crate = tempfile::tempdir().unwrap();
    let mut archive = tar::Archive::new(&stream[..]);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.unpack(by_crate.path()).unwrap();
    assert_same_tree(&compta, &by_crate.path().join("Compta"));

    // Names relative to the folder's parent; the link is a link entry, the
    // folder comes before what it holds.
    let mut names = Vec::new();
    for e in tar::Archive::new(&stream[..]).entries().unwrap() {
        let e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "Compta/dernier bilan" {
            assert_eq!(e.header().entry_type(), tar::EntryType::Symlink);
            assert_eq!(e.link_name().unwrap().unwrap(), Path::new("bilan 2026.ods"));
        }
        names.push(name);
    }
    assert_eq!(names[0].trim_end_matches('/'), "Compta", "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("Compta")), "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("14 mars.odt")),
        "{names:?}"
    );

    // The whole snapshot: its top-level names, then everything below.
    let whole = dump(&pc, &["latest", "/"]);
    let names: Vec<PathBuf> = tar::Archive::new(&whole[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().into_owned())
        .collect();
    let top = compta.components().nth(1).unwrap().as_os_str();
    assert_eq!(names[0].as_os_str(), top, "{names:?}");
    let inner = compta.strip_prefix("/").unwrap().join("bilan 2026.ods");
    assert!(names.contains(&inner), "{names:?}");

    // What is not there, and a link, are clear one-line errors.
    let err = one_line_error(&pc.run(&["dump", "latest", s(&compta.join("absent.ods"))]));
    assert!(err.contains("absent.ods is not in this snapshot"), "{err}");
    let err = one_line_error(&pc.run(&["dump", "latest", s(&compta.join("dernier bilan"))]));
    assert!(
        err.contains("is a symbolic link to bilan 2026.ods"),
        "{err}"
    );
}

#[test]
fn a_damaged_chunk_stops_the_output_with_an_error_never_garbage() {
    let Setup {
        _work,
        _server: server,
        pc,
        compta,
    } = setup();
    let bilan = compta.join("bilan 2026.ods");
    let whole = fs::read(&bilan).unwrap();

    // A bit flips in the middle of the largest pack, on the server's disk:
    // inside the 3 MB document, which fills most of it.
    let raw = RawPacks::open(server.dir.path(), &server.storage).unwrap();
    let (pack, _) = raw
        .list(1)
        .unwrap()
        .into_iter()
        .max_by_key(|p| p.1)
        .unwrap();
    let mut bytes = raw.read(1, &pack).unwrap().unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    raw.write(1, &pack, &bytes).unwrap();

    let out = pc.run(&["dump", "latest", s(&bilan)]);
    let err = one_line_error(&out);
    assert!(err.contains("chunk"), "{err}");
    assert!(err.contains("incomplete"), "{err}");
    assert!(
        out.stdout.len() < whole.len() && whole.starts_with(&out.stdout),
        "what was written is the verified beginning of the file, nothing else"
    );

    // As a folder: the tar stream stops, and tar says it is truncated.
    let out = pc.run(&["dump", "latest", s(&compta)]);
    let err = one_line_error(&out);
    assert!(err.contains("bilan 2026.ods"), "{err}");
    let mut child = Command::new("tar")
        .args(["-t"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "a cut tar stream must not read as whole"
    );
}

/// Runs `coffre ARGS` with its standard output on a terminal (`script`
/// gives it a pseudo-terminal); returns (success, what the terminal showed).
fn on_terminal(pc: &Client, args: &[&str]) -> (bool, String) {
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let mut line = quote(env!("CARGO_BIN_EXE_coffre"));
    for a in ["--config", s(&pc.config)].iter().chain(args) {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("COFFRE_CONNECT_TIMEOUT", "3")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn on_a_terminal_binary_and_folders_are_refused_and_text_is_shown() {
    let Setup {
        _work,
        _server,
        pc,
        compta,
    } = setup();
    let bilan = compta.join("bilan 2026.ods");
    let (ok, shown) = on_terminal(&pc, &["dump", "latest", s(&bilan)]);
    assert!(!ok, "{shown}");
    assert!(shown.contains("redirect to a file or a pipe"), "{shown}");
    let (ok, shown) = on_terminal(&pc, &["dump", "latest", s(&compta)]);
    assert!(!ok && shown.contains("tar stream"), "{shown}");

    let notes = fs::read_to_string(compta.join("notes.txt")).unwrap();
    let (ok, shown) = on_terminal(&pc, &["dump", "latest", s(&compta.join("notes.txt"))]);
    assert!(ok, "{shown}");
    let first_line = notes.lines().next().unwrap();
    assert!(
        shown.contains(first_line),
        "the text is shown: {shown:.300}"
    );

    let (ok, shown) = on_terminal(&pc, &["dump", "latest", s(&bilan), "--force"]);
    assert!(
        ok && shown.len() > 1_000_000,
        "--force writes it: {} bytes",
        shown.len()
    );
}

#[test]
fn dump_help_teaches_the_two_examples() {
    let out = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["dump", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for example in [
        "coffre dump latest /home/alice/Documents/budget.ods > budget-lastweek.ods",
        "coffre dump 3f9a2c1d /home/alice/Compta | tar -x -C /tmp/x",
        "redirect to a file or a pipe",
    ] {
        assert!(text.contains(example), "{text}");
    }
}
