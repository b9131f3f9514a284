//! Known-answer tests: they fail if a single byte of any format changes.
//!
//! If one fails after a change, the change broke every existing backup: revert
//! it, or introduce a new format version and keep reading this one.

use crate::blob::{self, BlobKind, Sealer};
use crate::keyfile::{KdfParams, KeyFile};
use crate::manifest::{Manifest, PrivatePart, PublicPart, Statistics, Version};
use crate::tree::{Content, Entry, Tree};
use crate::{benchmark, ChunkId, Keys, MasterKey, Timestamp};

fn master() -> MasterKey {
    MasterKey::from_bytes(*b"coffre known-answer master key!!")
}

fn b3(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

#[test]
fn sub_keys() {
    let k = Keys::derive(&master());
    assert_eq!(
        hex::encode(k.id_key()),
        "8179c6e30d63f62aeb1c17f5dbca6d12e1ba02858adb0d33c523329fa74ebfec"
    );
    assert_eq!(
        hex::encode(k.enc_key()),
        "5b8bae230be45d818548eb526f77d1ea55eef8e38e48d4e521c7cfcfff129d18"
    );
    assert_eq!(
        ChunkId::compute(&k, b"coffre").to_hex(),
        "4e8d732bf226077d4821eb57f0e9cb9ed1a1f9282ad35cfa93ab1c9b12a17f97"
    );
}

#[test]
fn chunk_boundaries() {
    let k = Keys::derive(&master());
    let data = benchmark::random_bytes(24 << 20, 2026);
    let sizes: Vec<usize> = k.gear().chunks(&data).map(|r| r.len()).collect();
    assert_eq!(format!("{sizes:?}"), "[648351, 283065, 1290111, 534885, 1365955, 774307, 2027588, 1086476, 302810, 277520, 2057620, 1355239, 1011519, 1108040, 309440, 1132862, 421246, 525806, 1274168, 2221363, 1162995, 344149, 1141288, 1216255, 1292766]");
    let text = benchmark::text_bytes(8 << 20, 11);
    let sizes: Vec<usize> = k.gear().chunks(&text).map(|r| r.len()).collect();
    assert_eq!(
        format!("{sizes:?}"),
        "[366340, 1274457, 1281669, 1058725, 1939380, 473407, 1346038, 622110, 26482]"
    );
}

#[test]
fn key_file() {
    let kf = KeyFile::wrap_with(
        &master(),
        b"mot de passe de l'asso",
        KdfParams::INSECURE_FOR_TESTS,
        [1; 16],
        [2; 24],
    )
    .unwrap();
    assert_eq!(hex::encode(kf.as_bytes()), "43464b5901014000000001000000010000000101010101010101010101010101010102020202020202020202020202020202020202020202020232c692e05f1182851e620f2b54df1ffb7c4d8823dca19c8cda64929c57340ab1a00ca31c7eb093334653a0a0c656d634");
    assert_eq!(KeyFile::from_bytes(&hex::decode("43464b5901014000000001000000010000000101010101010101010101010101010102020202020202020202020202020202020202020202020232c692e05f1182851e620f2b54df1ffb7c4d8823dca19c8cda64929c57340ab1a00ca31c7eb093334653a0a0c656d634").unwrap()).unwrap().unwrap_key(b"mot de passe de l'asso").unwrap(), master());
}

#[test]
fn raw_blob() {
    let k = Keys::derive(&master());
    let data = b"hello coffre";
    let id = ChunkId::compute(&k, data);
    let blob = Sealer::new(3)
        .seal_with_nonce(&k, BlobKind::Data, &id, data, &[3; 24])
        .unwrap();
    assert_eq!(hex::encode(&blob), "4346424c0100030303030303030303030303030303030303030303030303bf19ae1dc10529e7ed0c32d1bc68718c9087e036b8f8fb6309743dbddc41518373e83594bb2e");
    assert_eq!(blob::open(&k, BlobKind::Data, &id, &hex::decode("4346424c0100030303030303030303030303030303030303030303030303bf19ae1dc10529e7ed0c32d1bc68718c9087e036b8f8fb6309743dbddc41518373e83594bb2e").unwrap()).unwrap(), data);
}

/// zstd's output may change between library versions, so the compressed blob
/// is frozen as a decoding test: these bytes must open forever.
#[test]
fn compressed_blob_decodes() {
    let k = Keys::derive(&master());
    let data = benchmark::text_bytes(2000, 5);
    let id = ChunkId::compute(&k, &data);
    let blob = Sealer::new(3)
        .seal_with_nonce(&k, BlobKind::Data, &id, &data, &[4; 24])
        .unwrap();
    assert!(blob.len() < data.len(), "text should compress");
    assert_eq!(blob::open(&k, BlobKind::Data, &id, &hex::decode("4346424c010004040404040404040404040404040404040404040404040490358e2c5e28cb5b4cd048b88d8bdbdfc316aa95712910d2c5522b24f6968dd22ae00f601062e832be4358fffc3b9d3cecb40930d7363142aa0c88243ba326833db3100d15cdfb0e262855df44ad834120035727ea1c03f6a461b3ce61eb21f1df9e00b729e7ef62878add492ac9e791d9dfa609af6f734abf9774025f86ec483f5062a7cd8cc7b96a926a186de89556a8a9ef0cb9ef09dcc2e4922b365838904a2f38d0614f73b3e6843b24317009ac37f8422f9a4b537415a4d447b29c98ca0b28f842f694f2d02f22e1ef1861cfce287c4af44a7c371a86be66a5667c42ea9d9bb703a57b00a7843221626178eaf4c5e5ebaf1de0ba5883a1b040fb96364363ff4b2b4f92feb1a9955044acaa3e00dda9725dd0b8338957f99e51deb262b72dd576866d730abb94652199ce8bce13ed16c9b3c745f042c6ab4fe459d4968a1388171a48629e2d454ed30710f6dd8498677885b250f9fe37ad6263183ac0f8e082170dee6bea3274aa1c38deb8a790add3f67d1adf9822bc992f6acd7f850464176e346d3f0d969e80109ed0e00941bb8f46c2b1816e7226a4fa21fab15e778c3098240baa116d6af6f7a8df61320462b4c104b922015800a20ad25cf66f0207fdc50ccd4567044a124fa8890b7fe8ce25bb045b5adbe32bec1b65cb13127a76248c0b3482ebf55656bed4b33c484ed77551dad090fbc51c2faf7a051dad12a5f0d3b988e30baa242ad417431045b99262f83c112acc7104f0f4678a7de516155267020d5c6267c20d524192ecbdb9233a39fa189be1fbae2063ab2c341171a94a0e3f8acd9fed2e2077c18b0234e4888d03d42a2c3ba52019f4e1731cd53e3b2936665e40a648fef9b72a8c0dc7a6a09f5ef48b3bd12e9b0b694e0f31b611fa2b3af6ad94bf682cf9d329794b8ea75246cd156d29cee3fe6bcc60fde80c66eaf7df5bbe7952b0dc019f9e116518256dfc0c8a72b55535621f1f66ce52a56d52e3d6df71fe386bc67baced2f4f901057b23a4348de0323f2c24faabf2ab60c2eda33a4af4f25cb0672aaa00a4946037c7eb55068b218881685c2eb1eb21671e789c275591bad6b92494111d6970294").unwrap()).unwrap(), data);
}

pub(crate) fn sample_tree() -> Tree {
    let t = Timestamp {
        secs: 1_763_000_000,
        nanos: 123_456_789,
    };
    Tree::new(vec![
        Entry {
            name: "Comptabilité".as_bytes().to_vec(),
            mode: 0o040755,
            uid: 1000,
            gid: 1000,
            mtime: t,
            size: 0,
            xattrs: vec![],
            content: Content::Dir(ChunkId::from_bytes([0xdd; 32])),
        },
        Entry {
            name: b"bilan \xff 2025.ods".to_vec(),
            mode: 0o100640,
            uid: 1000,
            gid: 100,
            mtime: Timestamp {
                secs: -86_400,
                nanos: 0,
            },
            size: 2_500_000,
            xattrs: vec![(b"user.comment".to_vec(), b"v2".to_vec())],
            content: Content::File(vec![
                ChunkId::from_bytes([0xaa; 32]),
                ChunkId::from_bytes([0xbb; 32]),
            ]),
        },
        Entry {
            name: b"raccourci".to_vec(),
            mode: 0o120777,
            uid: 0,
            gid: 0,
            mtime: t,
            size: 0,
            xattrs: vec![],
            content: Content::Symlink(b"../Documents".to_vec()),
        },
    ])
    .unwrap()
}

#[test]
fn tree_encoding() {
    let enc = sample_tree().encode();
    assert_eq!(hex::encode(&enc), "4346545201030d436f6d70746162696c6974c3a902ed8301e807e807c03e15690000000015cd5b070000dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd1062696c616e20ff20323032352e6f647301a08302e8076480aefeffffffffff00000000a0cb9801010c757365722e636f6d6d656e7402763202aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb09726163636f7572636903ffc3020000c03e15690000000015cd5b0700000c2e2e2f446f63756d656e7473");
    assert_eq!(Tree::decode(&hex::decode("4346545201030d436f6d70746162696c6974c3a902ed8301e807e807c03e15690000000015cd5b070000dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd1062696c616e20ff20323032352e6f647301a08302e8076480aefeffffffffff00000000a0cb9801010c757365722e636f6d6d656e7402763202aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb09726163636f7572636903ffc3020000c03e15690000000015cd5b0700000c2e2e2f446f63756d656e7473").unwrap()).unwrap(), sample_tree());
}

pub(crate) fn sample_manifest() -> Manifest {
    Manifest {
        public: PublicPart {
            time: Timestamp {
                secs: 1_763_856_000,
                nanos: 5,
            },
            device: "compta-pc".into(),
            logical_bytes: 1_390_000_000,
            file_count: 3952,
            problems: 0,
            checkpoint: false,
            chunks: vec![ChunkId::from_bytes([1; 32]), ChunkId::from_bytes([2; 32])],
        },
        private: PrivatePart {
            root: ChunkId::from_bytes([9; 32]),
            paths: vec![b"/home/asso/Documents".to_vec()],
            hostname: "compta-pc.local".into(),
            tags: vec!["nightly".into()],
            parent: Some(ChunkId::from_bytes([8; 32])),
            stats: Statistics {
                files_new: 1,
                files_changed: 2,
                files_unchanged: 3,
                dirs: 4,
                bytes_read: 5,
                bytes_sent: 6,
                files_deleted: 0,
            },
            errors: vec![(b"/home/asso/locked.db".to_vec(), "permission denied".into())],
        },
    }
}

/// Version 1, as every client before issue 18 sealed it: still opens,
/// problems and deleted files read as 0.
#[test]
fn manifest_encoding() {
    let k = Keys::derive(&master());
    let bytes = sample_manifest()
        .seal_with_nonce(&k, Version::V1, &[6; 24])
        .unwrap();
    assert_eq!(hex::encode(&bytes), "43464d46015e000000804e2269000000000500000009636f6d7074612d706380efe69605f01e02010101010101010101010101010101010101010101010101010101010101010102020202020202020202020202020202020202020202020202020202020202020606060606060606060606060606060606060606060606061a8ade2ee3544756db1e275958282fc6690582692f87f23cb7fea984bf8b7ff62b2c9fbae4e2f04daaabb98da712db7c5e2fde2be62913058c45a69027cd86f05e68b939d8ee4ab64eab3071a0f7eb291204849295e70d58b9e6407aef43e60c872b2daa1908e4e4f448ee0a1b3c267defcfefda2d5c7b061af5f00077fcab743f0576585ef17f2bad0ddd7441aeae661cf951c23ab7eb6e39049f106e8c95c513213ab4d79d42b37c4bdef48d446b345d5b3d");
    assert_eq!(
        crate::snapshot_id(&bytes).to_hex(),
        "1d5e9be4ccae3822738e5b9eb231c09883958e4ab21bc0678347fc1112756859"
    );
    assert_eq!(Manifest::open(&k, &hex::decode("43464d46015e000000804e2269000000000500000009636f6d7074612d706380efe69605f01e02010101010101010101010101010101010101010101010101010101010101010102020202020202020202020202020202020202020202020202020202020202020606060606060606060606060606060606060606060606061a8ade2ee3544756db1e275958282fc6690582692f87f23cb7fea984bf8b7ff62b2c9fbae4e2f04daaabb98da712db7c5e2fde2be62913058c45a69027cd86f05e68b939d8ee4ab64eab3071a0f7eb291204849295e70d58b9e6407aef43e60c872b2daa1908e4e4f448ee0a1b3c267defcfefda2d5c7b061af5f00077fcab743f0576585ef17f2bad0ddd7441aeae661cf951c23ab7eb6e39049f106e8c95c513213ab4d79d42b37c4bdef48d446b345d5b3d").unwrap()).unwrap(), sample_manifest());
}

/// The sample with what version 2 adds: two problems, one deleted file.
fn sample_manifest_v2() -> Manifest {
    let mut m = sample_manifest();
    m.public.problems = 2;
    m.private.stats.files_deleted = 1;
    m
}

/// Version 2 (issue 18): a public count of problems after the file count,
/// and files deleted after the statistics of version 1.
#[test]
fn manifest_v2_encoding() {
    let k = Keys::derive(&master());
    let bytes = sample_manifest_v2()
        .seal_with_nonce(&k, Version::V2, &[6; 24])
        .unwrap();
    assert_eq!(hex::encode(&bytes), "43464d46025f000000804e2269000000000500000009636f6d7074612d706380efe69605f01e0202010101010101010101010101010101010101010101010101010101010101010102020202020202020202020202020202020202020202020202020202020202020606060606060606060606060606060606060606060606061a8ade2ee0544756db1e275958282fc6690582692f87f23cb7fea984bf8b7ff62b2c9fbae4e2f04daaabb98da712db7c5e2fde2be62913058c45a69027cd86f05e68b939d8ee4ab64eab3071a0f7eb291204849295e70d58b9e6407aef43e60c872b2daa1908e4e4f448ee0a1b3c267defcfefda2d5c7b061af5f00062c7ec733d0d3c164cf1636bee0ed17c4fafe42c1a8a30d72da8ef74391e991120c894ce142d3bc46fce7994471d75402a61d2e41551f1e8");
    assert_eq!(
        crate::snapshot_id(&bytes).to_hex(),
        "e1caa84debb9788afa0233be85bb216246a0b036db224796a2085dd39b3cc268"
    );
    assert_eq!(
        Manifest::open(&k, &hex::decode("43464d46025f000000804e2269000000000500000009636f6d7074612d706380efe69605f01e0202010101010101010101010101010101010101010101010101010101010101010102020202020202020202020202020202020202020202020202020202020202020606060606060606060606060606060606060606060606061a8ade2ee0544756db1e275958282fc6690582692f87f23cb7fea984bf8b7ff62b2c9fbae4e2f04daaabb98da712db7c5e2fde2be62913058c45a69027cd86f05e68b939d8ee4ab64eab3071a0f7eb291204849295e70d58b9e6407aef43e60c872b2daa1908e4e4f448ee0a1b3c267defcfefda2d5c7b061af5f00062c7ec733d0d3c164cf1636bee0ed17c4fafe42c1a8a30d72da8ef74391e991120c894ce142d3bc46fce7994471d75402a61d2e41551f1e8").unwrap()).unwrap(),
        sample_manifest_v2()
    );
    let (public, _, version) = Manifest::read_public_versioned(&bytes).unwrap();
    assert_eq!((public.problems, version), (2, Version::V2));
}

/// The sample as a checkpoint of version 3 (issue 19).
fn sample_manifest_v3() -> Manifest {
    let mut m = sample_manifest_v2();
    m.public.checkpoint = true;
    m
}

/// Version 3 (issue 19): the public checkpoint flag (one byte, 1) after the
/// count of problems; the private part as in version 2.
#[test]
fn manifest_v3_encoding() {
    let k = Keys::derive(&master());
    let bytes = sample_manifest_v3()
        .seal_with_nonce(&k, Version::V3, &[6; 24])
        .unwrap();
    assert_eq!(hex::encode(&bytes), "43464d460360000000804e2269000000000500000009636f6d7074612d706380efe69605f01e020102010101010101010101010101010101010101010101010101010101010101010102020202020202020202020202020202020202020202020202020202020202020606060606060606060606060606060606060606060606061a8ade2ee1544756db1e275958282fc6690582692f87f23cb7fea984bf8b7ff62b2c9fbae4e2f04daaabb98da712db7c5e2fde2be62913058c45a69027cd86f05e68b939d8ee4ab64eab3071a0f7eb291204849295e70d58b9e6407aef43e60c872b2daa1908e4e4f448ee0a1b3c267defcfefda2d5c7b061af5f00062c7ec733d0d3c164cf1636bee0ed17c4fafe42c1a8a30d72da8ef74391e991120c894ce142d3bc4420f1bf0421abbff821a796311299085");
    assert_eq!(
        crate::snapshot_id(&bytes).to_hex(),
        "e4504f8cb09aaa976463a3016bd2fd5600f730bdedea0b789e92b285c65f9c39"
    );
    assert_eq!(
        Manifest::open(&k, &hex::decode("43464d460360000000804e2269000000000500000009636f6d7074612d706380efe69605f01e020102010101010101010101010101010101010101010101010101010101010101010102020202020202020202020202020202020202020202020202020202020202020606060606060606060606060606060606060606060606061a8ade2ee1544756db1e275958282fc6690582692f87f23cb7fea984bf8b7ff62b2c9fbae4e2f04daaabb98da712db7c5e2fde2be62913058c45a69027cd86f05e68b939d8ee4ab64eab3071a0f7eb291204849295e70d58b9e6407aef43e60c872b2daa1908e4e4f448ee0a1b3c267defcfefda2d5c7b061af5f00062c7ec733d0d3c164cf1636bee0ed17c4fafe42c1a8a30d72da8ef74391e991120c894ce142d3bc4420f1bf0421abbff821a796311299085").unwrap()).unwrap(),
        sample_manifest_v3()
    );
    let (public, _, version) = Manifest::read_public_versioned(&bytes).unwrap();
    assert_eq!((public.checkpoint, version), (true, Version::V3));
    // A version 2 manifest reads as a complete snapshot.
    let v2 = sample_manifest_v2()
        .seal_with_nonce(&k, Version::V2, &[6; 24])
        .unwrap();
    assert!(!Manifest::read_public(&v2).unwrap().0.checkpoint);
    // A flag other than 0 or 1 is refused, not read as either.
    let mut bad = bytes.clone();
    let at = 9 + 8 + 4 + 1 + 9 + 5 + 2 + 1;
    assert_eq!(bad[at], 1, "the flag's offset");
    bad[at] = 2;
    assert!(Manifest::read_public(&bad)
        .unwrap_err()
        .to_string()
        .contains("checkpoint flag 2"));
}

#[test]
fn hashes_of_large_outputs_are_stable() {
    // Guards the benchmark data generators used by the boundary KAT above.
    assert_eq!(
        b3(&benchmark::random_bytes(1 << 20, 1)),
        "56d6207aab735d38f8eb4a222464903f965386739d5319cc1e4c7fb7818e224b"
    );
    assert_eq!(
        b3(&benchmark::text_bytes(1 << 20, 1)),
        "a51810a577f9f4f51f749f360688a44e388931d63d97b4a4030693a01b55ad1f"
    );
}
