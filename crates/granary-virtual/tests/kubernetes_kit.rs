//! The Kubernetes kit in `deploy/kubernetes/`: every manifest passes the Kubernetes
//! schema (`kubernetes-validate --strict`, which bundles the schemas and works
//! offline), and every `GRANARY_…` name the kit sets is one the node program reads.
//!
//! Without the tool the schema test prints why it skips; with `CI=true` the tool is
//! required (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn kit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(kit().join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "manifests missing: {files:?}");
    files
}

/// `kubernetes-validate --strict FILES`: Some(success, output), None when the tool is
/// not installed.
fn validate(files: &[PathBuf]) -> Option<(bool, String)> {
    let out = match Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("kubernetes-validate: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[test]
fn manifests_pass_the_kubernetes_schema() {
    let files = manifests();
    let Some((ok, text)) = validate(&files) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "kubernetes-validate is required with CI=true (pip install kubernetes-validate)"
            );
        }
        eprintln!(
            "skipped: kubernetes-validate is not installed (pip install kubernetes-validate)"
        );
        return;
    };
    assert!(ok, "manifests do not validate:\n{text}");
    // Every resource was checked (not silently skipped as unknown).
    let passed = text.matches(" passed for resource ").count();
    assert!(
        passed >= files.len(),
        "only {passed} resources checked:\n{text}"
    );

    // The tool does reject a manifest that breaks the schema.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let broken = std::fs::read_to_string(kit().join("kubernetes/statefulset.yaml"))
        .unwrap()
        .replace("replicas: 3", "replicas: three");
    std::fs::write(&bad, broken).unwrap();
    let (ok, text) = validate(&[bad]).unwrap();
    assert!(!ok, "a broken StatefulSet validated:\n{text}");
}

/// The program's own settings besides `NodeConfig`'s.
const PROGRAM_ENV: &[&str] = &["GRANARY_READY_FILE", "GRANARY_READY_ADDR"];

fn granary_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("GRANARY_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_kit_sets_only_settings_the_node_program_reads() {
    let mut seen = Vec::new();
    for file in manifests().into_iter().chain([kit().join("Dockerfile")]) {
        let text = std::fs::read_to_string(&file).unwrap();
        for name in granary_names(&text) {
            assert!(
                granary_virtual::NODE_ENV.contains(&name.as_str())
                    || PROGRAM_ENV.contains(&name.as_str()),
                "{} sets {name}, which no code reads",
                file.display()
            );
            seen.push(name);
        }
    }
    for needed in [
        "GRANARY_CLUSTER_SECRET",
        "GRANARY_ADVERTISE",
        "GRANARY_STORE_URL",
        "GRANARY_MEMBERSHIP",
        "GRANARY_READY_ADDR",
    ] {
        assert!(
            seen.iter().any(|s| s == needed),
            "the kit does not set {needed}"
        );
    }
    let all: String = manifests()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for needed in [
        "kind: Secret",
        "kind: PodDisruptionBudget",
        "podAntiAffinity",
        "readinessProbe",
        "secretKeyRef",
    ] {
        assert!(all.contains(needed), "the kit has no {needed}");
    }
}
