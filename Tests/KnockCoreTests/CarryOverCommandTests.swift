@testable import KnockCore
import Testing

struct CarryOverCommandTests {
    @Test("carried elements go in commands of at most elementsPerCommand, none lost")
    func commandsAreChunked() {
        let grants = (0..<12_001).map { index in
            GrantElement(family: .ipv4, source: IPAddress("198.18.\(index / 250).\(index % 250 + 1)", family: .ipv4)!,
                         port: TransportPort(.tcp, 22), timeout: .seconds(3600), expires: .seconds(60))
        }
        let commands = StateCarryOver(progress: [], grants: grants, droppedProgress: 0).commands(table: "knockc")
        let lines = commands.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.allSatisfy { $0.hasPrefix("add element inet knockc granted4 { ") && $0.hasSuffix(" }") })
        #expect(lines.map { $0.split(separator: ",").count } == [5000, 5000, 2001])
    }
}
