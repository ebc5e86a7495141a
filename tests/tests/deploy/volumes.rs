//! Where a persisting agent keeps its database: `spec.state.persistence.path` must be a
//! writable mount of a volume that outlives the pod (a StatefulSet's claim or a node's
//! hostPath), writable by the image's user.

use k8s_openapi::api::core::v1::{Container, Volume};

use crate::{agents::Workload, checks::Image, render::Resources};

/// How an agent persists: the kind of volume under its data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Storage {
    /// A PersistentVolumeClaim of a StatefulSet's `volumeClaimTemplates`.
    Claim,
    /// A directory of the node.
    HostPath,
}

/// The problems of one agent's data directory, and where it is (`None`: it keeps its
/// state in memory only).
pub fn agent(
    resources: &Resources,
    workload: &Workload<'_>,
    container: &Container,
    effective: &serde_json::Value,
    image: &Image,
) -> (Vec<String>, Option<Storage>) {
    let Some(path) = effective["spec"]["state"]["persistence"]["path"].as_str() else {
        return (Vec::new(), None);
    };
    let mut problems = Vec::new();
    let Some(mount) = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|mount| mount.mount_path.trim_end_matches('/') == path.trim_end_matches('/'))
    else {
        return (
            vec![format!(
                "persistence.path {path} is not a volume mount: the data would die with the container"
            )],
            None,
        );
    };
    if mount.read_only == Some(true) {
        problems.push(format!("the mount of persistence.path {path} is read-only"));
    }
    let pod = workload.pod();
    let volume: Option<&Volume> = pod
        .volumes
        .iter()
        .flatten()
        .find(|volume| volume.name == mount.name);
    let claim = resources
        .stateful_sets
        .iter()
        .filter(|set| set.metadata.name.as_deref() == Some(workload.name))
        .flat_map(|set| set.spec.volume_claim_templates.iter().flatten())
        .any(|template| template.metadata.name.as_deref() == Some(mount.name.as_str()));
    let storage = match volume {
        _ if claim => Storage::Claim,
        Some(volume) if volume.host_path.is_some() => Storage::HostPath,
        Some(volume) => {
            problems.push(format!(
                "persistence.path {path} is on volume {}, which dies with the pod (use a claim or a hostPath)",
                volume.name
            ));
            return (problems, None);
        }
        None => {
            problems.push(format!(
                "volume {} of persistence.path {path} is not defined",
                mount.name
            ));
            return (problems, None);
        }
    };
    match storage {
        // A claim is made writable for the pod's fsGroup.
        Storage::Claim => {
            let group = pod
                .security_context
                .as_ref()
                .and_then(|context| context.fs_group);
            if group != Some(image.uid) {
                problems.push(format!(
                    "the claim under {path} needs fsGroup {} (the image's user) to be writable; found {group:?}",
                    image.uid
                ));
            }
        }
        // kubelet creates a hostPath directory owned by root: an init container must
        // give it to the image's user first.
        Storage::HostPath => {
            let owner = format!("{0}:{0}", image.uid);
            let chowned = pod.init_containers.iter().flatten().any(|init| {
                let command: Vec<&str> = init
                    .command
                    .iter()
                    .flatten()
                    .chain(init.args.iter().flatten())
                    .map(String::as_str)
                    .collect();
                let mounts = init
                    .volume_mounts
                    .iter()
                    .flatten()
                    .any(|mounted| mounted.name == mount.name && mounted.mount_path == path);
                mounts && command.contains(&"chown") && command.contains(&owner.as_str())
            });
            if !chowned {
                problems.push(format!(
                    "no init container gives the hostPath under {path} to {owner}: the agent could not write it"
                ));
            }
        }
    }
    (problems, Some(storage))
}
