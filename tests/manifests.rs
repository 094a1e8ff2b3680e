//! The deployment files are valid and say what the docs say.

use std::process::Command;

#[test]
fn the_kubernetes_daemonset_is_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mount/kubernetes/vprocfs-daemonset.yaml"
    );
    let check = r#"
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
assert d["kind"] == "DaemonSet" and d["apiVersion"] == "apps/v1", d["kind"]
spec = d["spec"]["template"]["spec"]
assert spec["hostPID"] is True
c = spec["containers"][0]
assert c["securityContext"]["privileged"] is True
assert c["command"][:3] == ["vprocfs", "serve", "/run/vprocfs/view"], c["command"]
mounts = {m["name"]: m for m in c["volumeMounts"]}
assert mounts["run-vprocfs"]["mountPropagation"] == "Bidirectional"
vols = {v["name"]: v for v in spec["volumes"]}
assert vols["dev-fuse"]["hostPath"]["path"] == "/dev/fuse"
assert set(mounts) <= set(vols), (set(mounts), set(vols))
assert d["spec"]["selector"]["matchLabels"] == d["spec"]["template"]["metadata"]["labels"]
print("ok")
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", check, path])
        .output()
        .expect("python3 with PyYAML (scripts/setup.sh installs python3-yaml)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n", "{out:?}");
}

#[test]
fn the_oci_hook_entries_are_valid_json() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mount/oci/vprocfs-hooks.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["createContainer"][0]["args"][1], "oci-hook");
    assert_eq!(v["createContainer"][0]["args"][2], "create");
    assert_eq!(v["poststop"][0]["args"][2], "delete");
}
