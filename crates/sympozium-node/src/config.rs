//! The node's configuration (parsed by `main.rs` from flags and environment).

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// `sympozium-node` flags; each also reads an environment variable.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "sympozium-node",
    version,
    about = "A focused kubelet: runs the pods bound to this node as local processes"
)]
pub struct Config {
    /// Kubeconfig of the cluster to join (in-cluster or $KUBECONFIG when absent).
    #[arg(long, env = "SYMPOZIUM_NODE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Name of the Node object.
    #[arg(long, env = "SYMPOZIUM_NODE_NAME", default_value = "sympozium-local")]
    pub node_name: String,
    /// Image → program mapping file (YAML; see deploy/local-node/images.yaml).
    #[arg(long, env = "SYMPOZIUM_NODE_IMAGES")]
    pub images: PathBuf,
    /// Directories of OCI images (`<name>.tar` archives or `<name>/` layouts, as `make
    /// images` writes to target/images), repeatable: a container whose image name has one
    /// runs that image's entrypoint from its unpacked root; the mapping covers the rest.
    #[arg(long = "oci-dir", env = "SYMPOZIUM_NODE_OCI_DIRS", value_delimiter = ',')]
    pub oci_dirs: Vec<PathBuf>,
    /// Directory replacing `{bin}` in the mapping (default: the file's `binDir`).
    #[arg(long, env = "SYMPOZIUM_NODE_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// State directory: pod directories, container logs, persistent volumes, TLS key.
    #[arg(long, env = "SYMPOZIUM_NODE_STATE_DIR", default_value = "/var/lib/sympozium-node")]
    pub state_dir: PathBuf,
    /// Pod network (IPv4, /16 to /24): .1 is the node (bridge), .2 the service address.
    #[arg(long, env = "SYMPOZIUM_NODE_POD_CIDR", default_value = "10.246.0.0/24")]
    pub pod_cidr: String,
    /// The cluster's Service CIDR (routed from pods to the node's service proxy).
    #[arg(long, env = "SYMPOZIUM_NODE_SERVICE_CIDR", default_value = "10.0.0.0/24")]
    pub service_cidr: String,
    /// Name of the bridge (and prefix of the other links and netns names it creates).
    #[arg(long, env = "SYMPOZIUM_NODE_BRIDGE", default_value = "symnode0")]
    pub bridge: String,
    /// Port of the TLS kubelet endpoint (logs); 0 picks a free one.
    #[arg(long, env = "SYMPOZIUM_NODE_PORT", default_value_t = 0)]
    pub port: u16,
    /// Cluster DNS domain.
    #[arg(long, env = "SYMPOZIUM_NODE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Capacity reported for pods.
    #[arg(long, env = "SYMPOZIUM_NODE_MAX_PODS", default_value_t = 110)]
    pub max_pods: u32,
    /// hostPath volumes are allowed only under these prefixes (repeatable; none: refused).
    #[arg(long = "allow-host-path", env = "SYMPOZIUM_NODE_ALLOW_HOST_PATHS", value_delimiter = ',')]
    pub allow_host_paths: Vec<PathBuf>,
    /// Taints the Node registers with (`key=value:Effect`, repeatable), like the kubelet's
    /// `--register-with-taints`: only pods that tolerate them come here.
    #[arg(long = "register-with-taints", env = "SYMPOZIUM_NODE_TAINTS", value_delimiter = ',')]
    pub taints: Vec<String>,
    /// Stop (cleanly) when the process with this pid is gone (tests, supervisors).
    #[arg(long, env = "SYMPOZIUM_NODE_PARENT_PID")]
    pub parent_pid: Option<u32>,
    /// Do not provision PersistentVolumes for unbound claims.
    #[arg(long, env = "SYMPOZIUM_NODE_NO_PROVISIONER")]
    pub no_provisioner: bool,
}

/// An IPv4 network `addr/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 30)?;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Some(Cidr { addr: Ipv4Addr::from(u32::from(addr) & mask), prefix })
    }

    /// The `n`th address of the network (None beyond its size, excluding broadcast).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u32 << (32 - u32::from(self.prefix));
        (n > 0 && n < size - 1).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }

    /// Number of addresses.
    pub fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.prefix))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cidrs_parse_and_hand_out_host_addresses() {
        let c = Cidr::parse("10.246.3.7/24").unwrap();
        assert_eq!(c.to_string(), "10.246.3.0/24");
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 246, 3, 1)));
        assert_eq!(c.nth(255), None);
        assert!(Cidr::parse("10.0.0.0/31").is_none());
    }
}
