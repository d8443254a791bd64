import Foundation
import Glibc
@testable import KnockCore
@testable import KnockKernel
@testable import KnockTestSupport
import Testing

/// Re-applying a spec, changed or not, changes the table in place: grants, knocks in progress
/// and bans stay in the kernel.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct InPlaceApplyTests {
    static let spec = KnockSemanticsTests.spec
    /// `aaa` sorts before `ssh`; an older knockc moved every stage tag of `ssh` for it.
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

            #expect(report.inPlace)
            #expect(Set(report.keptSets).isSuperset(of: ["granted4", "granted6", "started4", "progress4"]))
            #expect(report.redefinedSets.isEmpty && report.endedGrants.isEmpty && report.carried == 0)
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

    @Test("an element's time left is untouched by an apply: the element never leaves the kernel")
    func grantTimeUntouched() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            let added = Date()
            try bed.applyScript("add element inet knockc granted4 { 192.0.2.9 . 6 . 22 timeout 1h expires 59m30s500ms comment \"kept\" }\n")
            try bed.apply(Self.specWithAnotherSequence)
            let left = try bed.server.perform { try StatusReader().readStatus(table: "knockc")?.grants.first?.expires }
            let passed = Int64(Date().timeIntervalSince(added) * 1000)
            let milliseconds = try #require(left).milliseconds
            #expect((3_570_500 - passed - 50)...3_570_500 ~= milliseconds, "\(milliseconds) ms left after \(passed) ms")
            // A carried element would have lost its comment; this one was never rewritten.
            #expect(try bed.serverRuleset().contains("comment \"kept\""))
        }
    }

    @Test("the table's counters go on counting across an apply")
    func countersCarryOver() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            func grants() throws -> UInt64? { try bed.server.perform { try CounterReader(table: "knockc").packets()["grants_ssh"] } }
            #expect(try grants() == 1)
            try bed.apply(Self.specWithAnotherSequence)
            #expect(try grants() == 1)
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(try grants() == 2)
        }
    }

    @Test("a knock in progress survives an apply that adds a sequence")
    func progressSurvivesApply() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s"))
            try bed.client.knock(Testbed.serverV4, Array(KnockSemanticsTests.sequence.prefix(2)))

            let report = try bed.apply(Self.specWithAnotherSequence.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s"))
            #expect(report.changedSequences.isEmpty && report.movedProgress == 0)

            try bed.client.knock(Testbed.serverV4, [KnockSemanticsTests.sequence[2]])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("progress on a sequence whose knocks changed ends")
    func progressOfChangedSequenceEnds() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s"))
            try bed.client.knock(Testbed.serverV4, Array(KnockSemanticsTests.sequence.prefix(2)))

            // Same name and last knock, but a different second knock.
            let report = try bed.apply(Self.spec
                .replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s")
                .replacingOccurrences(of: "udp/9000", with: "udp/9001"))
            #expect(report.changedSequences == ["ssh"])

            try bed.client.knock(Testbed.serverV4, [KnockSemanticsTests.sequence[2]])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            _ = listener
        }
    }

    @Test("a grant ends at apply when no sequence that opened its port still opens it")
    func grantOfDroppedPortEnds() throws {
        try Testbed.with { bed in
            let ssh = try bed.listen(tcpPort: 22)
            let web = try bed.listen(tcpPort: 443)
            let spec = """
                sequences:
                  ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22]}
                  web: {knock: [tcp/7100], open: [tcp/443]}
                """
            try bed.apply(spec)
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            try bed.client.knock(Testbed.serverV4, [.tcp(7100)])
            // ssh now opens 2222 only, and web opens 22 as well: the grant of 22 came from ssh.
            let report = try bed.apply("""
                sequences:
                  ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/2222]}
                  web: {knock: [tcp/7100], open: [tcp/443, tcp/22]}
                """)
            #expect(report.endedGrants.map(\.port) == [TransportPort(.tcp, 22)])
            #expect(report.endedGrants.map(\.sequences) == [["ssh"]])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 443) == .connected, "web's grant stays")
            _ = (ssh, web)
        }
    }

    @Test("a changed max_tracked_sources redefines the state sets and carries their elements, and says so")
    func redefinedSetsCarryElements() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s"))
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            try bed.other.knock(Testbed.serverOtherV4, Array(KnockSemanticsTests.sequence.prefix(2)))
            let report = try bed.apply(Self.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s")
                                       + "\nmax_tracked_sources: 1000")
            #expect(report.redefinedSets.contains("granted4") && report.redefinedSets.contains("progress4"))
            #expect(report.carried == 2)
            #expect(RulesetApplier.summary(report, table: "knockc", sequences: 1).contains("redefined sets"))
            #expect(try bed.serverRuleset().contains("size 1000"))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            try bed.other.knock(Testbed.serverOtherV4, [KnockSemanticsTests.sequence[2]])
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("lowering max_tracked_sources below the live elements is refused with a message that says so, and changes nothing")
    func smallerSizeRefused() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            let grants = (1...20).map { "198.18.0.\($0) . 6 . 22 timeout 1h" }
            try bed.applyScript("add element inet knockc granted4 { \(grants.joined(separator: ", ")) }\n")
            func definitions() throws -> String? { try bed.server.perform { try RulesetApplier().listDefinitions("knockc") } }
            let before = try definitions()
            #expect {
                try bed.apply(Self.spec + "\nmax_tracked_sources: 10")
            } throws: { error in
                "\(error)".contains("set granted4 holds 20 live elements, more than its new size of 10")
            }
            #expect(try definitions() == before)
            #expect(try bed.server.perform { try LiveStateReader().read(table: "knockc")?.grants.count } == 20)
        }
    }

    @Test("a table of the same name that knockc did not make is replaced whole")
    func foreignTableReplaced() throws {
        try Testbed.with { bed in
            try bed.applyScript("""
                table inet knockc {
                    quota q { over 1 mbytes }
                    chain c { type filter hook input priority 0; policy drop; }
                }

                """)
            let report = try bed.apply(Self.spec)
            #expect(!report.inPlace)
            let ruleset = try bed.serverRuleset()
            #expect(!ruleset.contains("quota") && !ruleset.contains("policy drop"))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
        }
    }

    @Test("a dormant table, or one with names nft reads as keywords, is replaced whole with its grants carried, and guards again")
    func oddTablesReplacedWithState() throws {
        for oddity in ["add table inet knockc { flags dormant; }\n",
                       #"{"nftables":[{"add":{"chain":{"family":"inet","table":"knockc","name":"eq"}}}]}"#] {
            try Testbed.with { bed in
                let listener = try bed.listen(tcpPort: 22)
                try bed.apply(Self.spec)
                try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
                if oddity.hasPrefix("{") {
                    // A name only JSON can create: nft's own syntax reads it as a keyword.
                    let file = "/run/knockc-test-\(getpid())-\(UUID().uuidString).json"
                    try oddity.write(toFile: file, atomically: true, encoding: .utf8)
                    defer { try? FileManager.default.removeItem(atPath: file) }
                    try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "-j", "-f", file])
                } else {
                    try bed.applyScript(oddity)
                }
                let report = try bed.apply(Self.spec)
                #expect(report.replacement != nil && report.carried == 1, "\(report)")
                #expect(RulesetApplier.summary(report, table: "knockc", sequences: 1).contains("replaced the live table whole"))
                #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected, "the grant was carried")
                #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused, "the port is guarded again")
                _ = listener
            }
        }
    }

    @Test("grants that time out while an apply ends others never make it fail")
    func endingGrantsRacesExpiry() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            let dropped = Self.spec.replacingOccurrences(of: "open: [tcp/22]", with: "open: [tcp/2222]")
            for round in 0..<6 {
                try bed.apply(Self.spec)
                // 2,000 grants of tcp/22, one running out every millisecond from 20 ms on: some
                // expire between the apply's read and its commit.
                let grants = (0..<2000).map { "198.18.\($0 / 250).\($0 % 250 + 1) . 6 . 22 timeout \(20 + $0)ms" }
                try bed.applyScript("add element inet knockc granted4 { \(grants.joined(separator: ", ")) }\n")
                let report = try bed.apply(dropped)
                #expect(!report.endedGrants.isEmpty, "round \(round)")
            }
        }
    }

    @Test("100 re-applies of alternating specs while clients knock lose no grant and no knock in progress")
    func alternatingReapplies() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let specs = [
                Self.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 10s"),
                Self.specWithAnotherSequence.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 10s"),
            ]
            try bed.apply(specs[0])
            let tag = KnockMachine.all(in: try #require(Pipeline.check(specs[0], file: "a").0))[0].tags.tag(2)
            // 1,000 grants and 500 knocks in progress of other sources, placed by hand.
            var script = ""
            for chunk in 0..<4 {
                let grants = (0..<250).map { "198.18.\(chunk).\($0) . 6 . 22 timeout 1h" }
                script += "add element inet knockc granted4 { \(grants.joined(separator: ", ")) }\n"
            }
            for chunk in 0..<2 {
                let progress = (0..<250).map { "198.19.\(chunk).\($0) . \(IPFamily.ipv4.address(tag)) timeout 1h" }
                script += "add element inet knockc progress4 { \(progress.joined(separator: ", ")) }\n"
            }
            try bed.applyScript(script)

            var completed = 0
            for round in 0..<100 {
                // The client makes one knock of its sequence between applies; every third
                // apply it completes the sequence and must be let in.
                let stage = round % 3
                try bed.client.knock(Testbed.serverV4, [KnockSemanticsTests.sequence[stage]])
                try bed.apply(specs[(round + 1) % 2])
                if stage == 2 {
                    #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected, "round \(round)")
                    try bed.server.perform { _ = try Revoker().revoke(source: IPAddress(Testbed.clientV4, family: .ipv4)!, sequence: nil, table: "knockc") }
                    completed += 1
                }
            }
            #expect(completed == 33)
            let state = try #require(try bed.server.perform { try LiveStateReader().read(table: "knockc") })
            #expect(state.grants.filter { $0.source.text.hasPrefix("198.18.") }.count == 1000)
            #expect(state.progress.filter { $0.source.text.hasPrefix("198.19.") }.count == 500)
            _ = listener
        }
    }
}
