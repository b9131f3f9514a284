//! `coffre-server` with its packs on a real Garage: `init --storage s3://...`
//! checks the bucket and the credentials before it creates anything, reads
//! the credentials from the environment (never writing nor printing the
//! secret), and the admin commands (gc, verify, rebuild-catalog) work on the
//! bucket. Fails if the `garage` binary is missing (see `coffre_testkit::garage`).

mod common;

use std::path::Path;
use std::process::Output;

use coffre_testkit::garage::Garage;

/// `coffre-server ARGS --data DATA` with the given S3 credentials (none
/// inherited from the test's environment).
fn server_with(data: &Path, args: &[&str], key: Option<(&str, &str)>) -> Output {
    let mut cmd = common::command(data, args);
    for var in [
        "COFFRE_S3_ACCESS_KEY_ID",
        "COFFRE_S3_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        cmd.env_remove(var);
    }
    if let Some((id, secret)) = key {
        cmd.env("COFFRE_S3_ACCESS_KEY_ID", id)
            .env("COFFRE_S3_SECRET_ACCESS_KEY", secret);
    }
    cmd.output().expect("run coffre-server")
}

#[test]
fn init_on_garage_checks_the_bucket_keeps_the_secret_out_and_admin_commands_use_it() {
    let g = Garage::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let url = g.url("server");
    let init = ["init", "--listen", "127.0.0.1:0", "--storage", url.as_str()];

    // No credentials: one clear line naming where to put them; nothing made.
    let out = server_with(&data, &init, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("COFFRE_S3_SECRET_ACCESS_KEY"), "{err}");
    assert!(!data.join("config.toml").exists());

    // A wrong secret: refused by the store, the secret never shown.
    let wrong = "5ec7e7".repeat(10);
    let out = server_with(&data, &init, Some((&g.key_id, &wrong)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("object store"), "{err}");
    assert!(!err.contains(&wrong), "the secret is never printed: {err}");
    assert!(!data.join("config.toml").exists());

    // The right key, from the environment: created, the URL in config.toml,
    // the secret nowhere in it nor in what was printed.
    let key = Some((g.key_id.as_str(), g.secret.as_str()));
    let out = server_with(&data, &init, key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("s3://coffre-test/server"), "{printed}");
    assert!(!printed.contains(&g.secret));
    let config = std::fs::read_to_string(data.join("config.toml")).unwrap();
    assert!(
        config.contains("[storage]") && config.contains(&url),
        "{config}"
    );
    assert!(!config.contains(&g.secret));

    // The admin commands find the bucket through config.toml + environment.
    for args in [
        &["subscriber", "add", "jardins", "--quota", "1GiB"][..],
        &["gc"],
        &["verify"],
        &["rebuild-catalog", "--replace"],
        &["subscriber", "list"],
    ] {
        let out = server_with(&data, args, key);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Without the credentials they fail plainly instead of using the disk.
    let out = server_with(&data, &["verify"], None);
    assert!(!out.status.success());

    // Debug output of the configuration hides the secret.
    let storage = g.storage("server");
    assert!(!format!("{storage:?}").contains(&g.secret));
    let section = coffre_server::StorageConfig {
        url,
        access_key_id: Some(g.key_id.clone()),
        secret_access_key: Some(g.secret.clone()),
        capacity: None,
    };
    assert!(!format!("{section:?}").contains(&g.secret));
}
