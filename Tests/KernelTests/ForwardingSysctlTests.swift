import Foundation
import Glibc
import KnockCore
import KnockKernel
import Testing

/// Reading the forwarding switches from files given by path; needs no root.
struct ForwardingSysctlTests {
    static let forwarding = """
        sequences:
          web:
            knock: [tcp/7000, udp/7100, tcp/7200]
            forward: [tcp/8443, udp/51820]
        """
    static let local = """
        sequences:
          ssh:
            knock: [tcp/7000, udp/7100, tcp/7200]
            open: [tcp/22]
        """

    func spec(_ yaml: String) throws -> KnockSpec {
        try #require(Pipeline.check(yaml, file: "test.yaml").0)
    }

    /// Two switch files in a directory of the test's own, with the given contents (nil: absent).
    func withSwitches<T>(_ v4: String?, _ v6: String?, _ body: ([IPFamily: String]) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-sysctl-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let paths: [IPFamily: String] = [.ipv4: directory.appendingPathComponent("ip_forward").path,
                                         .ipv6: directory.appendingPathComponent("forwarding").path]
        for (family, text) in [(IPFamily.ipv4, v4), (.ipv6, v6)] {
            if let text { try text.write(toFile: paths[family]!, atomically: true, encoding: .utf8) }
        }
        return try body(paths)
    }

    @Test("a spec with forward: warns for each family whose switch reads 0, naming the sysctl")
    func warnsPerFamily() throws {
        let spec = try spec(Self.forwarding)
        try withSwitches("0\n", "0\n") { paths in
            let warnings = ForwardingSysctl.warnings(for: spec, paths: paths)
            #expect(warnings.count == 2)
            #expect(warnings.first?.contains("`sysctl -w net.ipv4.ip_forward=1`") == true)
            #expect(warnings.first?.contains("tcp/8443, udp/51820") == true)
            #expect(warnings.last?.contains("`sysctl -w net.ipv6.conf.all.forwarding=1`") == true)
        }
        try withSwitches("1\n", "0\n") { paths in
            #expect(ForwardingSysctl.offFamilies(paths: paths).map(\.name) == ["net.ipv6.conf.all.forwarding"])
        }
        try withSwitches("1\n", "1\n") { paths in
            #expect(ForwardingSysctl.warnings(for: spec, paths: paths).isEmpty)
        }
        try withSwitches("0\n", nil) { paths in
            #expect(ForwardingSysctl.offFamilies(paths: paths).map(\.family) == [.ipv4], "a kernel without IPv6 is no reason to warn")
        }
    }

    @Test("a spec that forwards nothing never warns")
    func silentWithoutForward() throws {
        let spec = try spec(Self.local)
        #expect(!ForwardingSysctl.needsForwarding(spec))
        try withSwitches("0\n", "0\n") { paths in
            #expect(ForwardingSysctl.warnings(for: spec, paths: paths).isEmpty)
        }
    }
}
