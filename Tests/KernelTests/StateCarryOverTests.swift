import Foundation
import Glibc
import KnockCore
import KnockKernel
import Testing

/// Re-applying a spec, changed or not, keeps grants and knocks in progress.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct StateCarryOverTests {
    static let spec = KnockSemanticsTests.spec
    /// `aaa` sorts before `ssh`, so adding it moves every stage tag of `ssh`.
    static let specWithAnotherSequence = spec.replacingOccurrences(of: "open_for: 1h", with: "open_for: 2h") + """

          aaa:
            knock: [udp/6000, tcp/5000, udp/4000]
            open: [tcp/2222]
        """

    @Test("a granted client keeps its grant and its established connection across a changed apply")
    func grantSurvivesChangedApply() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let listener6 = try bed.listen(tcpPort: 22, family: .ipv6)
            try bed.apply(Self.spec)
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            try bed.client.knock(Testbed.serverV6, KnockSemanticsTests.sequence)
            let connection = try #require(try bed.client.openConnection(to: Testbed.serverV4, port: 22))
            let serverSide = try listener.accept()

            let report = try bed.apply(Self.specWithAnotherSequence)

            #expect(report.grantsKept == 2)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .connected)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused)
            try connection.send("across the apply")
            #expect(serverSide.receive() == "across the apply")
            _ = listener6
        }
    }

    @Test("a grant keeps its remaining time, not the new open_for")
    func grantKeepsRemainingTime() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec.replacingOccurrences(of: "open_for: 1h", with: "open_for: 3s"))
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            try bed.apply(Self.spec)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            let closed = try eventually(within: 6) {
                try bed.client.connect(to: Testbed.serverV4, port: 22, timeout: 0.5) == .refused
            }
            #expect(closed, "the grant took the new open_for of 1h")
            _ = listener
        }
    }

    @Test("the time a grant has left is carried to the millisecond, not rounded to whole seconds")
    func grantTimeCarriedToTheMillisecond() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            // 3,570.5 s left. Rounded down to whole seconds, the carried time would lose the half
            // second; carried to the millisecond, it loses only the time that passed.
            let added = Date()
            try bed.applyScript("add element inet knockc granted4 { 192.0.2.9 . 6 . 22 timeout 1h expires 59m30s500ms }\n")
            try bed.apply(Self.spec)
            let left = try bed.server.perform { try StatusReader().readStatus(table: "knockc")?.grants.first?.expires }
            let passed = Int64(Date().timeIntervalSince(added) * 1000)
            let milliseconds = try #require(left).milliseconds
            #expect((3_570_500 - passed - 50)...3_570_500 ~= milliseconds, "\(milliseconds) ms left after \(passed) ms")
        }
    }

    @Test("the table's counters carry over an apply: grants counted before it are not lost")
    func countersCarryOver() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            func grants() throws -> UInt64? { try bed.server.perform { try CounterReader(table: "knockc").packets()["grants_ssh"] } }
            #expect(try grants() == 1)
            try bed.apply(Self.specWithAnotherSequence)
            #expect(try grants() == 1)
        }
    }

    @Test("a knock in progress survives an apply that moves its stage tags")
    func progressSurvivesApply() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s"))
            try bed.client.knock(Testbed.serverV4, Array(KnockSemanticsTests.sequence.prefix(2)))

            let report = try bed.apply(Self.specWithAnotherSequence.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s"))
            #expect(report.progressKept == 1)

            try bed.client.knock(Testbed.serverV4, [KnockSemanticsTests.sequence[2]])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("progress on a sequence whose knocks changed is dropped")
    func progressOfChangedSequenceIsDropped() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s"))
            try bed.client.knock(Testbed.serverV4, Array(KnockSemanticsTests.sequence.prefix(2)))

            // Same name and last knock, but a different second knock.
            let report = try bed.apply(Self.spec
                .replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s")
                .replacingOccurrences(of: "udp/9000", with: "udp/9001"))
            #expect(report.progressKept == 0)
            #expect(report.progressDropped == 1)

            try bed.client.knock(Testbed.serverV4, [KnockSemanticsTests.sequence[2]])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            _ = listener
        }
    }
}
