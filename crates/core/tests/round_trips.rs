//! Property tests of every round trip, and the corruption guarantees: any
//! flipped bit of a blob, a tree blob or a manifest is an error naming what is
//! corrupt; another subscriber's key fails cleanly.

use coffre_core::blob::{self, BlobKind, Sealer};
use coffre_core::manifest::{PrivatePart, PublicPart, Statistics, Version, CHUNK_LIST_PREFIX};
use coffre_core::{
    benchmark, ChunkId, Content, Entry, Error, KdfParams, KeyFile, Keys, Manifest, MasterKey,
    Timestamp, Tree,
};
use proptest::prelude::*;

fn keys(b: u8) -> Keys {
    Keys::derive(&MasterKey::from_bytes([b; 32]))
}

fn id_strategy() -> impl Strategy<Value = ChunkId> {
    any::<[u8; 32]>().prop_map(ChunkId::from_bytes)
}

fn entry_strategy() -> impl Strategy<Value = Entry> {
    let name = prop::collection::vec(
        any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
        1..40,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..");
    let content = prop_oneof![
        prop::collection::vec(id_strategy(), 0..5).prop_map(Content::File),
        id_strategy().prop_map(Content::Dir),
        prop::collection::vec(1u8..=255, 1..60).prop_map(Content::Symlink),
    ];
    let xattrs = prop::collection::btree_map(
        prop::collection::vec(any::<u8>(), 0..10),
        prop::collection::vec(any::<u8>(), 0..20),
        0..3,
    )
    .prop_map(|m| m.into_iter().collect::<Vec<_>>());
    (
        name,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<i64>(),
        0u32..1_000_000_000,
        any::<u64>(),
        xattrs,
        content,
    )
        .prop_map(
            |(name, mode, uid, gid, secs, nanos, size, xattrs, content)| Entry {
                name,
                mode,
                uid,
                gid,
                mtime: Timestamp { secs, nanos },
                size,
                xattrs,
                content,
            },
        )
}

fn tree_strategy() -> impl Strategy<Value = Tree> {
    prop::collection::btree_map(
        prop::collection::vec(1u8..=255, 1..2),
        entry_strategy(),
        0..12,
    )
    .prop_map(|m| {
        // Unique names: keep the first entry per generated name.
        let mut seen = std::collections::HashSet::new();
        let entries = m
            .into_values()
            .filter(|e| seen.insert(e.name.clone()))
            .collect();
        Tree::new(entries).unwrap()
    })
}

fn manifest_strategy() -> impl Strategy<Value = Manifest> {
    (
        (any::<i64>(), 0u32..1_000_000_000),
        ".{0,20}",
        any::<u64>(),
        any::<u64>(),
        prop::collection::btree_set(id_strategy(), 0..50),
        id_strategy(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 0..4),
        ".{0,30}",
        prop::collection::vec(".{0,10}", 0..3),
        prop::option::of(id_strategy()),
        (any::<[u64; 7]>(), any::<u64>(), any::<bool>()),
        prop::collection::vec((prop::collection::vec(any::<u8>(), 0..30), ".{0,30}"), 0..3),
    )
        .prop_map(
            |(
                (secs, nanos),
                device,
                logical_bytes,
                file_count,
                chunks,
                root,
                paths,
                hostname,
                tags,
                parent,
                (s, problems, checkpoint),
                errors,
            )| Manifest {
                public: PublicPart {
                    time: Timestamp { secs, nanos },
                    device,
                    logical_bytes,
                    file_count,
                    problems,
                    checkpoint,
                    chunks: chunks.into_iter().collect(),
                },
                private: PrivatePart {
                    root,
                    paths,
                    hostname,
                    tags,
                    parent,
                    stats: Statistics {
                        files_new: s[0],
                        files_changed: s[1],
                        files_unchanged: s[2],
                        dirs: s[3],
                        bytes_read: s[4],
                        bytes_sent: s[5],
                        files_deleted: s[6],
                    },
                    errors,
                },
            },
        )
}

fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000),
        (0usize..300_000, any::<u64>()).prop_map(|(n, s)| benchmark::text_bytes(n, s)),
        (0usize..300_000, any::<u64>()).prop_map(|(n, s)| benchmark::random_bytes(n, s)),
        (0usize..(4 << 20), any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn blob_round_trip(data in data_strategy(), level in 1i32..6) {
        let k = keys(1);
        let id = ChunkId::compute(&k, &data);
        let b = Sealer::new(level).seal(&k, BlobKind::Data, &id, &data).unwrap();
        prop_assert!(b.len() <= coffre_core::padme((data.len() + 10) as u64) as usize + blob::OVERHEAD);
        prop_assert_eq!(blob::open(&k, BlobKind::Data, &id, &b).unwrap(), data);
    }

    #[test]
    fn tree_round_trip(tree in tree_strategy()) {
        let enc = tree.encode();
        prop_assert_eq!(Tree::decode(&enc).unwrap(), tree.clone());
        // and as a sealed tree blob
        let k = keys(2);
        let id = ChunkId::compute(&k, &enc);
        let b = Sealer::new(3).seal(&k, BlobKind::Tree, &id, &enc).unwrap();
        prop_assert_eq!(Tree::decode(&blob::open(&k, BlobKind::Tree, &id, &b).unwrap()).unwrap(), tree);
    }

    #[test]
    fn manifest_round_trip(m in manifest_strategy()) {
        let k = keys(3);
        let bytes = m.seal(&k).unwrap();
        prop_assert_eq!(Manifest::open(&k, &bytes).unwrap(), m.clone());
        prop_assert_eq!(Manifest::read_public(&bytes).unwrap().0, m.public.clone());
        // The server's GC streams the ids from where chunk_list_at says.
        let (at, count) = Manifest::chunk_list_at(&bytes[..bytes.len().min(CHUNK_LIST_PREFIX)]).unwrap();
        prop_assert_eq!(count as usize, m.public.chunks.len());
        let listed: Vec<ChunkId> = bytes[at..at + 32 * count as usize]
            .chunks(32)
            .map(|c| ChunkId::from_bytes(c.try_into().unwrap()))
            .collect();
        prop_assert_eq!(listed, m.public.chunks.clone());
        // A checkpoint is sealed as version 3 only (a client makes one only
        // for a server of protocol 5); a complete snapshot in any version.
        if m.public.checkpoint {
            return Ok(());
        }
        // Version 2 (for a server of protocol 4) keeps everything of a
        // complete snapshot.
        let v2 = m.seal_as(&k, Version::V2).unwrap();
        prop_assert_eq!(Manifest::open(&k, &v2).unwrap(), m.clone());
        // Version 1 (for a server older than protocol 4) keeps all but the
        // count of problems and of deleted files, which read as 0.
        let v1 = m.seal_as(&k, Version::V1).unwrap();
        let mut without = m.clone();
        without.public.problems = 0;
        without.private.stats.files_deleted = 0;
        prop_assert_eq!(Manifest::open(&k, &v1).unwrap(), without);
        let (at, count) = Manifest::chunk_list_at(&v1[..v1.len().min(CHUNK_LIST_PREFIX)]).unwrap();
        prop_assert_eq!(count as usize, m.public.chunks.len());
        let listed: Vec<ChunkId> = v1[at..at + 32 * count as usize]
            .chunks(32)
            .map(|c| ChunkId::from_bytes(c.try_into().unwrap()))
            .collect();
        prop_assert_eq!(listed, m.public.chunks);
    }

    /// Hostile bytes never panic and never allocate beyond their own size.
    #[test]
    fn decoders_survive_garbage(data in prop::collection::vec(any::<u8>(), 0..400), prefix in 0usize..4) {
        let mut d = [&b"CFTR\x01"[..], b"CFMF\x01", b"CFBL\x01\x00", b"CFMF\x02"][prefix].to_vec();
        d.extend_from_slice(&data);
        let _ = Tree::decode(&d);
        let _ = Manifest::read_public(&d);
        let _ = Manifest::chunk_list_at(&d);
        let _ = Manifest::open(&keys(1), &d);
        let _ = blob::open(&keys(1), BlobKind::Data, &ChunkId::from_bytes([0; 32]), &d);
        let _ = KeyFile::from_bytes(&d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]
    #[test]
    fn key_file_round_trip(key: [u8; 32], pass in prop::collection::vec(any::<u8>(), 0..64)) {
        let mk = MasterKey::from_bytes(key);
        let kf = KeyFile::wrap(&mk, &pass, KdfParams::INSECURE_FOR_TESTS).unwrap();
        prop_assert_eq!(KeyFile::from_bytes(kf.as_bytes()).unwrap().unwrap_key(&pass).unwrap(), mk);
    }
}

/// Flips every bit of `bytes` in turn and checks `open` fails with a message
/// that names `what`.
fn every_bit_flip_is_caught(bytes: &[u8], what: &str, open: impl Fn(&[u8]) -> Result<(), Error>) {
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.to_vec();
        b[bit / 8] ^= 1 << (bit % 8);
        match open(&b) {
            Ok(()) => panic!("{what}: flipping bit {bit} went unnoticed"),
            Err(e) => assert!(
                e.to_string().contains(what),
                "{what}: bit {bit}: error does not say what: {e}"
            ),
        }
    }
}

#[test]
fn any_flipped_bit_of_a_blob_is_an_error_naming_it() {
    let k = keys(4);
    for data in [
        b"short".to_vec(),
        benchmark::text_bytes(5000, 1),
        benchmark::random_bytes(3000, 2),
    ] {
        let id = ChunkId::compute(&k, &data);
        let b = Sealer::new(3).seal(&k, BlobKind::Data, &id, &data).unwrap();
        every_bit_flip_is_caught(&b, "blob", |b| {
            blob::open(&k, BlobKind::Data, &id, b).map(drop)
        });
    }
}

#[test]
fn any_flipped_bit_of_a_tree_blob_is_an_error_naming_it() {
    let k = keys(5);
    let tree = Tree::new(vec![Entry {
        name: b"Compta".to_vec(),
        mode: 0o40755,
        uid: 1,
        gid: 1,
        mtime: Timestamp { secs: 5, nanos: 6 },
        size: 0,
        xattrs: vec![],
        content: Content::Dir(ChunkId::from_bytes([3; 32])),
    }])
    .unwrap();
    let enc = tree.encode();
    let id = ChunkId::compute(&k, &enc);
    let b = Sealer::new(3).seal(&k, BlobKind::Tree, &id, &enc).unwrap();
    every_bit_flip_is_caught(&b, "tree", |b| {
        blob::open(&k, BlobKind::Tree, &id, b)
            .and_then(|p| Tree::decode(&p))
            .map(drop)
    });
}

#[test]
fn any_flipped_bit_of_a_manifest_is_an_error_naming_it() {
    let k = keys(6);
    let m = Manifest {
        public: PublicPart {
            time: Timestamp {
                secs: 1_700_000_000,
                nanos: 0,
            },
            device: "pc-1".into(),
            logical_bytes: 10,
            file_count: 1,
            problems: 1,
            checkpoint: true,
            chunks: vec![ChunkId::from_bytes([1; 32])],
        },
        private: PrivatePart {
            root: ChunkId::from_bytes([2; 32]),
            paths: vec![b"/home".to_vec()],
            hostname: "pc-1".into(),
            tags: vec![],
            parent: None,
            stats: Statistics::default(),
            errors: vec![],
        },
    };
    let bytes = m.seal(&k).unwrap();
    every_bit_flip_is_caught(&bytes, "manifest", |b| Manifest::open(&k, b).map(drop));
    for cut in [0, 5, 9, 30, bytes.len() - 1] {
        let err = Manifest::open(&k, &bytes[..cut]).unwrap_err();
        assert!(err.to_string().contains("manifest"), "{err}");
    }
}

#[test]
fn another_subscribers_key_fails_cleanly() {
    let (a, b) = (keys(7), keys(8));
    let data = benchmark::text_bytes(100_000, 3);
    let id = ChunkId::compute(&a, &data);
    let sealed = Sealer::new(3).seal(&a, BlobKind::Data, &id, &data).unwrap();
    let err = blob::open(&b, BlobKind::Data, &id, &sealed).unwrap_err();
    assert!(err.is_corrupt());
    assert!(
        err.to_string()
            .contains("not encrypted with this subscriber's key"),
        "{err}"
    );
    // ids differ between subscribers for the same bytes
    assert_ne!(ChunkId::compute(&a, &data), ChunkId::compute(&b, &data));

    let m = Manifest::open(&a, &[]).unwrap_err();
    assert!(m.to_string().contains("manifest"));
}

#[test]
fn a_tree_blob_is_not_accepted_as_data_and_vice_versa() {
    let k = keys(9);
    let enc = Tree::default().encode();
    let id = ChunkId::compute(&k, &enc);
    let b = Sealer::new(3).seal(&k, BlobKind::Tree, &id, &enc).unwrap();
    let err = blob::open(&k, BlobKind::Data, &id, &b).unwrap_err();
    assert!(err.to_string().contains("kind"), "{err}");
}

#[test]
fn newer_format_versions_are_refused_with_an_upgrade_hint() {
    let k = keys(10);
    let id = ChunkId::compute(&k, b"x");
    let mut b = Sealer::new(3).seal(&k, BlobKind::Data, &id, b"x").unwrap();
    b[4] = 2;
    let err = blob::open(&k, BlobKind::Data, &id, &b).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { found: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade coffre"), "{err}");
    let mut t = Tree::default().encode();
    t[4] = 9;
    assert!(matches!(
        Tree::decode(&t),
        Err(Error::UnsupportedVersion { found: 9, .. })
    ));
}

#[test]
fn trees_refuse_names_that_escape_the_restore_target() {
    for bad in [&b".."[..], b".", b"a/b", b"", b"nul\0"] {
        let e = Entry {
            name: bad.to_vec(),
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            size: 0,
            xattrs: vec![],
            content: Content::Symlink(b"x".to_vec()),
        };
        assert!(Tree::new(vec![e.clone()]).is_err(), "{bad:?}");
        // and a hand-made encoding with that name is refused by the decoder
        let mut good = e;
        good.name = b"ok".to_vec();
        let enc = Tree::new(vec![good]).unwrap().encode();
        let mut forged = enc[..5].to_vec();
        forged.push(1);
        forged.push(bad.len() as u8);
        forged.extend_from_slice(bad);
        forged.extend_from_slice(&enc[5 + 1 + 1 + 2..]);
        assert!(Tree::decode(&forged).is_err(), "decoder accepted {bad:?}");
    }
}
