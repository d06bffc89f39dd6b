//! The CLI conventions against real `warrant` processes: `--endpoints` and `WARRANT_ENDPOINTS`
//! (tried in order; never read by the server's config loader), `-o table|json` on the read
//! verbs, the exit codes that tell unreachable (3) from refused (4), `warrant health`,
//! `warrant config check`, `warrant completions` and `warrant version`.

mod support;

use std::{
    fs,
    net::TcpListener,
    process::{Command, Output, Stdio},
    time::Duration,
};

use support::{Certs, Node, warrant_command};

/// How long the test waits for a node it started itself to serve.
const SERVE_WAIT_MAX: Duration = Duration::from_secs(60);
/// How often it asks.
const SERVE_POLL_INTERVAL: Duration = Duration::from_millis(200);

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run warrant")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `warrant ARGS` with the test CA and the node's admin token in the CLI's variables.
fn cli(node: &Node, args: &[&str]) -> Output {
    run(warrant_command()
        .args(args)
        .env("WARRANT_CLI_CA", Certs::shared().ca_file())
        .env(
            "WARRANT_CLI_ADMIN_TOKEN",
            node.admin_auth().trim_start_matches("Bearer "),
        ))
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_exits_3_and_refused_exits_4() {
    let node = Node::start().await;
    let dead = format!("127.0.0.1:{}", closed_port());

    let out = cli(&node, &["cluster", "status", "--endpoints", &dead]);
    assert_eq!(code(&out), 3, "connection refused: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("unreachable"),
        "{}",
        text(&out.stderr)
    );

    // A listener that takes the connection and closes it: the TLS handshake fails.
    let closer = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closer_addr = closer.local_addr().expect("addr").to_string();
    let accepting = std::thread::spawn(move || {
        if let Ok((stream, _)) = closer.accept() {
            drop(stream);
        }
    });
    let out = cli(&node, &["policy", "list", "--endpoints", &closer_addr]);
    assert_eq!(code(&out), 3, "handshake failed: {}", text(&out.stderr));
    accepting.join().expect("the closer ran");

    // DNS: a name that does not resolve.
    let out = cli(
        &node,
        &["audit", "keys", "--endpoints", "no-such-host.invalid:7400"],
    );
    assert_eq!(code(&out), 3, "no such host: {}", text(&out.stderr));

    // The node answers and refuses: a wrong admin token, then a version that does not exist.
    let out = run(warrant_command()
        .args([
            "operator",
            "add",
            "--endpoints",
            &node.addr(),
            "--operator-id",
            "ops",
        ])
        .args(["--role", "operator"])
        .env("WARRANT_CLI_CA", Certs::shared().ca_file())
        .env("WARRANT_CLI_ADMIN_TOKEN", "not-the-admin-token-at-all"));
    assert_eq!(code(&out), 4, "wrong token: {}", text(&out.stderr));
    let out = cli(
        &node,
        &["policy", "get", "4242", "--endpoints", &node.addr()],
    );
    assert_eq!(code(&out), 4, "no such version: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("NOT_FOUND") || text(&out.stderr).contains("not found"));

    // A usage error is clap's 2; an error of the CLI's own (no CA for a TLS endpoint) is 1.
    let out = cli(&node, &["cluster", "status", "--no-such-flag"]);
    assert_eq!(code(&out), 2);
    let out = run(warrant_command().args(["cluster", "status", "--endpoints", &node.addr()]));
    assert_eq!(code(&out), 1, "no CA: {}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_tried_in_order_from_the_flag_or_the_environment() {
    let node = Node::start().await;
    let dead = format!("127.0.0.1:{}", closed_port());
    let list = format!("{dead},{}", node.addr());

    let out = cli(
        &node,
        &["cluster", "status", "-o", "json", "--endpoints", &list],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["id"], 1, "{rows}");

    let out = run(warrant_command()
        .args(["cluster", "status", "-o", "json"])
        .env("WARRANT_CLI_CA", Certs::shared().ca_file())
        .env("WARRANT_ENDPOINTS", &list));
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["role"], "LEADER", "{rows}");

    // The old flag still works.
    let out = cli(&node, &["cluster", "status", "--endpoint", &node.addr()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("LEADER"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_verbs_print_json_with_dash_o_json_and_tables_by_default() {
    let node = Node::start().await;
    node.register_human("alice").await; // the audit tree is not empty: a checkpoint signs it
    let endpoint = node.addr();
    let verbs: [&[&str]; 6] = [
        &["cluster", "status"],
        &["policy", "list"],
        &["audit", "checkpoint", "--fresh"],
        &["audit", "keys"],
        &["health"],
        &["audit", "query", "--limit", "3"],
    ];
    for verb in verbs {
        let mut args = verb.to_vec();
        args.extend(["--endpoints", &endpoint, "-o", "json"]);
        let out = cli(&node, &args);
        assert_eq!(code(&out), 0, "{verb:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let parsed = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            || serde_json::from_str::<serde_json::Value>(&stdout).is_ok();
        assert!(parsed, "{verb:?} -o json printed non-JSON: {stdout}");

        let mut args = verb.to_vec();
        args.extend(["--endpoints", &endpoint]);
        let out = cli(&node, &args);
        assert_eq!(code(&out), 0, "{verb:?}: {}", text(&out.stderr));
        assert!(
            serde_json::from_slice::<serde_json::Value>(&out.stdout).is_err(),
            "{verb:?} printed JSON without -o json"
        );
    }
    // `text`, the old name of `table`, is still accepted.
    let out = cli(
        &node,
        &["policy", "list", "--endpoints", &endpoint, "-o", "text"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
}

/// The config of a one-node cluster on `port` (peer and HTTP ports free too), in `dir`.
fn one_node_config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let certs = Certs::shared();
    let (cert, key) = certs.node_files(1);
    let config = format!(
        "node_id = 1\ndata_dir = {data:?}\nlisten_addr = \"127.0.0.1:{port}\"\n\
         peer_listen_addr = \"127.0.0.1:{peer}\"\nadmin_token = \"test-admin-token-0123456789\"\n\
         init_single_node = true\n[tls]\nca_file = {ca:?}\ncert_file = {cert:?}\nkey_file = {key:?}\n",
        data = dir.join("data").display().to_string(),
        peer = closed_port(),
        ca = certs.ca_file().display().to_string(),
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    );
    let path = dir.join("warrant.toml");
    fs::write(&path, config).expect("write config");
    path
}

/// The server ignores WARRANT_ENDPOINTS and WARRANT_CLI_* (CLI variables) and starts; then
/// `warrant health` reports it SERVING (exit 0), and `config check` takes the same config with
/// the same variables set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_with_the_cli_variables_set() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = closed_port();
    let config = one_node_config(dir.path(), port);
    let endpoint = format!("127.0.0.1:{port}");
    let stderr = fs::File::create(dir.path().join("stderr.log")).expect("log");
    let mut child = warrant_command()
        .args(["server", "--config"])
        .arg(&config)
        .env("WARRANT_ENDPOINTS", format!("{endpoint},127.0.0.1:1"))
        .env("WARRANT_CLI_CA", Certs::shared().ca_file())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn the server");
    let deadline = tokio::time::Instant::now() + SERVE_WAIT_MAX;
    let serving = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            panic!(
                "the server exited with {exit}: {}",
                fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
            );
        }
        let out = run(warrant_command()
            .args(["health", "--endpoints", &endpoint, "-o", "json"])
            .env("WARRANT_CLI_CA", Certs::shared().ca_file()));
        if code(&out) == 0 {
            break text(&out.stdout);
        }
        if tokio::time::Instant::now() >= deadline {
            break String::new();
        }
        tokio::time::sleep(SERVE_POLL_INTERVAL).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(serving.contains("SERVING"), "never served: {serving}");

    let out = run(warrant_command()
        .args(["config", "check"])
        .arg(&config)
        .env("WARRANT_ENDPOINTS", &endpoint)
        .env("WARRANT_CLI_ADMIN_TOKEN", "x"));
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
}

#[test]
fn config_check_names_every_bad_key_and_what_it_allows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    fs::write(
        &path,
        "node_id = \"one\"\nlog_format = \"xml\"\ntoken_ttl_default_s = 0\ncolour = \"blue\"\n\
         admin_token = \"test-admin-token-0123456789\"\ninsecure_plaintext = true\n",
    )
    .expect("write");
    let out = run(warrant_command()
        .args(["config", "check", "--skip-files"])
        .arg(&path));
    assert_eq!(code(&out), 1);
    let stderr = text(&out.stderr);
    for expected in [
        "key node_id: invalid type",
        "allowed: 1 or more",
        "key log_format is \"xml\"; allowed: text, json",
        "key token_ttl_default_s is 0; allowed: 1 to",
        "unknown key colour; allowed keys here: node_id,",
    ] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }

    let good = dir.path().join("good.toml");
    fs::write(
        &good,
        "admin_token = \"test-admin-token-0123456789\"\ninsecure_plaintext = true\n",
    )
    .expect("write");
    let out = run(warrant_command().args(["config", "check"]).arg(&good));
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));

    // A file the config names that cannot be read is a problem, unless --skip-files.
    let files = dir.path().join("files.toml");
    fs::write(
        &files,
        "admin_token_file = \"/nonexistent/admin-token\"\n[tls]\nca_file = \"/nonexistent/ca.pem\"\n\
         cert_file = \"/nonexistent/node.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
    )
    .expect("write");
    let out = run(warrant_command().args(["config", "check"]).arg(&files));
    assert_eq!(code(&out), 1);
    assert!(text(&out.stderr).contains("key tls.cert_file: cannot read /nonexistent/node.pem"));
    let out = run(warrant_command()
        .args(["config", "check", "--skip-files"])
        .arg(&files));
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
}

#[test]
fn completions_cover_the_command_tree_and_version_prints_the_build() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(warrant_command().args(["completions", shell]));
        assert_eq!(code(&out), 0, "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["cluster", "audit", "endpoints", "completions"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = run(warrant_command().args(["version", "-o", "json"]));
    assert_eq!(code(&out), 0);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        info["rustc"]
            .as_str()
            .is_some_and(|r| r.starts_with("rustc "))
    );
    let out = run(warrant_command().arg("--help"));
    assert!(
        text(&out.stdout).contains("3 unreachable"),
        "exit codes in --help"
    );
}
