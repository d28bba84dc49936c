//! Which container a cgroup path belongs to, for every runtime's cgroup layout.

use crate::model::{Container, Runtime};

/// `(prefix of a path component, runtime)`: `<prefix><64 hex>[.scope]`. Checked in order.
const SCOPE_PREFIXES: [(&str, Runtime); 4] = [
    ("docker-", Runtime::Docker),
    ("cri-containerd-", Runtime::Containerd),
    ("crio-", Runtime::CriO),
    ("libpod-", Runtime::Podman),
];

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container a cgroup v2 (or v1) path names, if it follows a known runtime layout.
///
/// The shallowest matching component wins: that cgroup is the one the runtime created, and
/// every cgroup below it was made by the container itself (a container that may write its
/// cgroupfs can create `docker-<another id>.scope` under its own; taking the deepest match
/// let it pass for that other container). A `crio-<id>.scope` under kubepods is cri-o, a bare
/// `<id>` under kubepods is `kubernetes`. Runtime monitors (`crio-conmon-<id>`,
/// `libpod-conmon-<id>`) are not containers.
pub fn from_cgroup_path(path: &str) -> Option<Container> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let in_kubepods = components.iter().any(|c| c.starts_with("kubepods"));
    let pod_uid = if in_kubepods {
        components.iter().find_map(|c| pod_uid(c))
    } else {
        None
    };
    for (depth, component) in components.iter().enumerate() {
        let name = component.strip_suffix(".scope").unwrap_or(component);
        for (prefix, runtime) in SCOPE_PREFIXES {
            if let Some(id) = name.strip_prefix(prefix)
                && is_hex64(id)
            {
                return Some(Container {
                    id: id.to_ascii_lowercase(),
                    runtime,
                    pod_uid: pod_uid.clone(),
                });
            }
        }
        if is_hex64(name) {
            let parent = depth.checked_sub(1).map(|d| components[d]);
            let runtime = if in_kubepods {
                Runtime::Kubernetes
            } else if parent == Some("docker") {
                Runtime::Docker
            } else if parent == Some("libpod_parent") {
                Runtime::Podman
            } else {
                continue;
            };
            return Some(Container {
                id: name.to_ascii_lowercase(),
                runtime,
                pod_uid: pod_uid.clone(),
            });
        }
    }
    None
}

/// The pod uid of a `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid>.slice` (systemd, with
/// `_` for `-`) component.
fn pod_uid(component: &str) -> Option<String> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    let idx = name.rfind("pod")?;
    let uid = &name[idx + 3..];
    let ok = uid.len() == 36
        && uid
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
    ok.then(|| uid.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_a_container_nests_under_its_own_stay_its_own() {
        let other = "b".repeat(64);
        for (path, runtime) in [
            (
                format!("/system.slice/docker-{ID}.scope/docker-{other}.scope"),
                Runtime::Docker,
            ),
            (format!("/docker/{ID}/docker/{other}"), Runtime::Docker),
            (
                format!(
                    "/kubepods.slice/kubepods-pod{}.slice/crio-{ID}.scope/crio-{other}.scope",
                    POD.replace('-', "_")
                ),
                Runtime::CriO,
            ),
            (
                format!("/kubepods/burstable/pod{POD}/{ID}/{other}"),
                Runtime::Kubernetes,
            ),
        ] {
            let c = from_cgroup_path(&path).expect(&path);
            assert_eq!((c.id.as_str(), c.runtime), (ID, runtime), "{path}");
        }
    }

    const ID: &str = "3f2c0a8e5b7d41a09c6e2f1b8d7a6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c";
    const POD: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";

    fn parsed(path: &str) -> (String, Runtime, Option<String>) {
        let c = from_cgroup_path(path).unwrap_or_else(|| panic!("no container in {path}"));
        (c.id, c.runtime, c.pod_uid)
    }

    #[test]
    fn docker_layouts() {
        assert_eq!(
            parsed(&format!("/system.slice/docker-{ID}.scope")),
            (ID.into(), Runtime::Docker, None)
        );
        assert_eq!(
            parsed(&format!("/docker/{ID}")),
            (ID.into(), Runtime::Docker, None)
        );
        assert_eq!(
            parsed(&format!("/docker/{ID}/sub")).1,
            Runtime::Docker,
            "a child cgroup of the container's still belongs to it"
        );
    }

    #[test]
    fn containerd_crio_podman_scopes() {
        let pod_us = POD.replace('-', "_");
        assert_eq!(
            parsed(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_us}.slice/cri-containerd-{ID}.scope"
            )),
            (ID.into(), Runtime::Containerd, Some(POD.into()))
        );
        assert_eq!(
            parsed(&format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_us}.slice/crio-{ID}.scope"
            )),
            (ID.into(), Runtime::CriO, Some(POD.into())),
            "crio under kubepods is cri-o, not kubernetes"
        );
        assert_eq!(
            parsed(&format!("/machine.slice/libpod-{ID}.scope")),
            (ID.into(), Runtime::Podman, None)
        );
        assert_eq!(parsed(&format!("/libpod_parent/{ID}")).1, Runtime::Podman);
    }

    #[test]
    fn kubepods_without_runtime_is_kubernetes() {
        assert_eq!(
            parsed(&format!("/kubepods/burstable/pod{POD}/{ID}")),
            (ID.into(), Runtime::Kubernetes, Some(POD.into()))
        );
        assert_eq!(
            parsed(&format!("/kubepods/pod{POD}/{ID}")),
            (ID.into(), Runtime::Kubernetes, Some(POD.into()))
        );
    }

    #[test]
    fn non_containers() {
        for path in [
            "/",
            "",
            "/user.slice/user-0.slice/session-1.scope",
            "/system.slice/containerd.service",
            &format!("/machine.slice/libpod-conmon-{ID}.scope"),
            &format!("/system.slice/crio-conmon-{ID}.scope"),
            &format!("/docker-{}.scope", &ID[..63]),
            &format!("/mygroup/{ID}"),
            "/docker/not-an-id",
        ] {
            assert_eq!(from_cgroup_path(path), None, "{path}");
        }
    }

    #[test]
    fn ids_are_normalised_to_lower_case() {
        let upper = ID.to_ascii_uppercase();
        assert_eq!(parsed(&format!("/docker/{upper}")).0, ID);
    }
}
