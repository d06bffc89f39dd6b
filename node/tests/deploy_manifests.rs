//! deploy/ is validated, not only written: the Kubernetes manifests with kubernetes-validate
//! (pinned, against a pinned Kubernetes version, strict), the Compose file against the Compose
//! Specification schema vendored in deploy/compose/ (Python jsonschema, pinned), every config
//! file deploy/ ships (the ConfigMap's too) with `warrant config check`, the systemd unit with
//! `systemd-analyze verify` where it is installed, and the Dockerfile's shape. Each validator is
//! also shown a broken copy, so a validator that accepts everything fails the test.

mod support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use support::warrant_command;

/// The Python packages the validation runs with, every one pinned (kubernetes-validate's own
/// dependencies included), installed from PyPI into a temporary directory.
const PYTHON_REQUIREMENTS: &[&str] = &[
    "kubernetes-validate==1.31.0",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "attrs==26.1.0",
    "PyYAML==6.0.4",
    "importlib-resources==7.1.0",
    "packaging==26.4",
    "typing-extensions==4.16.0",
];
/// The Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.31.0";
/// The node's bound on draining in-flight calls at SIGTERM; stop timeouts must exceed it.
const DRAIN_SECONDS: u64 = 10;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn python(site: &Path, args: &[&str]) -> Output {
    run(Command::new("python3").args(args).env("PYTHONPATH", site))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Validates `files` with kubernetes-validate; returns its output when it refused.
fn kubernetes_validate(site: &Path, files: &[PathBuf]) -> Result<(), String> {
    let mut args = vec![
        "-m",
        "kubernetes_validate",
        "--strict",
        "-k",
        KUBERNETES_VERSION,
    ];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = python(site, &args);
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("{}{}", text(&out.stdout), text(&out.stderr))),
    }
}

const COMPOSE_VALIDATE: &str = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
doc = yaml.safe_load(open(sys.argv[2]))
errors = list(jsonschema.Draft201909Validator(schema).iter_errors(doc))
for e in errors:
    print("/".join(str(p) for p in e.path), e.message)
sys.exit(1 if errors else 0)
"#;

fn compose_validate(site: &Path, file: &Path) -> Result<(), String> {
    let schema = deploy_dir().join("compose/compose-spec.json");
    let out = python(
        site,
        &[
            "-c",
            COMPOSE_VALIDATE,
            &schema.display().to_string(),
            &file.display().to_string(),
        ],
    );
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("{}{}", text(&out.stdout), text(&out.stderr))),
    }
}

#[test]
fn kubernetes_and_compose_manifests_validate() {
    let site = tempfile::tempdir().expect("temp dir");
    support::pip_install_pinned(site.path(), PYTHON_REQUIREMENTS, true);

    let manifests = yaml_files(&deploy_dir().join("kubernetes"));
    assert!(manifests.len() >= 6, "manifests: {manifests:?}");
    kubernetes_validate(site.path(), &manifests).expect("the Kubernetes manifests are valid");
    let broken = site.path().join("broken-statefulset.yaml");
    let statefulset =
        fs::read_to_string(deploy_dir().join("kubernetes/statefulset.yaml")).expect("read");
    fs::write(
        &broken,
        statefulset.replace("  replicas: 3", "  replicaz: 3"),
    )
    .expect("write");
    assert!(
        kubernetes_validate(site.path(), &[broken]).is_err(),
        "kubernetes-validate accepted an unknown field"
    );

    let compose = deploy_dir().join("compose/compose.yaml");
    compose_validate(site.path(), &compose).expect("the Compose file is valid");
    let broken = site.path().join("broken-compose.yaml");
    let text = fs::read_to_string(&compose).expect("read");
    fs::write(
        &broken,
        text.replace("    restart: on-failure", "    restarts: on-failure"),
    )
    .expect("write");
    assert!(
        compose_validate(site.path(), &broken).is_err(),
        "the Compose schema accepted an unknown key"
    );
}

/// The TOML files a ConfigMap manifest embeds (`  name.toml: |` and its indented lines).
fn configmap_tomls(manifest: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in manifest.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(": |")) {
            files.push((name.to_string(), String::new()));
        } else if let (Some(body), Some((_, content))) =
            (line.strip_prefix("    "), files.last_mut())
        {
            content.push_str(body);
            content.push('\n');
        }
    }
    files
}

fn config_check(path: &Path) {
    let out = run(warrant_command()
        .args(["config", "check", "--skip-files"])
        .arg(path));
    assert!(
        out.status.success(),
        "{}: {}{}",
        path.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn every_config_in_deploy_passes_config_check() {
    let mut files = vec![deploy_dir().join("warrant.example.toml")];
    let compose_configs = deploy_dir().join("compose/config");
    for entry in fs::read_dir(&compose_configs).expect("read compose configs") {
        files.push(entry.expect("entry").path());
    }
    assert_eq!(files.len(), 4, "{files:?}");
    for file in &files {
        config_check(file);
    }
    let manifest =
        fs::read_to_string(deploy_dir().join("kubernetes/configmap.yaml")).expect("read");
    let embedded = configmap_tomls(&manifest);
    let names: Vec<&str> = embedded.iter().map(|(n, _)| n.as_str()).collect();
    // The StatefulSet's three pods each read $(POD_NAME).toml.
    assert_eq!(
        names,
        ["warrant-0.toml", "warrant-1.toml", "warrant-2.toml"]
    );
    let dir = tempfile::tempdir().expect("temp dir");
    for (idx, (name, content)) in embedded.iter().enumerate() {
        assert!(
            content.contains(&format!("node_id = {}", idx + 1)),
            "{name}"
        );
        let path = dir.path().join(name);
        fs::write(&path, content).expect("write");
        config_check(&path);
    }
}

#[test]
fn the_systemd_unit_verifies_and_outlasts_the_drain() {
    let unit = fs::read_to_string(deploy_dir().join("systemd/warrant.service")).expect("read");
    assert!(unit.lines().any(|l| l == "Type=notify"));
    assert!(unit.lines().any(|l| l.starts_with("WatchdogSec=")));
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > DRAIN_SECONDS,
        "TimeoutStopSec={stop} is not past the drain"
    );

    let verify = Command::new("systemd-analyze").arg("--version").output();
    if !verify.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped systemd-analyze verify: systemd-analyze is not installed here");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = env!("CARGO_BIN_EXE_warrant");
    let path = dir.path().join("warrant.service");
    fs::write(&path, unit.replace("/usr/local/bin/warrant", binary)).expect("write");
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    let complaints: Vec<String> = text(&out.stderr)
        .lines()
        .chain(text(&out.stdout).lines())
        .filter(|l| l.contains("warrant.service"))
        .map(String::from)
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {complaints:?}"
    );
    let broken = dir.path().join("broken.service");
    fs::write(&broken, unit.replace("Type=notify", "Type=notifyy")).expect("write");
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&broken));
    assert!(
        text(&out.stderr).contains("broken.service"),
        "systemd-analyze accepted a bad Type="
    );
}

#[test]
fn the_dockerfile_builds_a_non_root_distroless_image_from_a_base_image_arg() {
    let dockerfile = fs::read_to_string(deploy_dir().join("Dockerfile")).expect("read");
    let lines: Vec<&str> = dockerfile.lines().filter(|l| !l.starts_with('#')).collect();
    let first_from = lines
        .iter()
        .position(|l| l.starts_with("FROM "))
        .expect("FROM");
    assert!(
        lines[..first_from]
            .iter()
            .any(|l| l.starts_with("ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot")),
        "ARG BASE_IMAGE before the first FROM"
    );
    let stages: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 3, "multi-stage: {stages:?}");
    assert!(
        stages
            .last()
            .is_some_and(|l| l.starts_with("FROM ${BASE_IMAGE}"))
    );
    let runtime = &lines[lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("runtime stage")..];
    assert!(runtime.contains(&"USER 65532:65532"), "non-root user");
    assert!(
        !lines.iter().any(|l| l.starts_with("HEALTHCHECK")),
        "distroless has no shell to run one"
    );
    assert!(runtime.contains(&"EXPOSE 7400 7401 7402"));
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT [\"/usr/local/bin/warrant\"]"))
    );
    let ignore = fs::read_to_string(deploy_dir().join("Dockerfile.dockerignore")).expect("read");
    assert!(
        ignore.lines().any(|l| l == "target"),
        "the build context leaves target/ out"
    );
}
