//! Network namespaces for the namespace tests: a switch namespace with a bridge, hosts
//! plugged into it by veth pairs, and NAT routers with a host behind each. Everything is
//! created with `ip` and iptables inside namespaces owned by one [`Lab`] and deleted on drop.

use std::process::Command;

use super::{LAN_PREFIX, WAN};

/// Runs `ip ARGS`, returning its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

/// Runs `ip` with each of `commands` (arguments separated by spaces), stopping at a failure.
fn ip_all(commands: &[String]) -> Result<(), String> {
    for command in commands {
        ip(&command.split_whitespace().collect::<Vec<_>>())?;
    }
    Ok(())
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Network namespaces owned by one test; all are deleted on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
}

impl Lab {
    /// Creates the switch namespace with its bridge, or says why namespaces cannot be used.
    pub fn new(tag: &str) -> Result<Self, String> {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !is_root {
            return Err("not running as root (network namespaces need it)".into());
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Err("no `ip` command (install iproute2)".into());
        }
        let mut lab = Self {
            prefix: format!("cairn-{}-{tag}", std::process::id()),
            namespaces: Vec::new(),
        };
        let switch = lab.add_namespace("sw")?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    fn add_namespace(&mut self, name: &str) -> Result<String, String> {
        let ns = format!("{}-{name}", self.prefix);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A namespace plugged into the switch as `WAN.host`, its interface named `eth0`.
    pub fn host(&mut self, host: u8) -> Result<String, String> {
        let ns = self.add_namespace(&format!("h{host}"))?;
        self.plug(&ns, host, "eth0")?;
        Ok(ns)
    }

    fn plug(&self, ns: &str, host: u8, iface: &str) -> Result<(), String> {
        let (switch, port) = (format!("{}-sw", self.prefix), format!("p{host}"));
        ip_all(&[
            format!("-n {switch} link add {port} type veth peer name {iface} netns {ns}"),
            format!("-n {switch} link set {port} master br0 up"),
            format!("-n {ns} addr add {WAN}.{host}/24 dev {iface}"),
            format!("-n {ns} link set {iface} up"),
        ])
    }

    /// A router plugged into the switch as `WAN.router` that masquerades for a host namespace
    /// behind it at `LAN.2` (`LAN` = `192.168.router`), forwarding the host's traffic only to
    /// `WAN.only_to` when given, else anywhere; inbound only what answers the host's own
    /// connections. Returns the host's namespace. Fails when the router cannot be set up (for
    /// example without iptables).
    pub fn host_behind_nat(&mut self, router: u8, only_to: Option<u8>) -> Result<String, String> {
        let r = self.add_namespace(&format!("r{router}"))?;
        self.plug(&r, router, "wan")?;
        let ns = self.add_namespace(&format!("n{router}"))?;
        let lan = format!("{LAN_PREFIX}.{router}");
        let cmds = [
            format!("-n {r} link add lan type veth peer name eth0 netns {ns}"),
            format!("-n {r} addr add {lan}.1/24 dev lan"),
            format!("-n {r} link set lan up"),
            format!("-n {ns} addr add {lan}.2/24 dev eth0"),
            format!("-n {ns} link set eth0 up"),
            format!("-n {ns} route add default via {lan}.1"),
            format!("netns exec {r} sysctl -qw net.ipv4.ip_forward=1"),
            format!("netns exec {r} iptables -t nat -A POSTROUTING -o wan -j MASQUERADE"),
            format!(
                "netns exec {r} iptables -A FORWARD -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
            ),
            match only_to {
                Some(host) => {
                    format!("netns exec {r} iptables -A FORWARD -i lan -d {WAN}.{host} -j ACCEPT")
                }
                None => format!("netns exec {r} iptables -A FORWARD -i lan -j ACCEPT"),
            },
            format!("netns exec {r} iptables -P FORWARD DROP"),
            // Like a home router: unsolicited packets to the router are dropped, not refused.
            format!("netns exec {r} iptables -A INPUT -i wan -m conntrack --ctstate NEW -j DROP"),
        ];
        ip_all(&cmds)?;
        Ok(ns)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}
