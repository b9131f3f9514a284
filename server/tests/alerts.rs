//! Alerts that reach people (issue 20), end to end: a real SMTP server
//! (Debian's `python3-aiosmtpd`, STARTTLS required over a certificate made
//! here, a login), a real HTTP receiver for the webhook (axum on loopback),
//! the real `coffre-server run` as a process with `[alerts]` in its
//! config.toml, a backup refused by the real daemon over QUIC, and the
//! commands `alerts test` and `alerts preview`. What is checked is what
//! people read: subjects, names, numbers, who got what, and that nothing
//! is said twice.

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffre_core::Timestamp;
use coffre_store::Store;
use coffre_testkit::{data, Client};
use common::server;

const DAY: i64 = 86_400;
const PYTHON: &str = "/usr/bin/python3";
const OPERATOR: &str = "tech@amie.example";
const LUMIERE: &str = "presidente@lumiere.example";
const VELO: &str = "contact@velo.example";

// ------------------------------------------------------- a real SMTP server

/// The SMTP server: aiosmtpd with STARTTLS required and a login
/// (`starttls`), or TLS from the first byte and a login (`tls`), or neither
/// (`plain`, a local relay); each mail it accepts is parsed by Python's
/// `email` package and written as one JSON file (recipients, decoded
/// subject and text, whether it came over TLS, whether it logged in).
const SMTP_SERVER: &str = r#"
import json, logging, os, ssl, sys, email, email.policy
# Quiet: aiosmtpd 1.4 warns about its own login_data, and a refused handshake is a test's point.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

cert, key, out, port, mode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

def login(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=(auth_data.login == b"coffre" and auth_data.password == b"s3cret"))

class Save:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        Save.count += 1
        record = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": str(msg["subject"]),
            "text": msg.get_content(),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
        }
        tmp = os.path.join(out, ".tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out, "mail-%03d.json" % Save.count))
        return "250 OK"

if mode == "starttls":
    c = Controller(Save(), hostname="127.0.0.1", port=port, tls_context=ctx,
                   require_starttls=True, authenticator=login, auth_require_tls=True,
                   server_hostname="localhost")
elif mode == "tls":
    c = Controller(Save(), hostname="127.0.0.1", port=port, ssl_context=ctx,
                   authenticator=login, auth_require_tls=False, server_hostname="localhost")
else:
    c = Controller(Save(), hostname="127.0.0.1", port=port, server_hostname="localhost")
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

/// A mail as the SMTP server received it, decoded.
#[derive(Debug, serde::Deserialize)]
struct Mail {
    to: Vec<String>,
    subject: String,
    text: String,
    tls: bool,
    authenticated: bool,
}

struct Smtp {
    child: Child,
    port: u16,
    out: PathBuf,
    ca: PathBuf,
}

impl Smtp {
    /// The STARTTLS server with a login, in `dir`.
    fn start(dir: &Path) -> Smtp {
        Smtp::start_as(dir, "starttls")
    }

    /// The server in `mode` ("starttls", "tls" or "plain"), in `dir/mode`.
    fn start_as(dir: &Path, mode: &str) -> Smtp {
        Smtp::start_on(dir, mode, free_port())
    }

    /// [`Smtp::start_as`] on `port`.
    fn start_on(dir: &Path, mode: &str, port: u16) -> Smtp {
        let dir = &dir.join(mode);
        std::fs::create_dir_all(dir).unwrap();
        let probe = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .output();
        assert!(
            probe.as_ref().is_ok_and(|o| o.status.success()),
            "{PYTHON} cannot import aiosmtpd: install Debian's SMTP server for this test \
             (apt-get install python3-aiosmtpd); {probe:?}"
        );
        let (ca, key) = (dir.join("smtp-cert.pem"), dir.join("smtp-key.pem"));
        if !ca.exists() {
            // A server started again in the same folder keeps its certificate.
            let certified =
                rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
            std::fs::write(&ca, certified.cert.pem()).unwrap();
            std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        }
        let out = dir.join("mail");
        std::fs::create_dir_all(&out).unwrap();
        let script = dir.join("smtp.py");
        std::fs::write(&script, SMTP_SERVER).unwrap();
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .args([&ca, &key, &out])
            .arg(port.to_string())
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        Smtp {
            child,
            port,
            out,
            ca,
        }
    }

    /// Every mail received so far, in order.
    fn mails(&self) -> Vec<Mail> {
        mails_in(&self.out)
    }

    /// Waits (at most 30 s, on the test's runtime) until `n` mails have arrived.
    async fn arrived(&self, n: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{n} mail(s) expected within 30 s, {} arrived: {mails:#?}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The mails the SMTP server wrote into `out`, in order.
fn mails_in(out: &Path) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .collect()
}

impl Smtp {
    /// Waits (at most 30 s) until `n` mails have arrived.
    fn wait_for(&self, n: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{n} mail(s) expected within 30 s, {} arrived: {mails:#?}",
                mails.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// French text uses no-break spaces before colons; the assertions read plain spaces.
fn plain(text: &str) -> String {
    text.replace(['\u{a0}', '\u{202f}'], " ")
}

// ------------------------------------------------ a real webhook receiver

/// An HTTP server on loopback that keeps every JSON body POSTed to it.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn hook() -> Hook {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let keep = keep.clone();
            async move {
                keep.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).expect("a JSON body"));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Hook {
        url: format!("http://{addr}/hook?topic=amie-coffre"),
        got,
    }
}

// ------------------------------------------------------------ the association

/// Backs up `chunks` chunks of 100 kB for `device` through the store, as a
/// client does (real encrypted blobs, a pack, a sealed manifest).
fn backup(store: &Store, secret: &[u8; 32], device: &str, seed: u64, chunks: u64) {
    let mut client = Client::new(seed as u8);
    let s = store.authenticate(secret).unwrap();
    let mut pack = store.open_pack(&s);
    let ids = (0..chunks)
        .map(|i| {
            client
                .put(store, &s, &mut pack, &data(seed * 1000 + i, 100_000))
                .0
        })
        .collect();
    let manifest = client.seal_manifest(device, Timestamp::now(), ids, 300_000 * chunks, chunks);
    store.commit_snapshot(&s, &mut pack, &manifest).unwrap();
}

/// An association of two structures, each with a contact and a PC backed
/// up just now; coop-velo's PC last backed up five days ago (stale).
/// Returns the secret of asso-lumiere's second PC, never used yet.
fn association(data: &Path) -> [u8; 32] {
    common::ok(&server(data, &["init", "--listen", "127.0.0.1:0"]));
    common::ok(&server(
        data,
        &[
            "subscriber",
            "add",
            "asso-lumiere",
            "--quota",
            "1GB",
            "--contact",
            LUMIERE,
        ],
    ));
    common::ok(&server(
        data,
        &[
            "subscriber",
            "add",
            "coop-velo",
            "--quota",
            "1GB",
            "--contact",
            VELO,
        ],
    ));
    let accueil = common::device(data, "asso-lumiere", "pc-accueil");
    let second = common::device(data, "asso-lumiere", "pc-compta");
    let atelier = common::device(data, "coop-velo", "pc-atelier");
    {
        let store = Store::open(data).unwrap();
        backup(&store, &accueil, "pc-accueil", 1, 3);
        backup(&store, &second, "pc-compta", 2, 1);
        backup(&store, &atelier, "pc-atelier", 3, 2);
    }
    let db = rusqlite::Connection::open(data.join("catalog.sqlite")).unwrap();
    let changed = db
        .execute(
            "UPDATE devices SET last_backup = last_backup - ?1 WHERE name = 'pc-atelier'",
            [5 * DAY],
        )
        .unwrap();
    assert_eq!(changed, 1);
    second
}

/// Writes `[alerts]` into config.toml: mail through the test's SMTP server
/// (STARTTLS on its port, a login, its certificate as `ca_file`).
fn configure(data: &Path, smtp: &Smtp, operator: &[&str], lang: &str) {
    let path = data.join("config.toml");
    let mut config: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config.insert("nightly_at".into(), "off".into());
    let alerts: toml::Table = toml::from_str(&format!(
        r#"
        operator = {operator:?}
        lang = "{lang}"
        board_url = "https://coffre.amie.example/"
        check_every = 1
        [mail]
        host = "localhost"
        port = {port}
        security = "starttls"
        username = "coffre"
        password = "s3cret"
        from = "coffre <coffre@amie.example>"
        ca_file = "{ca}"
        "#,
        port = smtp.port,
        ca = smtp.ca.display()
    ))
    .unwrap();
    config.insert("alerts".into(), alerts.into());
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
}

// ---------------------------------------------------------- the daemon

struct Daemon {
    child: Child,
    addr: String,
}

/// Starts `coffre-server run` and waits for its QUIC address and its
/// alerts' watcher; the rest of its log is drained.
fn run(data: &Path) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffre-server"))
        .args(["run", "--data"])
        .arg(data)
        .env("COFFRE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let (mut addr, mut watching) = (None, false);
    let mut line = String::new();
    while addr.is_none() || !watching {
        line.clear();
        assert!(log.read_line(&mut line).unwrap() > 0, "the daemon exited");
        if line.contains("coffre-server listening") {
            let at = line.find("addr=").unwrap() + 5;
            addr = Some(line[at..].split_whitespace().next().unwrap().to_string());
        }
        watching |= line.contains("alerts: watching");
    }
    std::thread::spawn(move || {
        // The log, for a failing test's output.
        for line in log.lines().map_while(Result::ok) {
            eprintln!("daemon: {line}");
        }
    });
    Daemon {
        child,
        addr: addr.unwrap(),
    }
}

impl Daemon {
    fn stop(mut self) {
        assert!(Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fingerprint(data: &Path) -> [u8; 32] {
    let token = common::ok(&server(data, &["device", "add", "asso-lumiere", "pc-test"]));
    coffre_proto::Token::parse(token.trim())
        .unwrap()
        .fingerprint
}

// ---------------------------------------------------------------- the tests

/// A structure over its quota whose backup is refused: one message at once
/// to the operator (mail and webhook) and to that structure's contact, none
/// to the other structure's contact; nothing again at the next looks, nor
/// after a restart of the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_backup_is_told_at_once_once_and_only_to_whom_it_concerns() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let second = association(&data);
    let fingerprint = fingerprint(&data);
    let smtp = Smtp::start(tmp.path());
    let hook = hook().await;
    configure(&data, &smtp, &[OPERATOR, &hook.url], "fr");

    let daemon = run(&data);
    // A stale PC is for the digest, not for now: nothing leaves.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(smtp.mails().is_empty(), "{:#?}", smtp.mails());
    assert!(hook.got.lock().unwrap().is_empty());

    // The quota is lowered below what is stored; the next backup is refused.
    let used = Store::open(&data)
        .unwrap()
        .subscriber("asso-lumiere")
        .unwrap()
        .used_bytes;
    let quota = used * 8 / 10;
    common::ok(&server(
        &data,
        &[
            "subscriber",
            "set",
            "asso-lumiere",
            "--quota",
            &format!("{quota}B"),
        ],
    ));
    let remote = coffre_client::Remote::connect(&daemon.addr, fingerprint, second)
        .await
        .unwrap();
    let (id, blob) = Client::new(2).blob(&coffre_testkit::data(99, 100_000));
    let refused = remote.put_chunk(&id, blob).await.unwrap_err();
    assert!(refused.to_string().contains("quota"), "{refused}");

    let mails = smtp.arrived(2).await;
    let mut to: Vec<&str> = mails.iter().map(|m| m.to[0].as_str()).collect();
    to.sort();
    assert_eq!(to, [LUMIERE, OPERATOR], "and not {VELO}");
    for m in &mails {
        assert!(m.tls && m.authenticated, "STARTTLS and the login: {m:?}");
        assert_eq!(
            plain(&m.subject),
            "[coffre] asso-lumiere : sauvegardes refusées, quota plein"
        );
        let text = plain(&m.text);
        assert!(
            text.contains(&format!(
                "{} utilisés sur {}",
                fr_bytes(used),
                fr_bytes(quota)
            )),
            "the numbers: {text}"
        );
        assert!(
            text.contains("Quota dépassé (ou égal à 0) : les nouvelles sauvegardes sont refusées"),
            "{text}"
        );
        assert!(
            text.contains("augmenter le quota"),
            "what frees space: {text}"
        );
        assert!(text.contains("https://coffre.amie.example/"));
        assert!(!text.contains("coop-velo"), "one structure's mail: {text}");
    }
    // The webhook: one POST, JSON with what a chat or ntfy shows.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hook.got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no webhook POST within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let got = hook.got.lock().unwrap();
        let body = &got[0];
        assert_eq!(
            plain(body["title"].as_str().unwrap()),
            "asso-lumiere : sauvegardes refusées, quota plein"
        );
        assert_eq!(body["urgent"], true);
        assert_eq!(body["priority"], 5);
        assert_eq!(body["topic"], "amie-coffre");
        assert!(body["message"].as_str().unwrap().contains("Quota dépassé"));
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["kind"], "over_quota");
        assert_eq!(events[0]["subscriber"], "asso-lumiere");
        assert_eq!(events[0]["key"], "asso-lumiere/over_quota/-");
        assert_eq!(events[0]["used_bytes"], used);
        assert_eq!(events[0]["quota_bytes"], quota);
    }

    // The next looks (one a second) say nothing new.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.mails().len(), 2);
    assert_eq!(hook.got.lock().unwrap().len(), 1);

    // What was told is kept: a restarted daemon does not tell it again.
    daemon.stop();
    let state = data.join("alerts.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let daemon = run(&data);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.mails().len(), 2, "{:#?}", smtp.mails());
    assert_eq!(hook.got.lock().unwrap().len(), 1);
    daemon.stop();
}

/// "1,2 Go" as the French page writes it.
fn fr_bytes(n: u64) -> String {
    plain(&coffre_server::Lang::Fr.bytes(n))
}

/// The nightly digest, as the daemon's nightly run sends it: the stale PC
/// in French, nothing when nothing is new, in English when configured; and
/// `alerts preview` prints the same without sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_tells_what_is_new_in_french_or_english_and_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    association(&data);
    let smtp = Smtp::start(tmp.path());
    configure(&data, &smtp, &[OPERATOR], "fr");

    // `alerts preview` shows tonight's digest and sends nothing.
    let preview = common::ok(&server(&data, &["alerts", "preview", "--lang", "en"]));
    let preview = plain(&preview);
    assert!(
        preview.contains(&format!("==== to {OPERATOR}"))
            && preview.contains("Subject: [coffre] Nightly digest: 1 new (coop-velo)")
            && preview.contains("* coop-velo: pc-atelier not backed up for 5 days"),
        "{preview}"
    );
    assert!(
        preview.contains(&format!("==== to {VELO}")),
        "the contact's digest too: {preview}"
    );
    assert!(
        preview.contains(&format!(
            "==== to {LUMIERE}\n(nothing new: no digest tonight)"
        )),
        "{preview}"
    );
    assert!(smtp.mails().is_empty());

    let digest = |data: PathBuf| async move {
        let config = coffre_server::DataDir::new(&data).config().unwrap();
        let alerts = coffre_server::Alerts::new(&data, &config).unwrap().unwrap();
        let store = Arc::new(Store::open(&data).unwrap());
        alerts.digest(&store).await.unwrap()
    };
    // Tonight: the operator and coop-velo's contact hear of the stale PC,
    // asso-lumiere's contact, with nothing new, hears nothing.
    assert_eq!(digest(data.clone()).await, 2);
    let mails = smtp.arrived(2).await;
    let mut to: Vec<&str> = mails.iter().map(|m| m.to[0].as_str()).collect();
    to.sort();
    assert_eq!(to, [VELO, OPERATOR]);
    for m in &mails {
        assert_eq!(
            plain(&m.subject),
            "[coffre] Résumé de la nuit : 1 nouveauté (coop-velo)"
        );
        let text = plain(&m.text);
        assert!(
            text.contains("* coop-velo : pc-atelier sans sauvegarde depuis 5 jours"),
            "{text}"
        );
        assert!(text.contains("« pc-atelier » n’a pas été sauvegardé depuis 5 jours"));
        assert!(!text.contains("asso-lumiere"), "{text}");
    }

    // The next night, nothing new: nothing at all.
    assert_eq!(digest(data.clone()).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.mails().len(), 2);

    // In English, for a new address that reads English (`languages`):
    // everything is new to it; coop-velo's contact, told already, hears
    // nothing again.
    configure(&data, &smtp, &[OPERATOR, "board@amie.example"], "fr");
    let path = data.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[alerts]\n",
        "[alerts]\nlanguages = { \"board@amie.example\" = \"en\" }\n",
    );
    std::fs::write(&path, text).unwrap();
    assert_eq!(digest(data.clone()).await, 1);
    let mails = smtp.arrived(3).await;
    let m = &mails[2];
    assert_eq!(m.to, ["board@amie.example"]);
    assert_eq!(m.subject, "[coffre] Nightly digest: 1 new (coop-velo)");
    let text = plain(&m.text);
    assert!(
        text.starts_with("New since the last digest:")
            && text.contains("* coop-velo: pc-atelier not backed up for 5 days")
            && text.contains("“pc-atelier” has not been backed up for 5 days")
            && text.contains("The board's page: https://coffre.amie.example/"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.mails().len(), 3);
}

/// `alerts test` writes to every recipient and says which worked and why
/// not: a webhook nobody listens to, a mail server whose certificate is
/// not trusted.
#[test]
fn alerts_test_says_which_recipient_worked_and_why_not() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    association(&data);
    let smtp = Smtp::start(tmp.path());
    let nobody = format!("http://127.0.0.1:{}/hook", free_port());
    configure(&data, &smtp, &[OPERATOR, &nobody], "en");

    let out = server(&data, &["alerts", "test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a recipient failed: {stdout}");
    assert!(
        stdout.contains(&format!("sent     {OPERATOR} (mail)")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("sent     {LUMIERE} (mail)")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "FAILED   {nobody} (webhook): POST {nobody} failed"
        )),
        "{stdout}"
    );
    let err = common::one_line_error(&out);
    assert!(
        err.contains("1 of 4 test message(s) not delivered"),
        "{err}"
    );
    let mails = smtp.wait_for(3);
    assert!(mails
        .iter()
        .all(|m| m.subject == "[coffre] test message" && m.text.contains("alerts reach you")));

    // Without the mail server's certificate, STARTTLS fails, and says so.
    let path = data.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, text).unwrap();
    let out = server(&data, &["alerts", "test", "--to", OPERATOR]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains(&format!(
            "FAILED   {OPERATOR} (mail): STARTTLS refused by localhost:{} (STARTTLS)",
            smtp.port
        )),
        "{stdout}"
    );
    assert_eq!(smtp.mails().len(), 3, "nothing more arrived");

    // A structure's contact is shown, refused when it is no address, and removed with "".
    let show = common::ok(&server(&data, &["subscriber", "show", "coop-velo"]));
    assert!(show.contains(&format!("contact     {VELO}\n")), "{show}");
    let bad = server(
        &data,
        &[
            "subscriber",
            "set",
            "coop-velo",
            "--contact",
            "pas une adresse",
        ],
    );
    let err = common::one_line_error(&bad);
    assert!(err.contains("is neither a mail address"), "{err}");
    common::ok(&server(
        &data,
        &["subscriber", "set", "coop-velo", "--contact", ""],
    ));
    let show = common::ok(&server(&data, &["subscriber", "show", "coop-velo"]));
    assert!(
        show.contains("contact     (none: only the operator hears of its alerts)"),
        "{show}"
    );
}

/// A mail server that is down when the alert is due: the daemon logs it,
/// keeps serving, and sends the alert once the server is back, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_leave_is_tried_again_at_the_next_look() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    association(&data);
    let used = Store::open(&data)
        .unwrap()
        .subscriber("coop-velo")
        .unwrap()
        .used_bytes;
    common::ok(&server(
        &data,
        &[
            "subscriber",
            "set",
            "coop-velo",
            "--quota",
            &format!("{}B", used / 2),
        ],
    ));
    // The mail server, configured, then stopped before the daemon starts.
    let smtp = Smtp::start(tmp.path());
    let port = smtp.port;
    configure(&data, &smtp, &[OPERATOR], "en");
    drop(smtp);
    let daemon_log = tmp.path().join("daemon.log");
    let mut daemon = Daemon {
        child: Command::new(env!("CARGO_BIN_EXE_coffre-server"))
            .args(["run", "--data"])
            .arg(&data)
            .env("COFFRE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&daemon_log).unwrap())
            .spawn()
            .unwrap(),
        addr: String::new(),
    };
    let logged = |what: &str| std::fs::read_to_string(&daemon_log).unwrap().contains(what);
    let deadline = Instant::now() + Duration::from_secs(30);
    // The second mail of the look does not wait for the same timeout again.
    while !(logged("alert not delivered") && logged("the mail server failed earlier in this look"))
    {
        assert!(
            Instant::now() < deadline,
            "no failed delivery logged: {}",
            std::fs::read_to_string(&daemon_log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon goes on"
    );

    // Back, on the same port with the same certificate.
    let smtp = Smtp::start_on(tmp.path(), "starttls", port);
    let mails = smtp.arrived(2).await;
    let mut to: Vec<&str> = mails.iter().map(|m| m.to[0].as_str()).collect();
    to.sort();
    assert_eq!(to, [VELO, OPERATOR]);
    for m in &mails {
        assert_eq!(m.subject, "[coffre] coop-velo: backups refused, quota full");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.mails().len(), 2, "sent once to each");
    assert!(logged("alert sent"));
    daemon.stop();
}

/// Edits `[alerts.mail]` of config.toml.
fn set_mail(data: &Path, edit: impl FnOnce(&mut toml::Table)) {
    let path = data.join("config.toml");
    let mut config: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mail = config["alerts"]["mail"].as_table().unwrap().clone();
    let mut mail = mail;
    edit(&mut mail);
    config["alerts"].as_table_mut().unwrap()["mail"] = mail.into();
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
}

/// Mail also leaves by TLS from the first byte (port 465's way) and through
/// a plain local relay; a server that does not offer STARTTLS is refused
/// when STARTTLS is asked for: nothing, the login least of all, goes in clear.
#[test]
fn mail_leaves_by_implicit_tls_or_a_plain_relay_and_never_in_clear_by_mistake() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    association(&data);
    let tls = Smtp::start_as(tmp.path(), "tls");
    let relay = Smtp::start_as(tmp.path(), "plain");
    configure(&data, &tls, &[OPERATOR], "en");
    let test = |data: &Path| {
        let out = server(data, &["alerts", "test", "--to", OPERATOR]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };

    set_mail(&data, |m| {
        m.insert("security".into(), "tls".into());
    });
    let (ok, stdout) = test(&data);
    assert!(ok, "{stdout}");
    let mails = tls.wait_for(1);
    assert!(mails[0].tls && mails[0].authenticated, "{:?}", mails[0]);
    assert_eq!(mails[0].subject, "[coffre] test message");

    // STARTTLS asked of a server that does not offer it: refused, nothing sent.
    set_mail(&data, |m| {
        m.insert("port".into(), i64::from(relay.port).into());
        m.insert("security".into(), "starttls".into());
    });
    let (ok, stdout) = test(&data);
    assert!(!ok);
    assert!(
        stdout.contains(&format!(
            "FAILED   {OPERATOR} (mail): STARTTLS refused by localhost:{} (STARTTLS)",
            relay.port
        )),
        "{stdout}"
    );
    assert!(relay.mails().is_empty());

    // A plain local relay, without a login, when the operator says so.
    set_mail(&data, |m| {
        m.insert("security".into(), "plain".into());
        m.remove("username");
        m.remove("password");
    });
    let (ok, stdout) = test(&data);
    assert!(ok, "{stdout}");
    let mails = relay.wait_for(1);
    assert!(!mails[0].tls && !mails[0].authenticated, "{:?}", mails[0]);
    assert_eq!(mails[0].to, [OPERATOR]);
}

/// A webhook receiver over HTTPS (Python's `http.server` in an `ssl`
/// context over a certificate made here): each POST kept as one JSON file
/// (path, Authorization, Content-Type, body).
const HTTPS_RECEIVER: &str = r#"
import http.server, json, os, ssl, sys
cert, key, out, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
class Keep(http.server.BaseHTTPRequestHandler):
    count = 0
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Keep.count += 1
        record = {"path": self.path, "auth": self.headers.get("Authorization"),
                  "type": self.headers.get("Content-Type"), "body": json.loads(body)}
        tmp = os.path.join(out, ".tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out, "post-%03d.json" % Keep.count))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Keep)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
"#;

/// A webhook over HTTPS: its server's certificate trusted through
/// `[alerts.webhook] ca_file`, the token sent as a bearer token; without
/// the CA, refused, and said so.
#[test]
fn a_webhook_over_https_trusts_its_ca_file_and_sends_its_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    association(&data);
    // The receiver: Python's standard library only.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (ca, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&ca, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (script, out) = (tmp.path().join("https.py"), tmp.path().join("posts"));
    std::fs::write(&script, HTTPS_RECEIVER).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    let mut child = Command::new(PYTHON)
        .arg(&script)
        .args([&ca, &key, &out])
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let receiver = Reaped(child);
    assert_eq!(line.trim(), "ready");

    let url = format!("https://localhost:{port}/coffre?topic=amie");
    let path = data.join("config.toml");
    let mut config: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let alerts: toml::Table = toml::from_str(&format!(
        "operator = [{url:?}]\n[webhook]\ntoken = \"tk_secret\"\nca_file = {:?}\n",
        ca.display().to_string()
    ))
    .unwrap();
    config.insert("alerts".into(), alerts.into());
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();

    let out_of = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();
    let sent = server(&data, &["alerts", "test", "--to", &url]);
    assert!(sent.status.success(), "{}", out_of(&sent));
    assert!(out_of(&sent).contains(&format!("sent     {url} (webhook)")));
    let posted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("post-001.json")).unwrap()).unwrap();
    assert_eq!(posted["path"], "/coffre?topic=amie");
    assert_eq!(posted["auth"], "Bearer tk_secret");
    assert_eq!(posted["type"], "application/json");
    let body = &posted["body"];
    assert_eq!(body["title"], "message d’essai");
    assert_eq!(
        (&body["priority"], &body["urgent"]),
        (&3.into(), &false.into())
    );
    assert_eq!(body["topic"], "amie");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("les alertes vous parviennent"));

    // Without the CA, the certificate is not trusted: nothing is sent.
    let text = std::fs::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, text).unwrap();
    let refused = server(&data, &["alerts", "test", "--to", &url]);
    assert!(!refused.status.success());
    let said = out_of(&refused);
    assert!(
        said.contains(&format!("FAILED   {url} (webhook): POST {url} failed"))
            && said.to_lowercase().contains("certificate"),
        "{said}"
    );
    assert!(!out.join("post-002.json").exists());
    drop(receiver);
}

/// A child process killed when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
