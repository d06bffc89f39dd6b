//! `warrant server` refuses a bad configuration before it touches any data, with a message that
//! names the key. Runs the real binary; each case must exit non-zero within a bound.

use std::{
    io::Read,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// A config error is reported at start-up, long before this.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(30);
/// The admin token, and plaintext: these cases are about other keys (a config needs one of
/// `[tls]` and `insecure_plaintext`, which `tls_or_plaintext_is_required` checks).
const TOKEN: &str = "admin_token = \"a-long-enough-admin-token\"\ninsecure_plaintext = true";

/// Runs `warrant server` with `toml` (plus a data_dir line) as its config file and `env` set,
/// and returns its stderr.
fn start_with(toml: &str, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("warrant.toml");
    let data_dir = dir.path().join("data");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n{toml}\n", data_dir.display().to_string()),
    )
    .expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_warrant"));
    command
        .arg("server")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn warrant");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let pid = child.id();
    let (exited, exit) = mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait()));
    let status = match exit.recv_timeout(EXIT_WAIT_MAX) {
        Ok(status) => status.expect("wait for warrant"),
        Err(_) => {
            // Only the PID this test started.
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("warrant kept running with a bad config: {toml:?}");
        }
    };
    assert!(
        !status.success(),
        "a bad config must make warrant exit non-zero: {toml:?}"
    );
    let mut text = String::new();
    stderr.read_to_string(&mut text).expect("read stderr");
    assert!(
        !data_dir.exists(),
        "a bad config must not create the data directory: {toml:?}"
    );
    text
}

/// A config file's body, the environment to start with, and the key the error must name.
type Case = (String, Vec<(&'static str, &'static str)>, &'static str);

#[test]
fn bad_values_are_reported_by_key() {
    let cases: Vec<Case> = vec![
        (format!("node_id = \"one\"\n{TOKEN}"), vec![], "node_id"),
        (format!("node_id = 0\n{TOKEN}"), vec![], "node_id"),
        (
            format!("listen_addr = \"not an address\"\n{TOKEN}"),
            vec![],
            "listen_addr",
        ),
        (
            format!("log_format = \"xml\"\n{TOKEN}"),
            vec![],
            "log_format",
        ),
        (format!("unknown_key = 1\n{TOKEN}"), vec![], "unknown_key"),
        (
            format!("token_ttl_default_s = 999999\n{TOKEN}"),
            vec![],
            "token_ttl_default_s",
        ),
        ("admin_token = \"short\"".to_string(), vec![], "admin_token"),
        (String::new(), vec![], "admin_token"),
        (
            TOKEN.to_string(),
            vec![("WARRANT_NODE_ID", "zero")],
            "node_id",
        ),
        (
            format!("peer_secret = \"short\"\n{TOKEN}"),
            vec![],
            "peer_secret",
        ),
        (
            TOKEN.to_string(),
            vec![("WARRANT_PEER_SECRET", "short")],
            "peer_secret",
        ),
        (
            format!("peer_secret_file = \"/nonexistent/peer-secret\"\n{TOKEN}"),
            vec![],
            "peer_secret_file",
        ),
        // The old name is still read, for one release.
        (
            format!("cluster_secret = \"short\"\n{TOKEN}"),
            vec![],
            "cluster_secret",
        ),
        (
            format!(
                "peer_secret = \"a-long-enough-peer-secret\"\n\
                 cluster_secret = \"a-long-enough-peer-secret\"\n{TOKEN}"
            ),
            vec![],
            "cluster_secret",
        ),
        (
            format!(
                "peer_secret_file = \"/nonexistent/peer-secret\"\n\
                 cluster_secret = \"a-long-enough-peer-secret\"\n{TOKEN}"
            ),
            vec![],
            "both set",
        ),
        (
            format!("session_ttl_default_s = 0\n{TOKEN}"),
            vec![],
            "session_ttl_default_s",
        ),
        (
            format!("storage_cache_mib = 4\n{TOKEN}"),
            vec![],
            "storage_cache_mib",
        ),
        (
            TOKEN.to_string(),
            vec![("WARRANT_STORAGE_CACHE_MIB", "100000")],
            "storage_cache_mib",
        ),
        (
            format!(
                "{TOKEN}\n[[federation]]\nissuer = \"https://idp\"\naudience = \"w\"\n\
                 jwks_file = \"/nonexistent/jwks.json\"\njwks_url = \"https://idp/jwks\""
            ),
            vec![],
            "federation[0]",
        ),
        (
            format!(
                "{TOKEN}\n[[federation]]\nissuer = \"https://idp\"\naudience = \"w\"\n\
                 jwks_url = \"http://idp.example/jwks\""
            ),
            vec![],
            "federation[0].jwks_url",
        ),
        (
            format!(
                "{TOKEN}\n[[federation]]\nissuer = \"https://idp\"\naudience = \"w\"\n\
                 jwks_file = \"/nonexistent/jwks.json\""
            ),
            vec![],
            "federation[0].jwks_file",
        ),
        (
            format!(
                "{TOKEN}\n[[federation]]\nissuer = \"https://idp\"\naudience = \"w\"\n\
                 jwks_file = \"/proc/version\""
            ),
            vec![],
            "federation[0].jwks_file",
        ),
        (
            format!(
                "{TOKEN}\n[[federation]]\nissuer = \"https://idp\"\njwks_url = \"https://idp/j\""
            ),
            vec![],
            "audience",
        ),
    ];
    for (toml, env, key) in &cases {
        let stderr = start_with(toml, env);
        // figment names environment keys as spelled there (NODE_ID): compare case-insensitively.
        assert!(
            stderr.to_lowercase().contains(&key.to_lowercase()),
            "config {toml:?} with env {env:?}: stderr does not name {key:?}:\n{stderr}"
        );
    }
}

/// Runs `warrant server` with `toml` (plus a data_dir and a loopback listen_addr line) until it
/// logs that it is serving, stops it, and returns its stderr up to that line.
fn stderr_until_serving(toml: &str) -> String {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("warrant.toml");
    let data_dir = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten_addr = \"127.0.0.1:0\"\npeer_listen_addr = \"127.0.0.1:0\"\n{toml}\n",
            data_dir.display().to_string()
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warrant"))
        .arg("server")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warrant");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (lines, read) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + EXIT_WAIT_MAX;
    let mut text = String::new();
    let serving = loop {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        match read.recv_timeout(wait) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
                if line.contains("started") {
                    break true;
                }
            }
            // The process exited (stderr closed) or the wait ran out.
            Err(_) => break false,
        }
    };
    // Only the process this test started.
    let _ = child.kill();
    let _ = child.wait();
    assert!(serving, "warrant did not start with {toml:?}:\n{text}");
    text
}

/// `peer_secret` is the secret's name; `cluster_secret`, its old name, still works for one
/// release and draws a deprecation warning at start.
#[test]
fn the_peer_secret_is_accepted_under_its_new_and_its_old_name() {
    let new_name = stderr_until_serving(&format!(
        "peer_secret = \"a-long-enough-peer-secret\"\n{TOKEN}"
    ));
    assert!(
        !new_name.contains("deprecated"),
        "the new name draws no warning:\n{new_name}"
    );
    let old_name = stderr_until_serving(&format!(
        "cluster_secret = \"a-long-enough-peer-secret\"\n{TOKEN}"
    ));
    assert!(
        old_name.contains("WARN") && old_name.contains("cluster_secret is deprecated"),
        "the old name draws a deprecation warning:\n{old_name}"
    );
}

/// A node runs TLS unless told otherwise, explicitly: no `[tls]` and no `insecure_plaintext` is
/// an error that says what to set, and so is both.
#[test]
fn tls_or_plaintext_is_required() {
    let neither = start_with("admin_token = \"a-long-enough-admin-token\"", &[]);
    assert!(
        neither.contains("no [tls] section") && neither.contains("insecure_plaintext"),
        "{neither}"
    );
    let both = start_with(
        "admin_token = \"a-long-enough-admin-token\"\ninsecure_plaintext = true\n[tls]\n\
         ca_file = \"/ca.pem\"\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"",
        &[],
    );
    assert!(both.contains("both set"), "{both}");
    let warned = stderr_until_serving(TOKEN);
    assert!(
        warned.contains("WARN") && warned.contains("insecure_plaintext = true"),
        "plaintext draws a warning at start:\n{warned}"
    );
}
