import Foundation
import Glibc
import KnockClient
import KnockCore
import KnockKernel
@testable import KnockTestSupport
import Testing

/// What knockc's client puts on the wire, counted by the client namespace's own output hook:
/// every packet to the server, whatever its kind. (Only those: the kernel sends packets of its
/// own on a new link, such as IPv6 multicast listener reports.)
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct KnockerWireTests {
    static let counting = """
        table inet wire {
            counter sent {}
            chain output {
                type filter hook output priority 0; policy accept;
                ip daddr \(Testbed.serverV4) counter name sent
            }
        }

        """

    static func sent(_ bed: Testbed) throws -> Int {
        let listing = try runProgram(["ip", "netns", "exec", bed.client.name, "nft", "list", "counter", "inet", "wire", "sent"]).output
        guard let range = listing.range(of: #"packets [0-9]+"#, options: .regularExpression),
              let count = Int(listing[range].dropFirst("packets ".count)) else {
            throw NetworkNamespace.Failure(description: "no packet count in \(listing)")
        }
        return count
    }

    @Test("an empty sequence sends no packet; one knock sends one")
    func emptySequenceSendsNothing() throws {
        try Testbed.with { bed in
            try bed.client.perform { try RulesetApplier().apply(Self.counting) }
            try bed.client.perform { try Knocker(host: Testbed.serverV4, delay: .seconds(3)).send([]) }
            #expect(try Self.sent(bed) == 0)
            // The counter does see a knock.
            try bed.client.perform { try Knocker(host: Testbed.serverV4, delay: .seconds(3)).send([.udp(9000)]) }
            #expect(try Self.sent(bed) == 1)
        }
    }
}
