import Foundation
@testable import KnockTestSupport
import Glibc
import KnockCore
import KnockKernel

/// Three hosts in network namespaces of their own, made for one test and deleted after it:
///
///     client  192.0.2.2    2001:db8::2   ─┐
///                                         ├─ server  192.0.2.1    2001:db8::1
///     other   198.51.100.2 2001:db8:1::2 ─┘          198.51.100.1 2001:db8:1::1
///
/// The knockc table is applied in `server` only; the machine's own namespace is never touched.
struct Testbed: Sendable {
    let server: NetworkNamespace
    let client: NetworkNamespace
    let other: NetworkNamespace

    static let serverV4 = "192.0.2.1"
    static let clientV4 = "192.0.2.2"
    static let serverV6 = "2001:db8::1"
    static let clientV6 = "2001:db8::2"
    static let serverOtherV4 = "198.51.100.1"
    static let otherV4 = "198.51.100.2"
    static let serverOtherV6 = "2001:db8:1::1"
    static let otherV6 = "2001:db8:1::2"

    private static let counter = Counter()

    /// Makes the hosts, runs `body`, and deletes the hosts whatever happens.
    static func with<T>(_ body: (Testbed) throws -> T) throws -> T {
        let id = "kc\(getpid())x\(counter.next())"
        let testbed = Testbed(
            server: NetworkNamespace(name: "\(id)s"),
            client: NetworkNamespace(name: "\(id)c"),
            other: NetworkNamespace(name: "\(id)o"))
        defer { testbed.destroy() }
        try testbed.create(id: id)
        return try body(testbed)
    }

    private func create(id: String) throws {
        for namespace in [server, client, other] {
            try runProgram(["ip", "netns", "add", namespace.name])
            try runProgram(["ip", "-n", namespace.name, "link", "set", "lo", "up"])
        }
        try link(id: id, suffix: "a", server: (Self.serverV4, Self.serverV6), peer: client, peerAddresses: (Self.clientV4, Self.clientV6))
        try link(id: id, suffix: "b", server: (Self.serverOtherV4, Self.serverOtherV6), peer: other, peerAddresses: (Self.otherV4, Self.otherV6))
    }

    private func link(id: String, suffix: String, server addresses: (String, String),
                      peer: NetworkNamespace, peerAddresses: (String, String)) throws {
        let serverEnd = "\(id)\(suffix)s"
        let peerEnd = "\(id)\(suffix)p"
        try runProgram(["ip", "link", "add", serverEnd, "netns", server.name, "type", "veth", "peer", "name", peerEnd, "netns", peer.name])
        for (namespace, device, (v4, v6)) in [(server, serverEnd, addresses), (peer, peerEnd, peerAddresses)] {
            try runProgram(["ip", "-n", namespace.name, "addr", "add", "\(v4)/24", "dev", device])
            try runProgram(["ip", "-n", namespace.name, "addr", "add", "\(v6)/64", "dev", device, "nodad"])
            try runProgram(["ip", "-n", namespace.name, "link", "set", device, "up"])
        }
    }

    private func destroy() {
        for namespace in [server, client, other] {
            _ = try? runProgram(["ip", "netns", "del", namespace.name], allowFailure: true)
        }
    }

    /// Compiles `yaml` and applies it in the server, as `knockc apply` does.
    @discardableResult
    func apply(_ yaml: String) throws -> RulesetApplier.Report {
        let (spec, diagnostics) = Pipeline.check(yaml, file: "test.yaml")
        guard let spec else { throw NetworkNamespace.Failure(description: "spec has errors: \(diagnostics)") }
        return try server.perform { try RulesetApplier().apply(spec) }
    }

    func applyScript(_ script: String) throws {
        try server.perform { try RulesetApplier().apply(script) }
    }

    /// Everything the server's kernel holds, as `nft list ruleset` prints it.
    func serverRuleset() throws -> String {
        try runProgram(["ip", "netns", "exec", server.name, "nft", "list", "ruleset"]).output
    }

    /// A listening TCP socket in the server; connections complete in its backlog.
    func listen(tcpPort port: UInt16, family: IPFamily = .ipv4) throws -> TCPListener {
        try server.perform { try TCPListener(port: port, family: family) }
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.withLock { value += 1; return value } }
}
