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
        table.contains("asso-jardins") && table.contains("50.0 GiB"),
        "{table}"
    );
    let show = ok(&server(&data, &["subscriber", "show", "asso-jardins"]));
    assert!(
        show.contains("technicien") && show.contains("revoked"),
        "{show}"
    );
}

#[test]
fn commands_on_a_missing_data_directory_say_how_to_create_one() {
    let tmp = tempfile::tempdir().unwrap();
    let err = one_line_error(&server(&tmp.path().join("nothing"), &["usage"]));
    assert!(err.contains("coffre-server init"), "{err}");
}
