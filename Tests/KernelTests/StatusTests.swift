import Foundation
import Glibc
import KnockClient
import KnockCore
@testable import KnockKernel
import Testing

/// `knockc status` reads grants and knocks in progress from a live table.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct StatusTests {
    static let spec = """
        sequences:
          ssh:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22]
            step_timeout: 5s
            open_for: 1h
          web:
            knock: [tcp/6000, udp/5000, tcp/4000]
            open: [tcp/443]
            step_timeout: 5s
        """

    static func status(_ bed: Testbed, table: String = "knockc") throws -> TableStatus? {
        try bed.server.perform { try StatusReader().readStatus(table: table) }
    }

    @Test("a completed sequence shows as a grant with its sequence, one knock of another as progress")
    func grantAndProgress() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            let empty = try #require(try Self.status(bed))
            #expect(empty == TableStatus(table: "knockc"))

            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .udp(9000), .tcp(8000)])
            try bed.client.knock(Testbed.serverV4, [.tcp(6000)])

            var status = TableStatus(table: "knockc")
            let seen = try eventually(within: 2) {
                status = try #require(try Self.status(bed))
                return status.grants.count == 1 && status.progress.count == 1
            }
            #expect(seen, "\(status)")
            let grant = try #require(status.grants.first)
            #expect(grant.family == .ipv4)
            #expect(grant.source.text == Testbed.clientV4)
            #expect(grant.port == TransportPort(.tcp, 22))
            #expect(grant.sequences == ["ssh"])
            #expect(grant.timeout == .seconds(3600))
            #expect(grant.expires > .seconds(0) && grant.expires <= .seconds(3600))

            let progress = try #require(status.progress.first)
            #expect(progress.family == .ipv4)
            #expect(progress.source.text == Testbed.clientV4)
            #expect(progress.sequence == "web")
            #expect(progress.stage == 1)
            #expect(progress.knocks == 3)
            #expect(progress.expires > .seconds(0) && progress.expires <= .seconds(5))
            #expect(status.bans.isEmpty)
        }
    }

    @Test("IPv6 grants and progress are reported in their family")
    func ipv6() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            try bed.client.knock(Testbed.serverV6, [.tcp(6000), .udp(5000), .tcp(4000)])
            try bed.client.knock(Testbed.serverV6, [.tcp(7000), .udp(9000)])

            var status = TableStatus(table: "knockc")
            let seen = try eventually(within: 2) {
                status = try #require(try Self.status(bed))
                return status.grants.count == 1 && status.progress.count == 1
            }
            #expect(seen, "\(status)")
            #expect(status.grants.first.map { [$0.family == .ipv6, $0.source.text == Testbed.clientV6, $0.port == TransportPort(.tcp, 443)] } == [true, true, true])
            #expect(status.grants.first?.sequences == ["web"])
            #expect(status.progress.first?.family == .ipv6)
            #expect(status.progress.first?.sequence == "ssh")
            #expect(status.progress.first?.stage == 2)
        }
    }

    @Test("an absent table reads as nil")
    func absentTable() throws {
        try Testbed.with { bed in
            #expect(try Self.status(bed) == nil)
            try bed.apply(Self.spec)
            #expect(try Self.status(bed, table: "other") == nil)
            #expect(try Self.status(bed) != nil)
        }
    }
}

/// Status is built from the live state as the reader decodes it through the catalog.
struct StatusBuildingTests {
    /// The state the netlink reader would give for a table of two sequences, `alt` (tag
    /// 0x100, 4 knocks, opens tcp/22 and udp/53) and `ssh` (tag 0x200, 3 knocks, opens
    /// tcp/22), with a grant of a port nothing opens and progress of a tag nothing names.
    static let state: LiveState = {
        func address(_ text: String) -> IPAddress { IPAddress(text, family: .ipv4)! }
        var catalog = TableCatalog()
        catalog.entries = [
            0x100: .init(identity: SequenceIdentity(catalogComment: "alt 9fe6a677a97ef285")!, knocks: 4,
                         opens: [.ipv4: [TransportPort(.tcp, 22), TransportPort(.udp, 53)]]),
            0x200: .init(identity: SequenceIdentity(catalogComment: "ssh 9fe6a677a97ef286")!, knocks: 3,
                         opens: [.ipv4: [TransportPort(.tcp, 22)]]),
        ]
        let openers = catalog.openers
        func grant(_ source: String, _ port: TransportPort, timeout: Int64, expires: Int64) -> Grant {
            Grant(source: address(source), port: port, sequences: openers[.init(family: .ipv4, port: port)] ?? [],
                  timeout: .seconds(timeout), expires: .seconds(expires))
        }
        return LiveState(
            catalog: catalog,
            progress: [SequenceProgress(source: address("192.0.2.10"), tag: 0x102, sequence: "alt", knocks: 4, expires: .seconds(2)),
                       SequenceProgress(source: address("192.0.2.9"), tag: 0x901, expires: .seconds(2))],
            grants: [grant("192.0.2.10", TransportPort(.tcp, 22), timeout: 3600, expires: 599),
                     grant("192.0.2.9", TransportPort(.udp, 53), timeout: 30, expires: 7),
                     grant("192.0.2.9", TransportPort(.tcp, 2222), timeout: 30, expires: 7)])
    }()

    static var status: TableStatus {
        StatusReader.status(state: state, table: "knockc")
    }

    @Test("grants list every sequence opening their port; unknown tags keep their stage")
    func builds() {
        let status = Self.status
        // Numeric address order (.9 before .10), then tcp before udp.
        #expect(status.grants.map(\.source.text) == ["192.0.2.9", "192.0.2.9", "192.0.2.10"])
        #expect(status.grants.map(\.port.description) == ["tcp/2222", "udp/53", "tcp/22"])
        #expect(status.grants.map(\.sequences) == [[], ["alt"], ["alt", "ssh"]])
        #expect(status.progress.map(\.sequence) == [nil, "alt"])
        #expect(status.progress.map(\.stage) == [1, 2])
        #expect(status.progress.map(\.knocks) == [nil, 4])
    }

    @Test("JSON: one object with the documented keys; bans empty when none")
    func json() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let status = Self.status
        let text = String(decoding: try encoder.encode(status), as: UTF8.self)
        #expect(text.hasPrefix(#"{"bans":[],"grants":[{"expires_in_seconds":7,"family":"ipv4","port":"tcp/2222","sequences":[],"source":"192.0.2.9","timeout_seconds":30}"#))
        #expect(text.contains(#""progress":[{"close":false,"expires_in_seconds":2,"family":"ipv4","of":null,"sequence":null,"source":"192.0.2.9","stage":1}"#))
        #expect(text.hasSuffix(#""table":"knockc"}"#))
    }

    @Test("elements with less than a second left are not listed, so no ban shows 0s")
    func endedElementsLeftOut() {
        func address(_ text: String) -> IPAddress { IPAddress(text, family: .ipv4)! }
        var state = Self.state
        state.bans = [Ban(source: address("192.0.2.7"), expires: .init(milliseconds: 999)),
                      Ban(source: address("192.0.2.8"), expires: .seconds(0)),
                      Ban(source: address("192.0.2.9"), expires: .init(milliseconds: 1000))]
        state.grants[0].expires = .init(milliseconds: 400)
        state.progress[0].expires = .seconds(0)
        let status = StatusReader.status(state: state, table: "knockc")
        #expect(status.bans.map(\.source.text) == ["192.0.2.9"])
        #expect(status.grants.count == 2)
        #expect(status.progress.count == 1)
    }

    @Test("an interval set's bounds, as the kernel lists them, give back its addresses")
    func allowedIntervals() {
        func bytes(_ text: String) -> [UInt8] { text.split(separator: ".").map { UInt8($0)! } }
        // allow: [198.51.100.7, 192.0.2.0/28], listed in the kernel's own (descending) order.
        var allowed = AddressIntervals()
        allowed.add([.init(key: bytes("198.51.100.8"), isEnd: true), .init(key: bytes("198.51.100.7"), isEnd: false),
                     .init(key: bytes("192.0.2.16"), isEnd: true), .init(key: bytes("192.0.2.0"), isEnd: false),
                     .init(key: bytes("0.0.0.0"), isEnd: true)], family: .ipv4)
        func contains(_ text: String) -> Bool { allowed.contains(IPAddress(text, family: .ipv4)!) }
        #expect(contains("198.51.100.7"))
        #expect(!contains("198.51.100.8"))
        #expect(!contains("198.51.100.6"))
        #expect(contains("192.0.2.0") && contains("192.0.2.15"))
        #expect(!contains("192.0.2.16"))
        #expect(!allowed.contains(IPAddress("2001:db8::1", family: .ipv6)!))
        // An interval to the last address has no end bound.
        var top = AddressIntervals()
        top.add([.init(key: bytes("128.0.0.0"), isEnd: false), .init(key: bytes("0.0.0.0"), isEnd: true)], family: .ipv4)
        #expect(top.contains(IPAddress("255.255.255.255", family: .ipv4)!))
        #expect(!top.contains(IPAddress("127.255.255.255", family: .ipv4)!))
    }
}
