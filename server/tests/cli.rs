//! `coffre-server`'s admin commands as an operator runs them, on a temporary
//! data directory (they work without the daemon, and beside it).

mod common;

use common::{ok, one_line_error, server};

#[test]
fn an_operator_sets_up_subscribers_and_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&server(&data, &["init", "--listen", "127.0.0.1:7443"]));
    assert!(data.join("config.toml").exists() && data.join("tls/cert.der").exists());
    let again = one_line_error(&server(&data, &["init"]));
    assert!(again.contains("already"), "{again}");

    ok(&server(
        &data,
        &["subscriber", "add", "asso-jardins", "--quota", "50GiB"],
    ));
    ok(&server(
        &data,
        &[
            "subscriber",
            "add",
            "coop-velo",
            "--quota",
            "500MB",
            "--retention",
            "last=3,daily=7",
        ],
    ));
    let dup = one_line_error(&server(
        &data,
        &["subscriber", "add", "coop-velo", "--quota", "1GB"],
    ));
    assert!(dup.contains("coop-velo"), "{dup}");
    let bad = one_line_error(&server(
        &data,
        &["subscriber", "add", "x", "--quota", "lots"],
    ));
    assert!(bad.contains("50GiB"), "{bad}");

    let token = ok(&server(
        &data,
        &["device", "add", "asso-jardins", "compta-pc"],
    ));
    let token = token.trim();
    assert!(token.starts_with("coffre1."), "{token}");
    let parsed = coffre_proto::Token::parse(token).unwrap();
    assert_eq!(
        (
            parsed.subscriber.as_str(),
            parsed.device.as_str(),
            parsed.server.as_str()
        ),
        ("asso-jardins", "compta-pc", "127.0.0.1:7443")
    );
    ok(&server(
        &data,
        &[
            "device",
            "add",
            "asso-jardins",
            "technicien",
            "--role",
            "admin",
        ],
    ));
    let unknown = one_line_error(&server(&data, &["device", "add", "nobody", "pc"]));
    assert!(unknown.contains("nobody"), "{unknown}");

    let list = ok(&server(&data, &["device", "list", "asso-jardins"]));
    assert!(
        list.contains("compta-pc") && list.contains("technicien"),
        "{list}"
    );
    ok(&server(
        &data,
        &["device", "revoke", "asso-jardins", "compta-pc"],
    ));
    let list = ok(&server(&data, &["device", "list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let revoked: Vec<_> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| !d["revoked"].is_null())
        .collect();
    assert_eq!(revoked.len(), 1);

    ok(&server(
        &data,
        &["subscriber", "set", "coop-velo", "--quota", "2GB"],
    ));
    let usage = ok(&server(&data, &["usage", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&usage).unwrap();
    let subs = v["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    let velo = subs.iter().find(|s| s["name"] == "coop-velo").unwrap();
    assert_eq!(velo["quota_bytes"], 2_000_000_000u64);
    assert_eq!(velo["used_bytes"], 0);
    assert_eq!(velo["snapshots"], 0);
    let csv = ok(&server(&data, &["usage", "--csv"]));
    assert!(csv.starts_with("name,quota_bytes,used_bytes"), "{csv}");
    let table = ok(&server(&data, &["usage"]));
    assert!(
        table.contains("asso-jardins") && table.contains("50 GiB"),
        "{table}"
    );
    let show = ok(&server(&data, &["subscriber", "show", "asso-jardins"]));
    assert!(
        show.contains("technicien") && show.contains("revoked"),
        "{show}"
    );
}

/// Issue 20: a quota reads back in the unit it was given in, the French
/// units the page writes are accepted, a bare number is refused with both
/// readings, and `subscriber set` echoes the new value and warns below use.
#[test]
fn quotas_read_back_as_typed_and_a_bare_number_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&server(&data, &["init", "--listen", "127.0.0.1:7443"]));
    let added = ok(&server(
        &data,
        &["subscriber", "add", "asso", "--quota", "500MB"],
    ));
    assert!(
        added.contains("quota of 500 MB (500000000 bytes)"),
        "{added}"
    );
    let bare = one_line_error(&server(
        &data,
        &["subscriber", "add", "bare", "--quota", "12"],
    ));
    assert!(bare.contains("12B") && bare.contains("12GB"), "{bare}");
    let french = ok(&server(
        &data,
        &["subscriber", "add", "coop", "--quota", "50Go"],
    ));
    assert!(
        french.contains("quota of 50 GB (50000000000 bytes)"),
        "{french}"
    );
    let set = ok(&server(
        &data,
        &["subscriber", "set", "coop", "--quota", "2GiB"],
    ));
    assert!(
        set.contains("quota of coop: 2 GiB (2147483648 bytes), was 50 GB"),
        "{set}"
    );
    assert!(set.contains("coop uses 0 bytes (0%)"), "{set}");
    let zero = ok(&server(
        &data,
        &["subscriber", "set", "coop", "--quota", "0"],
    ));
    assert!(
        zero.contains("warning") && zero.contains("quota of 0"),
        "{zero}"
    );
    let usage = ok(&server(&data, &["usage"]));
    let coop = usage.lines().find(|l| l.starts_with("coop")).unwrap();
    assert!(
        coop.contains("over quota"),
        "a quota of 0 refuses everything: {usage}"
    );
    let retention = ok(&server(
        &data,
        &["subscriber", "set", "asso", "--retention", "last=3"],
    ));
    assert!(
        retention.contains("retention of asso: last=3, was the server's default"),
        "{retention}"
    );
}

#[test]
fn commands_on_a_missing_data_directory_say_how_to_create_one() {
    let tmp = tempfile::tempdir().unwrap();
    let err = one_line_error(&server(&tmp.path().join("nothing"), &["usage"]));
    assert!(err.contains("coffre-server init"), "{err}");
}

/// Tokens are one-time (issue 17): `device add` says so, `device list`
/// shows a live token and the copies refused, `usage` (table, JSON, CSV)
/// shows them too, and `device reissue` gives a device a new token that
/// retires every earlier credential, with help that says when to use it.
#[test]
fn a_device_gets_one_time_tokens_and_its_refused_copies_show() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&server(&data, &["init", "--listen", "127.0.0.1:7443"]));
    ok(&server(
        &data,
        &["subscriber", "add", "asso", "--quota", "1GB"],
    ));
    let add = server(&data, &["device", "add", "asso", "pc"]);
    let said = String::from_utf8_lossy(&add.stderr);
    assert!(
        said.contains("one-time: `coffre enrol` consumes it") && !said.contains("until revoked"),
        "{said}"
    );
    let token = coffre_proto::Token::parse(ok(&add).trim()).unwrap().secret;
    let list = ok(&server(&data, &["device", "list"]));
    assert!(list.contains(" token "), "the token still works: {list}");

    // The PC enrols and rolls its credential; a copy holding the token is
    // refused.
    {
        let store = coffre_store::Store::open(&data).unwrap();
        let s = store.authenticate(&token).unwrap();
        assert!(!store.rekey(&s, &[7; 32]).unwrap());
        assert!(store.rekey(&s, &[7; 32]).unwrap());
        let e = store.authenticate(&token).unwrap_err();
        assert!(matches!(e, coffre_store::Error::Superseded { .. }), "{e}");
    }
    let list = ok(&server(&data, &["device", "list"]));
    assert!(
        list.contains(" active ") && list.contains("refused copies: 1, last 20"),
        "{list}"
    );
    let table = ok(&server(&data, &["usage"]));
    assert!(
        table.contains("copy refused: 1 connection with a replaced credential of pc")
            && table.contains("(refused copies: 1, last 20"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&server(&data, &["usage", "--json"]))).unwrap();
    let pc = &json["subscribers"][0]["devices"][0];
    assert_eq!(pc["clone_refusals"], 1, "{json}");
    assert!(pc["last_clone_refusal"].is_i64(), "{json}");
    let csv = ok(&server(&data, &["usage", "--csv"]));
    assert!(csv.contains("copy refused"), "{csv}");

    // Reinstalled: a new token; the installation's own credential is retired.
    let help = ok(&server(&data, &["device", "reissue", "--help"]));
    assert!(
        help.contains("reinstalled") && help.contains("history") && help.contains("--force"),
        "{help}"
    );
    let add_help = ok(&server(&data, &["device", "add", "--help"]));
    assert!(
        add_help.contains("consumed by `coffre enrol`"),
        "{add_help}"
    );
    let reissue = server(&data, &["device", "reissue", "asso", "pc"]);
    assert!(
        String::from_utf8_lossy(&reissue.stderr).contains("coffre enrol TOKEN --force"),
        "{reissue:?}"
    );
    let new = coffre_proto::Token::parse(ok(&reissue).trim()).unwrap();
    assert_eq!(
        (new.subscriber.as_str(), new.device.as_str()),
        ("asso", "pc")
    );
    {
        let store = coffre_store::Store::open(&data).unwrap();
        let e = store.authenticate(&[7; 32]).unwrap_err().to_string();
        assert!(e.contains("replaced by the operator on 20"), "{e}");
        store.authenticate(&new.secret).unwrap();
    }
    let unknown = one_line_error(&server(&data, &["device", "reissue", "asso", "nobody"]));
    assert!(
        unknown.contains("\"nobody\" of \"asso\" not found"),
        "{unknown}"
    );
    ok(&server(&data, &["device", "revoke", "asso", "pc"]));
    let revoked = one_line_error(&server(&data, &["device", "reissue", "asso", "pc"]));
    assert!(revoked.contains("stays revoked"), "{revoked}");
}

/// A device's latest snapshot saved with problems (issue 18: a version 2
/// manifest says how many, never which) shows in `usage`'s table, JSON and
/// CSV; a catalogue rebuilt from the manifests still knows it.
#[test]
fn usage_says_a_devices_last_backup_is_incomplete() {
    use coffre_core::{Keys, Manifest, MasterKey, Timestamp};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&server(&data, &["init", "--listen", "127.0.0.1:7443"]));
    ok(&server(
        &data,
        &["subscriber", "add", "asso", "--quota", "1GB"],
    ));
    let token = ok(&server(&data, &["device", "add", "asso", "pc-compta"]));
    let secret = coffre_proto::Token::parse(token.trim()).unwrap().secret;
    {
        let store = coffre_store::Store::open(&data).unwrap();
        let s = store.authenticate(&secret).unwrap();
        let mut pack = store.open_pack(&s);
        let mut m = Manifest::bare("pc-compta", Timestamp::now(), vec![]);
        m.public.problems = 2;
        let keys = Keys::derive(&MasterKey::from_bytes([3; 32]));
        store
            .commit_snapshot(&s, &mut pack, &m.seal(&keys).unwrap())
            .unwrap();
    }
    let said = "incomplete: last backup of pc-compta incomplete (2 problems)";
    let table = ok(&server(&data, &["usage"]));
    assert!(
        table.contains(said) && table.contains("(incomplete: 2 problems)"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&server(&data, &["usage", "--json"]))).unwrap();
    let asso = &json["subscribers"][0];
    assert_eq!(asso["devices"][0]["latest_problems"], 2, "{json}");
    assert_eq!(asso["status"][0], said, "{json}");
    let csv = ok(&server(&data, &["usage", "--csv"]));
    assert!(csv.contains(said), "{csv}");

    // The catalogue is an index: rebuilt from the manifests, it knows.
    std::fs::remove_file(data.join("catalog.sqlite")).unwrap();
    ok(&server(&data, &["rebuild-catalog"]));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&server(&data, &["usage", "--json"]))).unwrap();
    assert_eq!(
        json["subscribers"][0]["devices"][0]["latest_problems"], 2,
        "{json}"
    );
}
