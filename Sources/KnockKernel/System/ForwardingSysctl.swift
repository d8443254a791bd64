import Foundation
import KnockCore

/// Whether this network namespace forwards packets at all: a spec that guards forwarded
/// ports (`forward:`) does nothing useful on a host where the kernel forwards nothing, so
/// `apply` and `check --kernel` warn. Each network namespace has its own switches, and
/// `/proc/sys/net` shows those of the namespace the reading process is in.
public enum ForwardingSysctl {
    /// A family whose forwarding switch reads 0.
    public struct Off: Equatable, Sendable {
        public var family: IPFamily
        /// The sysctl's name, as `sysctl -w` takes it.
        public var name: String
    }

    /// The switch of each family: its sysctl name and its file.
    public static let switches: [(family: IPFamily, name: String, path: String)] = [
        (.ipv4, "net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
        (.ipv6, "net.ipv6.conf.all.forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"),
    ]

    /// Whether the spec has anything the kernel must forward for it to work: `forward:`
    /// ports, or `dnat:` ones.
    public static func needsForwarding(_ spec: KnockSpec) -> Bool {
        spec.sequences.contains { !$0.forward.isEmpty || !$0.dnat.isEmpty }
    }

    /// Whether the switch in `path` is off: true when it reads 0, false when it reads anything
    /// else, nil when it cannot be read (no IPv6 in this kernel, say), which is no reason to warn.
    public static func isOff(path: String) -> Bool? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return text.trimmingCharacters(in: .whitespacesAndNewlines) == "0"
    }

    /// The families whose forwarding is off here; `paths` replaces the files, for tests.
    public static func offFamilies(paths: [IPFamily: String] = [:]) -> [Off] {
        switches.compactMap { entry in
            isOff(path: paths[entry.family] ?? entry.path) == true ? Off(family: entry.family, name: entry.name) : nil
        }
    }

    /// One warning per family whose forwarding is off, for a spec that needs forwarding;
    /// empty otherwise.
    public static func warnings(for spec: KnockSpec, paths: [IPFamily: String] = [:]) -> [String] {
        guard needsForwarding(spec) else { return [] }
        let ports = Set(spec.sequences.flatMap { $0.forward + $0.dnat.map(\.port) }).sorted().map(\.description).joined(separator: ", ")
        return offFamilies(paths: paths).map { off in
            let family = off.family == .ipv4 ? "IPv4" : "IPv6"
            return "\(family) forwarding is off in this network namespace (\(off.name) = 0), so the forwarded ports "
                + "(\(ports)) are not reached over \(family) even with a grant; set `sysctl -w \(off.name)=1`"
        }
    }
}
