import Foundation
import Glibc
@testable import KnockTestSupport
import Testing

/// The `knockc` executable as users script against it: exit codes, output, and what it
/// leaves in the kernel.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct CommandLineTests {
    /// The knockc built beside this test bundle.
    static let knockc = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("knockc").path
    static let ssh = examplePath("ssh.yaml")
    static let several = examplePath("several.yaml")

    func knockc(in namespace: NetworkNamespace? = nil, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let prefix = namespace.map { ["ip", "netns", "exec", $0.name] } ?? []
        return try runProgram(prefix + [Self.knockc] + arguments, allowFailure: true)
    }

    /// A directory of the test's own, `knockc-NAME-PID` in the temporary directory; the caller removes it.
    func scratchDirectory(_ name: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-\(name)-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test("diff exits 1 and shows everything new when the table is absent, 0 once applied, 1 for a changed spec, and never changes the kernel")
    func diffExitCodesAndNoChange() throws {
        try Testbed.with { bed in
            let empty = try bed.serverRuleset()
            let absent = try knockc(in: bed.server, ["diff", Self.ssh])
            #expect(absent.status == 1, "\(absent.error)")
            #expect(absent.output.contains("+table inet knockc {"))
            #expect(try bed.serverRuleset() == empty)

            #expect(try knockc(in: bed.server, ["apply", Self.ssh]).status == 0)
            let applied = try bed.serverRuleset()
            let same = try knockc(in: bed.server, ["diff", Self.ssh])
            #expect(same.status == 0, "\(same.output)\(same.error)")
            #expect(same.output.isEmpty)

            let changed = try knockc(in: bed.server, ["diff", Self.several])
            #expect(changed.status == 1)
            #expect(changed.output.contains("\n+\t\t\t") && changed.output.contains(" comment \"admin-web "))
            #expect(try bed.serverRuleset() == applied)

            let broken = try knockc(in: bed.server, ["diff", "/nonexistent.yaml"])
            #expect(broken.status == 2)
        }
    }

    @Test("diff without the privilege to list the ruleset exits 2 and says so, rather than showing the live table as absent")
    func diffWithoutPrivilege() throws {
        try Testbed.with { bed in
            #expect(try knockc(in: bed.server, ["apply", Self.ssh]).status == 0)
            let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"]
            let result = try runProgram(["ip", "netns", "exec", bed.server.name] + nobody + [Self.knockc, "diff", Self.ssh], allowFailure: true)
            #expect(result.status == 2, "\(result.output)\(result.error)")
            #expect(!result.output.contains("+table inet knockc"))
            #expect(result.error.contains("cannot read the live ruleset") && result.error.contains(String(cString: strerror(EPERM))), "\(result.error)")
        }
    }

    @Test("knock --then-connect exits 0 once the port opens, and 1 when it stays closed, after --retries")
    func knockThenConnect() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            #expect(try knockc(in: bed.server, ["apply", Self.ssh]).status == 0)
            let opened = try knockc(in: bed.client, ["knock", Testbed.serverV4, "--spec", Self.ssh, "--sequence", "ssh",
                                                     "--delay", "50ms", "--then-connect", "22", "--timeout", "2s"])
            #expect(opened.status == 0, "\(opened.error)")
            #expect(opened.output.contains("tcp/22 on \(Testbed.serverV4) is open"))

            let wrong = try knockc(in: bed.other, ["knock", Testbed.serverOtherV4, "tcp/8000", "udp/9000", "tcp/7000",
                                                   "--delay", "50ms", "--then-connect", "22", "--timeout", "500ms", "--retries", "1"])
            #expect(wrong.status == 1)
            #expect(wrong.output.components(separatedBy: "knocked").count - 1 == 2, "sent the sequence twice")
            #expect(wrong.error.contains("knocking again"))
            _ = listener
        }
    }

    @Test("check --kernel validates against the running kernel as an unprivileged user")
    func rootlessKernelCheck() throws {
        let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        let result = try runProgram(nobody + [Self.knockc, "check", "--kernel", Self.ssh, Self.several], allowFailure: true)
        #expect(result.status == 0, "\(result.error)")
        // The inside half really loads the table into a kernel of its own, without root.
        let listing = try runProgram(nobody + ["unshare", "-rn", Self.knockc, "scratch-apply", Self.ssh, "--list"], allowFailure: true)
        #expect(listing.status == 0, "\(listing.error)")
        #expect(listing.output.contains("chain knock4_tcp_7000"))
    }

    /// In a user namespace of the test's own whose limit of network namespaces is 0, unshare
    /// cannot make the throwaway namespace; the limit is that user namespace's alone, and
    /// nothing reaches any kernel ruleset.
    @Test("check --kernel says the throwaway namespace could not be made, not that the kernel refused the ruleset")
    func kernelCheckWithoutNamespace() throws {
        let limited = ["unshare", "--user", "--map-root-user", "--fork", "sh", "-c",
                       #"echo 0 > /proc/sys/user/max_net_namespaces && exec "$0" "$@""#, Self.knockc]
        let text = try runProgram(limited + ["check", "--kernel", Self.ssh], allowFailure: true)
        #expect(text.status == 1)
        #expect(text.error.contains("\(Self.ssh): error: not checked against the kernel: cannot create a throwaway network namespace: unshare: "), "\(text.error)")
        #expect(text.error.contains("No space left on device"), "\(text.error)")
        #expect(!text.error.contains("refused"), "\(text.error)")

        let json = try runProgram(limited + ["check", "--kernel", "--format", "json", Self.ssh], allowFailure: true)
        #expect(json.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        let spec = try #require((report["specs"] as? [[String: Any]])?.first)
        #expect(spec["valid"] as? Bool == false)
        #expect(spec["kernel_error"] == nil)
        #expect((spec["namespace_error"] as? String)?.hasPrefix("cannot create a throwaway network namespace: unshare: ") == true)

        // Without the limit, the same command checks the spec.
        let unlimited = try runProgram(["unshare", "--user", "--map-root-user", "--fork", Self.knockc, "check", "--kernel", Self.ssh], allowFailure: true)
        #expect(unlimited.status == 0, "\(unlimited.error)")
    }

    /// A namespace of the test's own starts with forwarding off in both families.
    @Test("apply and check --kernel warn about a forward: spec while the namespace forwards nothing, name the sysctl, and still succeed")
    func forwardingOffWarns() throws {
        let directory = try scratchDirectory("forwarding")
        defer { try? FileManager.default.removeItem(at: directory) }
        let forwarding = directory.appendingPathComponent("forward.yaml").path
        try "sequences:\n  web:\n    knock: [tcp/7000, udp/7100, tcp/7200]\n    forward: [tcp/8443]\n"
            .write(toFile: forwarding, atomically: true, encoding: .utf8)
        let namespace = NetworkNamespace(name: "kcfwd\(getpid())")
        try runProgram(["ip", "netns", "add", namespace.name])
        defer { _ = try? runProgram(["ip", "netns", "del", namespace.name], allowFailure: true) }
        let v4 = "`sysctl -w net.ipv4.ip_forward=1`"
        let v6 = "`sysctl -w net.ipv6.conf.all.forwarding=1`"

        for command in [["apply", forwarding], ["check", "--kernel", forwarding]] {
            let off = try knockc(in: namespace, command)
            #expect(off.status == 0, "\(command): \(off.error)")
            #expect(off.error.contains(v4) && off.error.contains(v6), "\(command): \(off.error)")
        }
        // A spec without forward: says nothing about forwarding.
        let local = try knockc(in: namespace, ["apply", Self.ssh])
        #expect(local.status == 0 && !local.error.contains("forwarding"), "\(local.error)")

        try runProgram(["ip", "netns", "exec", namespace.name, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for command in [["apply", forwarding], ["check", "--kernel", forwarding]] {
            let half = try knockc(in: namespace, command)
            #expect(half.status == 0, "\(command): \(half.error)")
            #expect(!half.error.contains(v4) && half.error.contains(v6), "\(command): \(half.error)")
        }
        try runProgram(["ip", "netns", "exec", namespace.name, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        for command in [["apply", forwarding], ["check", "--kernel", forwarding]] {
            let on = try knockc(in: namespace, command)
            #expect(on.status == 0, "\(command): \(on.error)")
            #expect(!on.error.contains("forwarding is off"), "\(command): \(on.error)")
        }
    }

    @Test("check exits 1 with file:line:col diagnostics, and --format json reports the same")
    func checkDiagnostics() throws {
        let directory = try scratchDirectory("check")
        defer { try? FileManager.default.removeItem(at: directory) }
        let bad = directory.appendingPathComponent("bad.yaml").path
        try "sequences:\n  ssh:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/70000]\n".write(toFile: bad, atomically: true, encoding: .utf8)

        let text = try knockc(["check", Self.ssh, bad])
        #expect(text.status == 1)
        #expect(text.error.contains("\(bad):4:12: error: port 70000 is out of range"))

        let json = try knockc(["check", "--format", "json", bad])
        #expect(json.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        let spec = try #require((report["specs"] as? [[String: Any]])?.first)
        #expect(spec["valid"] as? Bool == false)
        #expect((spec["diagnostics"] as? [[String: Any]])?.first?["line"] as? Int == 4)

        #expect(try knockc(["check", Self.ssh]).status == 0)
        let explicit = try knockc(["compile", "--format", "nft", Self.ssh])
        let implicit = try knockc(["compile", Self.ssh])
        #expect(explicit.status == 0, "\(explicit.error)")
        #expect(implicit.status == 0, "\(implicit.error)")
        #expect(explicit.output.contains("table inet knockc {"))
        #expect(explicit.output == implicit.output)
    }

    @Test("keygen writes a 0600 secret and prints its path but none of its bytes; exits 1 rather than overwrite, 64 without FILE")
    func keygenWritesOnceAndPrintsNoSecret() throws {
        let directory = try scratchDirectory("keygen")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("ssh.key").path

        let written = try knockc(["keygen", path])
        #expect(written.status == 0, "\(written.error)")
        #expect(written.output.hasPrefix("wrote \(path)\n"))
        #expect(written.output.split(separator: "\n").count == 2, "the path and one hint")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let secret = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(secret.count == 32)
        let hex = secret.map { String(format: "%02x", $0) }.joined()
        for start in stride(from: 0, through: hex.count - 8, by: 2) {
            let run = String(hex.dropFirst(start).prefix(8))
            #expect(!written.output.lowercased().contains(run) && !written.error.lowercased().contains(run))
        }

        let again = try knockc(["keygen", path])
        #expect(again.status == 1)
        #expect(again.error.contains("\(path) already exists"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == secret, "the secret was not overwritten")

        #expect(try knockc(["keygen"]).status == 64)
    }

    @Test("import knockd prints a spec that check accepts and exits 0 when complete, 7 when something is not translated, 1 with FILE:LINE and nothing printed for a corrupt file")
    func importKnockdExitCodes() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("KnockCoreTests/Knockd")
        let directory = try scratchDirectory("import")
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, status) in [("ipv6.conf", Int32(0)), ("debian.conf", 7)] {
            let result = try knockc(["import", "knockd", fixtures.appendingPathComponent(name).path])
            #expect(result.status == status, "\(name): \(result.error)")
            #expect(result.output.contains("\nsequences:\n"))
            #expect(result.error.contains("not translated") == (status == 7))
            let spec = directory.appendingPathComponent(name + ".yaml")
            try result.output.write(to: spec, atomically: true, encoding: .utf8)
            #expect(try knockc(["check", spec.path]).status == 0)
        }
        let corrupt = fixtures.appendingPathComponent("unknown-key.conf").path
        let refused = try knockc(["import", "knockd", corrupt])
        #expect(refused.status == 1)
        #expect(refused.output.isEmpty)
        #expect(refused.error.hasPrefix(corrupt + ":3: error: unknown key 'seq_timout'"))
        #expect(try knockc(["import", "knockd"]).status == 64)
    }
}
