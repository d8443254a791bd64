import Foundation
import Glibc
import KnockCore
@testable import KnockTestSupport
import Testing

/// `apply --confirm`: the new table stays only when confirmed; otherwise the previous one
/// comes back exactly, with its grants, even when the applying process is gone.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct ConfirmTests {
    let runDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-run-\(getpid())-\(UUID().uuidString)")

    /// Starts `knockc ARGS` inside `namespace` without waiting for it.
    func start(in namespace: NetworkNamespace, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace.name, CommandLineTests.knockc] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["KNOCKC_RUN_DIR": runDirectory.path]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    func knockc(in namespace: NetworkNamespace, _ arguments: [String]) throws -> Int32 {
        let process = try start(in: namespace, arguments)
        process.waitUntilExit()
        return process.terminationStatus
    }

    func definitions(_ bed: Testbed) throws -> String {
        ListingNormalizer.definitions(try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "list", "table", "inet", "knockc"]).output)
    }

    func isPending(_ bed: Testbed) throws -> Bool {
        let files = try runProgram(["find", runDirectory.path, "-name", "knockc.pending"]).output
        guard let path = files.split(separator: "\n").first else { return false }
        return (try? String(contentsOfFile: String(path), encoding: .utf8))?.hasPrefix("pending") == true
    }

    @Test("without confirm the previous table comes back with its grants, even when the applying process is killed")
    func revertsWithoutConfirmation() throws {
        defer { try? FileManager.default.removeItem(at: runDirectory) }
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.ssh]) == 0)
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .udp(9000), .tcp(8000)])
            let before = try definitions(bed)

            let apply = try start(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "2s"])
            #expect(try eventually(within: 10) { try isPending(bed) })
            let during = try definitions(bed)
            #expect(during != before, "the new table is live while pending")
            // The terminal is gone: the revert must not depend on the applying process.
            kill(apply.processIdentifier, SIGKILL)
            apply.waitUntilExit()

            let restored = try eventually(within: 10) { try definitions(bed) == before }
            #expect(restored)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected, "the grant survived both applies")
            _ = listener
        }
    }

    @Test("apply --confirm exits 5 when not confirmed, and 0 with the new table when confirmed")
    func confirmKeepsTheNewTable() throws {
        defer { try? FileManager.default.removeItem(at: runDirectory) }
        try Testbed.with { bed in
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.ssh]) == 0)
            let before = try definitions(bed)
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "1s"]) == 5)
            #expect(try definitions(bed) == before)

            let apply = try start(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "30s"])
            #expect(try eventually(within: 10) { try isPending(bed) })
            #expect(try knockc(in: bed.server, ["confirm"]) == 0)
            apply.waitUntilExit()
            #expect(apply.terminationStatus == 0)
            #expect(try definitions(bed).contains("admin-web"))
            #expect(try knockc(in: bed.server, ["confirm"]) == 1, "nothing left to confirm")
        }
    }

    @Test("with no table before, an unconfirmed apply leaves no table")
    func revertToNothing() throws {
        defer { try? FileManager.default.removeItem(at: runDirectory) }
        try Testbed.with { bed in
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.ssh, "--confirm", "1s"]) == 5)
            let ruleset = try bed.serverRuleset()
            #expect(!ruleset.contains("table inet knockc"))
        }
    }
}
