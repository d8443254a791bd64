import Foundation
import Glibc
@testable import KnockTestSupport
import Testing

/// `knockc knock --proxy` as OpenSSH's `ProxyCommand`, against the real client and server:
/// sshd runs in the server namespace behind knockc's table, with a throwaway host key and a
/// throwaway user key, and ssh logs in as root from the client namespace.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct SshProxyTests {
    static let sshd = "/usr/sbin/sshd"
    static let ssh = "/usr/bin/ssh"
    static let sshKeygen = "/usr/bin/ssh-keygen"

    /// Whether OpenSSH's client and server are here. Locally their absence skips with a
    /// warning; under CI=true it fails, since CI installs them (`.ci/run`).
    static func toolsPresent(sourceLocation: Testing.SourceLocation = #_sourceLocation) -> Bool {
        let missing = [sshd, ssh, sshKeygen].filter { !FileManager.default.isExecutableFile(atPath: $0) }
        guard !missing.isEmpty else { return true }
        Issue.record("skipped: \(missing.joined(separator: ", ")) missing; install openssh-client and openssh-server",
                     severity: TestEnvironment.skipsMustFail ? .error : .warning, sourceLocation: sourceLocation)
        return false
    }

    /// Keys, known_hosts and sshd's config in a directory of the test's own (mode 0700, as
    /// sshd wants for anything it trusts), removed at the end.
    final class SshFiles: @unchecked Sendable {
        let directory: String
        var hostKey: String { directory + "/host_key" }
        var userKey: String { directory + "/user_key" }
        var knownHosts: String { directory + "/known_hosts" }
        var config: String { directory + "/sshd_config" }

        private static let counter = NSLock()
        nonisolated(unsafe) private static var next = 0

        init() throws {
            let number = Self.counter.withLock { Self.next += 1; return Self.next }
            // Under the tests' run directory, not /tmp: sshd's StrictModes refuses an
            // authorized_keys file below a directory that others may write to.
            try FileManager.default.createDirectory(atPath: testRunDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
            directory = testRunDirectory + "/ssh-\(number)"
            try? FileManager.default.removeItem(atPath: directory)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
            for key in [hostKey, userKey] {
                try runProgram([SshProxyTests.sshKeygen, "-q", "-t", "ed25519", "-N", "", "-C", "knockc-test", "-f", key])
            }
            let userPublic = try String(contentsOfFile: userKey + ".pub", encoding: .utf8)
            try write(userPublic, to: directory + "/authorized_keys")
            let hostPublic = try String(contentsOfFile: hostKey + ".pub", encoding: .utf8)
            try write("\(Testbed.serverV4),\(Testbed.serverV6) \(hostPublic)", to: knownHosts)
            // All addresses of the server's namespace, which is the test's own. UsePAM no keeps
            // the host's PAM stack out of it; root logs in with the key only.
            try write("""
                Port 22
                HostKey \(hostKey)
                AuthorizedKeysFile \(directory)/authorized_keys
                PermitRootLogin prohibit-password
                PubkeyAuthentication yes
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                UsePAM no
                PidFile \(directory)/sshd.pid
                LogLevel VERBOSE

                """, to: config)
        }

        private func write(_ text: String, to path: String) throws {
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            chmod(path, 0o600)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// `sshd -D -e` in a namespace, its log in the test's directory, as a `Daemon` (sshd
    /// closes every inherited descriptor as it starts); returns once it listens on port 22.
    static func sshServer(in namespace: NetworkNamespace, files: SshFiles) throws -> Daemon {
        // sshd's privilege separation directory, which its systemd unit would make.
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        let server = try Daemon("sshd", ["/usr/sbin/ip", "netns", "exec", namespace.name, sshd, "-D", "-e", "-f", files.config],
                                logPath: files.directory + "/sshd.log")
        try server.waitUntil(within: 10, "listen on port 22") {
            try !runProgram(["ip", "netns", "exec", namespace.name, "ss", "-Hltn", "sport = :22"]).output.isEmpty
        }
        return server
    }

    /// ssh from `namespace` to root@`address`, with the test's keys and nothing from the
    /// machine's own configuration; `proxy` is the ProxyCommand. Bounded by `timeout`.
    static func ssh(from namespace: NetworkNamespace, to address: String, files: SshFiles, proxy: String?,
                    command: String) throws -> (status: Int32, output: String, error: String, seconds: Double) {
        var options = [
            "-F", "/dev/null", "-o", "UserKnownHostsFile=\(files.knownHosts)", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-i", files.userKey, "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=3",
        ]
        if let proxy { options += ["-o", "ProxyCommand=\(proxy)"] }
        let started = Date()
        let result = try runProgram(["ip", "netns", "exec", namespace.name, "timeout", "30", ssh] + options
                                    + ["root@\(address)", command], allowFailure: true)
        return (result.status, result.output, result.error, Date().timeIntervalSince(started))
    }

    /// A testbed whose server runs sshd behind the table of examples/ssh.yaml.
    static func withSshServer(_ body: (Testbed, SshFiles, Daemon) throws -> Void) throws {
        try Testbed.with { bed in
            let files = try SshFiles()
            let server = try sshServer(in: bed.server, files: files)
            defer { server.stop() }
            try bed.apply(String(contentsOfFile: CommandLineTests.ssh, encoding: .utf8))
            try body(bed, files, server)
        }
    }

    static func proxyCommand(_ extra: String = "") -> String {
        "\(CommandLineTests.knockc) knock %h --spec \(CommandLineTests.ssh) --sequence ssh --delay 50ms --timeout 3s\(extra) --proxy %p"
    }

    @Test("ssh through knock --proxy logs in and runs a command, over IPv4 and IPv6; plain ssh cannot connect")
    func sshLogsInThroughTheProxy() throws {
        guard Self.toolsPresent() else { return }
        try Self.withSshServer { bed, files, server in

            for address in [Testbed.serverV4, Testbed.serverV6] {
                let plain = try Self.ssh(from: bed.client, to: address, files: files, proxy: nil, command: "echo knocked-in")
                #expect(plain.status == 255, "\(address): plain ssh got in: \(plain.output) \(plain.error)")
                #expect(plain.output.isEmpty)

                let proxied = try Self.ssh(from: bed.client, to: address, files: files, proxy: Self.proxyCommand(), command: "echo knocked-in")
                #expect(proxied.status == 0, "\(address): \(proxied.error)\nsshd: \(server.log)")
                #expect(proxied.output == "knocked-in\n")
            }
            let sources = Set(try bed.server.grants().map(\.source.text))
            #expect(sources == [Testbed.clientV4, Testbed.clientV6], "each login knocked over its own family")
        }
    }

    @Test("a --proxy port that never opens: knockc says so and exits 1 within its retries, and ssh's connection fails")
    func proxyPortThatNeverOpens() throws {
        guard Self.toolsPresent() else { return }
        try Self.withSshServer { bed, files, server in
            // The knocks in the wrong order open nothing.
            let wrong = "\(CommandLineTests.knockc) knock %h tcp/8000 udp/9000 tcp/7000 --delay 20ms --timeout 1s --retries 1 --proxy %p"

            let failed = try Self.ssh(from: bed.client, to: Testbed.serverV4, files: files, proxy: wrong, command: "echo knocked-in")
            #expect(failed.status == 255)
            #expect(failed.output.isEmpty)
            #expect(failed.error.contains("knockc: tcp/22 on \(Testbed.serverV4) did not open within 1s; knocking again"), "\(failed.error)")
            #expect(failed.error.contains("knockc: giving up on tcp/22 of \(Testbed.serverV4) after 2 attempts of 1s each"), "\(failed.error)")
            #expect(failed.seconds < 10, "two attempts of 1 s, and ssh gives up when its proxy exits")

            let direct = try runProgram(["ip", "netns", "exec", bed.client.name, "timeout", "30", CommandLineTests.knockc, "knock",
                                         Testbed.serverV4, "tcp/8000", "udp/9000", "tcp/7000", "--delay", "20ms",
                                         "--timeout", "1s", "--proxy", "22"], allowFailure: true)
            #expect(direct.status == 1, "\(direct.error)")
            #expect(direct.output.isEmpty, "nothing but relayed bytes on stdout")
            #expect(try bed.server.grants().isEmpty)
        }
    }
}
