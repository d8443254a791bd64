import Foundation
import Glibc
import KnockCore
@testable import KnockTestSupport
import Testing

/// Set sizes bounding state: a flood of first knocks from many sources fills the set of first
/// knocks (`started4`) only up to `max_tracked_sources`, takes no grant away (grants live in a
/// set of their own), leaves sources already part-way through able to finish (later stages
/// live in `progress4`), and knocking works again once the flood's entries time out.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct FloodTests {
    static let spec = """
        max_tracked_sources: 64
        defaults: { step_timeout: 3s, open_for: 1h }
        sequences:
          ssh:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22]
        """
    static let sequence: [Knock] = [.tcp(7000), .udp(9000), .tcp(8000)]
    static let capacity = 64
    static let stepTimeout = 3.0
    /// More flooding sources than the set has room for: 192.0.2.100 to 192.0.2.199.
    static let floodSources = (100..<200).map { "192.0.2.\($0)" }

    @Test("a flood of first knocks fills started4 only up to max_tracked_sources, keeps grants, and knocking works once it times out")
    func floodIsBoundedAndRecovers() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)

            // A grant made before the flood.
            try bed.other.knock(Testbed.serverOtherV4, Self.sequence)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)

            // The flooding sources: extra /32 addresses on the client's veth. The server's
            // 192.0.2.0/24 route already covers them.
            let device = try bed.client.device(holding: Testbed.clientV4)
            try bed.client.addAddresses(Self.floodSources, device: device)

            let flood = FirstKnockFlood(namespace: bed.client, sources: Self.floodSources,
                                        host: Testbed.serverV4, port: 7000)
            flood.start(maxRounds: 100, maxSeconds: 5)
            defer { flood.stop() }

            // One round already offers more sources than the set has room for.
            let filled = try eventually(within: 2) {
                try flood.packetsSent >= Self.floodSources.count && bed.progressCount() >= Self.capacity
            }
            let afterFill = try bed.progressCount()
            #expect(filled, "the flood did not fill started4 (\(afterFill) elements)")

            // While it goes on, the set stays bounded.
            var largest = 0
            for _ in 0..<5 {
                largest = max(largest, try bed.progressCount())
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(largest <= Self.capacity, "started4 grew to \(largest) elements")
            #expect(largest >= Self.capacity / 2, "the flood should keep started4 near full, had \(largest)")

            // The grant lives in granted4, which the flood does not touch.
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)

            flood.stop()
            #expect(flood.packetsSent > Self.capacity)
            #expect(try bed.progressCount() <= Self.capacity)

            // While the set is full, a new source's first knock finds no room: a full set is
            // what the bound costs. A running flood keeps freeing slots as its entries time
            // out, so the set is emptied and filled by one round of first knocks, whose
            // entries all live step_timeout; the legitimate client knocks well within that.
            try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "flush", "set", "inet", "knockc", "started4"])
            let burst = FirstKnockFlood(namespace: bed.client, sources: Self.floodSources, host: Testbed.serverV4, port: 7000)
            let burstStarted = Date()
            burst.start(maxRounds: 1, maxSeconds: 2)
            burst.finish()
            #expect(try bed.progressCount() == Self.capacity, "one round of \(Self.floodSources.count) first knocks did not fill started4")
            try bed.client.knock(Testbed.serverV4, Self.sequence)
            let whenFull = try bed.client.connect(to: Testbed.serverV4, port: 22)
            let knockedAfter = Date().timeIntervalSince(burstStarted)
            #expect(whenFull == .refused,
                    "a knock found room in a full started4 (\(knockedAfter) s after the round; its entries live \(Self.stepTimeout) s)")

            // The flood's entries expire after step_timeout (3 s); then the full sequence opens.
            let stopped = Date()
            let opened = try eventually(within: 9, every: 0.2) {
                try bed.client.knock(Testbed.serverV4, Self.sequence)
                return try bed.client.connect(to: Testbed.serverV4, port: 22, timeout: 0.5) == .connected
            }
            #expect(opened, "the legitimate knock did not open tcp/22 within 9 s of the flood's end")
            #expect(Date().timeIntervalSince(stopped) < 9)
            // The grant made before the flood is still there.
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("sources part-way through a sequence finish while a flood of first knocks keeps started4 full")
    func partWaySourcesFinishDuringFlood() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            let device = try bed.client.device(holding: Testbed.clientV4)
            try bed.client.addAddresses(Self.floodSources, device: device)

            // Before the flood: the client at stage 2, the other host at stage 1.
            try bed.client.knock(Testbed.serverV4, Array(Self.sequence.prefix(2)))
            try bed.other.knock(Testbed.serverOtherV4, Array(Self.sequence.prefix(1)))
            #expect(try bed.progressCount("progress4") == 1)
            #expect(try bed.progressCount("started4") == 1)

            // One round of first knocks from 100 sources fills started4 (room for 64).
            let burst = FirstKnockFlood(namespace: bed.client, sources: Self.floodSources, host: Testbed.serverV4, port: 7000)
            burst.start(maxRounds: 1, maxSeconds: 2)
            burst.finish()
            // The client's stage-1 element, deleted when it advanced, still holds its slot until
            // the kernel's garbage collection, so one fewer may be listed.
            let filled = try bed.progressCount("started4")
            #expect(filled >= Self.capacity - 1, "the round did not fill started4: \(filled) elements after \(burst.packetsSent) knocks")
            #expect(burst.packetsSent > Self.capacity)

            // Both part-way sources still finish, each within its step timeout.
            try bed.client.knock(Testbed.serverV4, [Self.sequence[2]])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected, "the source at stage 2 lost its place")
            try bed.other.knock(Testbed.serverOtherV4, Array(Self.sequence.dropFirst()))
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected, "the source at stage 1 lost its place")
            _ = listener
        }
    }
}

extension Testbed {
    /// How many elements the server's `set` lists (expired ones are not listed): by default
    /// `started4`, where first knocks go.
    func progressCount(_ set: String = "started4") throws -> Int {
        let listing = try runProgram(["ip", "netns", "exec", server.name, "nft", "-j", "list", "set", "inet", "knockc", set]).output
        let document = try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [String: Any]
        let objects = document?["nftables"] as? [[String: Any]] ?? []
        guard let set = objects.lazy.compactMap({ $0["set"] as? [String: Any] }).first else {
            throw NetworkNamespace.Failure(description: "no set in the listing: \(listing)")
        }
        return (set["elem"] as? [Any])?.count ?? 0
    }
}

extension NetworkNamespace {
    /// The interface that holds `address` in this namespace.
    func device(holding address: String) throws -> String {
        let listing = try runProgram(["ip", "-n", name, "-o", "-4", "addr", "show"]).output
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count > 3, fields[3].hasPrefix("\(address)/") { return String(fields[1]) }
        }
        throw NetworkNamespace.Failure(description: "no interface holds \(address) in \(name)")
    }

    /// Adds /32 addresses to `device` in one `ip -batch`.
    func addAddresses(_ addresses: [String], device: String) throws {
        let batch = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-flood-\(getpid())-\(name).ip")
        defer { try? FileManager.default.removeItem(at: batch) }
        try addresses.map { "addr add \($0)/32 dev \(device)" }.joined(separator: "\n").appending("\n")
            .write(to: batch, atomically: true, encoding: .utf8)
        try runProgram(["ip", "-n", name, "-batch", batch.path])
    }
}

/// Sends rounds of one first knock (a TCP SYN, abandoned at once as knockc's client does) from
/// each of `sources`, bound to that address, from a thread inside `namespace`. Bounded in rounds
/// and in time, and stops early on `stop()`.
final class FirstKnockFlood: @unchecked Sendable {
    let sources: [String]
    let host: String
    let port: UInt16
    private let flood: BackgroundFlood

    init(namespace: NetworkNamespace, sources: [String], host: String, port: UInt16) {
        flood = BackgroundFlood(namespace: namespace)
        self.sources = sources
        self.host = host
        self.port = port
    }

    var packetsSent: Int { flood.packetsSent }

    func start(maxRounds: Int, maxSeconds: Double) {
        flood.start { [sources, host, port] flood in
            let deadline = Date().addingTimeInterval(maxSeconds)
            for _ in 0..<maxRounds {
                for source in sources {
                    if flood.isStopping || Date() > deadline { return }
                    if Self.sendSYN(from: source, to: host, port: port) { flood.countSent() }
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
    }

    /// Waits for the flood to end by itself, at its bound of rounds or of time.
    func finish() { flood.finish() }

    /// Stops the flood and waits for its thread; safe to call more than once.
    func stop() { flood.stop() }

    /// One SYN from `source`, an address of this namespace's (which may be another host's:
    /// that is how a forged packet is sent here), abandoned at once.
    static func sendSYN(from source: String, to host: String, port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var noLinger = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &noLinger, socklen_t(MemoryLayout<linger>.size))
        let localAddress = SocketAddress.make(source, port: 0)
        var local = localAddress.storage
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, localAddress.length) } }
        guard bound == 0 else { return false }
        let targetAddress = SocketAddress.make(host, port: port)
        var target = targetAddress.storage
        let status = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, targetAddress.length) } }
        return status == 0 || errno == EINPROGRESS || errno == ECONNREFUSED
    }
}
