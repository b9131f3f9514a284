//! Dedup poisoning (issue 17, item 2: "no device can make another device's
//! data unrestorable"), end to end: the real daemon on loopback, the honest
//! PC and the technician's laptop running the real `coffre` program, and a
//! compromised PC of the same subscriber written by hand against
//! `crates/proto` (requests built field by field, sent over the real QUIC
//! connection). The compromised PC holds the subscriber's keys (it was
//! enrolled with the passphrase), so it computes the chunk id of a file in
//! the folder the PCs share and stores garbage under it first: a blob sealed
//! under that id whose contents are another file's, and one whose header is
//! valid but whose ciphertext is random.
//!
//! Before the dedup trust rule, the server told the honest PC "I have it",
//! the PC skipped the chunk, and its snapshot could not be restored (the
//! restore failed on "contents do not match the chunk id" /
//! "authentication failed"), while `verify` said ok. Now the honest PC
//! fetches the other device's copy, finds it bad and uploads its own; both
//! copies are kept, the dispute is reported, and a restore on any device
//! (the technician's laptop is served the first, poisoned, copy and asks
//! for the next) brings the files back byte for byte.

mod support;

use std::fs;
use std::path::Path;

use coffre_core::benchmark::random_bytes;
use coffre_core::{BlobKind, ChunkId, Keys, Manifest, Sealer, Timestamp};
use coffre_proto::{ChunkState, Request, Response, Token};
use coffre_store::{GcOptions, Role, VerifyOptions};
use support::{assert_same_tree, Client, Server};

const QUOTA: u64 = 10 << 30;

/// The compromised PC: a device of the subscriber, its keys unwrapped with
/// the passphrase, speaking the protocol by hand.
struct Attacker {
    rt: tokio::runtime::Runtime,
    remote: coffre_client::Remote,
    keys: Keys,
}

impl Attacker {
    fn enrol(server: &Server, device: &str) -> Attacker {
        let (rt, remote) = support::hand_made_device(server, device, QUOTA, Role::Backup);
        let keys = support::subscriber_keys(&rt, &remote);
        Attacker { rt, remote, keys }
    }

    fn call(&self, req: Request) -> Response {
        self.rt.block_on(self.remote.call(&req)).unwrap()
    }

    /// Stores `blob` under the id of `victim` (a whole file of one chunk),
    /// and commits a snapshot listing it, so that its pack is sealed now.
    fn poison(&self, device: &str, victims: &[(&[u8], Vec<u8>)]) -> Vec<ChunkId> {
        let mut ids = Vec::new();
        for (victim, blob) in victims {
            let id = ChunkId::compute(&self.keys, victim);
            let Response::Stored { new } = self.call(Request::PutChunk {
                id: *id.as_bytes(),
                blob: blob.clone(),
            }) else {
                panic!("the put was refused");
            };
            assert!(new, "the id was not on the server yet");
            ids.push(id);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        let manifest = Manifest::bare(device, Timestamp::now(), sorted)
            .seal(&self.keys)
            .unwrap();
        assert!(matches!(
            self.call(Request::Commit { manifest }),
            Response::Committed { .. }
        ));
        ids
    }

    /// A blob sealed under `victim`'s id whose contents are `other`: it
    /// decrypts, but to other content.
    fn other_content(&self, victim: &[u8], other: &[u8]) -> Vec<u8> {
        let id = ChunkId::compute(&self.keys, victim);
        Sealer::new(3)
            .seal(&self.keys, BlobKind::Data, &id, other)
            .unwrap()
    }

    /// A blob with a valid header whose ciphertext is random.
    fn garbage(&self, victim: &[u8]) -> Vec<u8> {
        let mut blob = self.other_content(victim, victim);
        let n = blob.len();
        blob[8..n].copy_from_slice(&random_bytes(n - 8, 99));
        blob
    }
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

#[test]
fn a_compromised_pc_cannot_make_another_pcs_shared_files_unrestorable() {
    let server = Server::start();
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path().join("pc");
    // The shared folder: two documents of one chunk each, and one large
    // file; a private document beside them.
    let budget = random_bytes(120_000, 1);
    let minutes = random_bytes(90_000, 2);
    write(&root, "Partage/budget 2026.ods", &budget);
    write(&root, "Partage/compte-rendu.odt", &minutes);
    write(&root, "Partage/photos.zip", &random_bytes(3_000_000, 3));
    write(&root, "Documents/lettre.txt", b"bonjour");

    let honest = Client::new();
    honest.enrol(
        &server.token("asso", QUOTA, "pc-bureau", Role::Backup),
        &[&root],
    );
    let attacker = Attacker::enrol(&server, "pc-infecte");

    // The attack: garbage under the ids of the shared documents, first.
    let poisoned = attacker.poison(
        "pc-infecte",
        &[
            (
                &budget[..],
                attacker.other_content(&budget, b"not the budget"),
            ),
            (&minutes[..], attacker.garbage(&minutes)),
        ],
    );
    // A client of protocol 1 or 2 asks HasChunks: another device's copy it
    // has not checked is absent to it, so it uploads its own.
    let victim_remote = attacker
        .rt
        .block_on(coffre_client::Remote::connect(
            &server.addr,
            server.fingerprint,
            Token::parse(&server.token("asso", QUOTA, "pc-ancien", Role::Backup))
                .unwrap()
                .secret,
        ))
        .unwrap();
    assert_eq!(
        attacker
            .rt
            .block_on(victim_remote.has_chunks(&poisoned))
            .unwrap(),
        [false, false],
        "a protocol-2 client must not be told to skip another device's unchecked copy"
    );
    assert_eq!(
        attacker
            .rt
            .block_on(victim_remote.chunk_trust(&poisoned))
            .unwrap(),
        [ChunkState::Untrusted, ChunkState::Untrusted]
    );

    // The honest PC backs up with the real program: it checks the other
    // device's copies, finds them bad, and sends its own.
    let report = honest.json(&["backup"]);
    assert_eq!(report["chunks_verified"], 0, "{report}");
    assert!(
        report["bytes_verified"].as_u64().unwrap() > 0,
        "the other device's copies were fetched to be checked: {report}"
    );

    // Restored on the honest PC, byte for byte.
    let out = tempfile::tempdir().unwrap();
    honest.restore_to("latest", out.path());
    assert_same_tree(&root, &out.path().join(root.strip_prefix("/").unwrap()));

    // Restored on the technician's laptop (another device: it is served the
    // first copy, the poisoned one, and asks for the next).
    let laptop = Client::new();
    laptop.enrol(
        &server.token("asso", QUOTA, "portable-technicien", Role::Admin),
        &[out.path()],
    );
    let snaps = laptop.json(&["snapshots"]);
    let honest_snap = snaps["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["device"] == "pc-bureau")
        .expect("the honest PC's snapshot")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out2 = tempfile::tempdir().unwrap();
    laptop.restore_to(&honest_snap, out2.path());
    assert_same_tree(&root, &out2.path().join(root.strip_prefix("/").unwrap()));
    // `check --read-data` on the laptop finds the honest snapshot whole (the
    // attacker's own snapshot is a bare manifest: that one is damaged).
    let check = laptop.run(&["check", "--read-data"]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("checked 2 snapshots") && !stdout.contains("pc-bureau):"),
        "{stdout}"
    );

    // The server reports the dispute, and keeps both copies through GC.
    let report = server
        .store
        .verify("asso", &VerifyOptions::default())
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.disputes.len(), 1, "{:?}", report.disputes);
    let d = &report.disputes[0];
    assert_eq!(
        (d.writer.as_str(), d.checker.as_str(), d.chunks),
        ("pc-infecte", "pc-bureau", 2)
    );
    assert!(d.to_string().contains("may be compromised"), "{d}");
    let gc = server
        .store
        .gc(
            "asso",
            &GcOptions {
                grace_secs: 0,
                ..GcOptions::default()
            },
        )
        .unwrap();
    assert_eq!(gc.deleted_chunks, 0, "{gc:?}");
    let out3 = tempfile::tempdir().unwrap();
    laptop.restore_to(&honest_snap, out3.path());
    assert_same_tree(&root, &out3.path().join(root.strip_prefix("/").unwrap()));
}

#[test]
fn a_pc_skips_another_pcs_good_copy_once_it_checked_it() {
    let server = Server::start();
    let tree = tempfile::tempdir().unwrap();
    let (a_root, b_root) = (tree.path().join("a"), tree.path().join("b"));
    let shared = random_bytes(2_000_000, 7);
    write(&a_root, "Partage/rapport.pdf", &shared);
    write(&b_root, "Partage/rapport.pdf", &shared);
    write(&b_root, "Documents/notes.txt", b"b");

    let a = Client::new();
    a.enrol(
        &server.token("asso", QUOTA, "pc-a", Role::Backup),
        &[&a_root],
    );
    let b = Client::new();
    b.enrol(
        &server.token("asso", QUOTA, "pc-b", Role::Backup),
        &[&b_root],
    );
    a.ok(&["backup"]);
    let used_after_a = server.store.usage().unwrap()[0].used_bytes;

    // B checks A's copies (fetches them) and sends none of the shared data.
    let report = b.json(&["backup"]);
    // The chunking is keyed by the structure's key, random here: the 2 MB
    // file is one chunk or several, so count its bytes, not its chunks.
    assert!(report["chunks_verified"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["bytes_verified"].as_u64().unwrap() >= 2_000_000,
        "B checked every byte of the shared file: {report}"
    );
    assert!(
        report["bytes_sent"].as_u64().unwrap() < 100_000,
        "B sent the shared file again: {report}"
    );
    // Checked once: the next backup of B fetches nothing.
    write(&b_root, "Documents/notes.txt", b"b2");
    let report = b.json(&["backup", "--no-cache"]);
    assert_eq!(report["chunks_verified"], 0, "{report}");
    assert_eq!(report["bytes_verified"], 0, "{report}");
    // The shared data is stored once.
    let used = server.store.usage().unwrap()[0].used_bytes;
    assert!(
        used - used_after_a < 200_000,
        "{used} bytes after B, {used_after_a} after A"
    );
    let verify = server
        .store
        .verify("asso", &VerifyOptions::default())
        .unwrap();
    assert!(
        verify.is_clean() && verify.disputes.is_empty(),
        "{verify:?}"
    );
}
