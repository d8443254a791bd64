@testable import KnockCore
import Testing

/// `check`'s findings: the message constructor and the place it points at.
struct SpecCheckTests {
    static func findings(_ yaml: String) -> [(Diagnostic.Message, line: Int, column: Int)] {
        Pipeline.check(yaml, file: "spec.yaml").1.map { ($0.message, $0.location.line, $0.location.column) }
    }

    static func expectOnly(_ yaml: String, _ message: Diagnostic.Message, line: Int, column: Int,
                           sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let found = findings(yaml)
        #expect(found.count == 1, "\(found)", sourceLocation: sourceLocation)
        #expect(found.first?.0 == message, sourceLocation: sourceLocation)
        #expect(found.first?.line == line, sourceLocation: sourceLocation)
        #expect(found.first?.column == column, sourceLocation: sourceLocation)
    }

    static let valid = """
        sequences:
          ssh:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22]
        """

    @Test func validSpecHasNoFindings() {
        let (spec, diagnostics) = Pipeline.check(Self.valid, file: "spec.yaml")
        #expect(diagnostics.isEmpty)
        #expect(spec?.sequences.first?.stepTimeout == KnockSpec.defaultStepTimeout)
        #expect(spec?.tableName == "knockc")
    }

    @Test func defaultsAndOverrides() throws {
        let spec = try #require(Pipeline.check("""
            table: fw
            defaults: { step_timeout: 500ms, open_for: 10m }
            sequences:
              a: { knock: [tcp/1, udp/3, tcp/2], open: [tcp/22], open_for: 1d }
              b: { knock: [tcp/5, udp/3, tcp/2], open: [udp/53], step_timeout: 2s }
            """, file: "spec.yaml").0)
        #expect(spec.tableName == "fw")
        #expect(spec.sequences.map(\.stepTimeout) == [.init(milliseconds: 500), .seconds(2)])
        #expect(spec.sequences.map(\.openFor) == [.seconds(86_400), .seconds(600)])
    }

    @Test func unknownKey() {
        Self.expectOnly(Self.valid + "\n    opne: [tcp/23]", .unknownKey("opne", in: "sequence 'ssh'", allowed: SpecParser.sequenceKeys), line: 5, column: 5)
    }

    @Test func badDuration() {
        Self.expectOnly(Self.valid + "\n    open_for: 5 minutes", .badDuration("5 minutes", key: "open_for"), line: 5, column: 15)
        Self.expectOnly(Self.valid + "\n    open_for: 0s", .badDuration("0s", key: "open_for"), line: 5, column: 15)
    }

    @Test func portOutOfRange() {
        Self.expectOnly(Self.valid.replacingOccurrences(of: "tcp/8000", with: "tcp/65536"),
                        .badKnock(.portOutOfRange("65536"), hint: Knock.syntaxHint), line: 3, column: 33)
        Self.expectOnly(Self.valid.replacingOccurrences(of: "tcp/22", with: "tcp/0"),
                        .badKnock(.portOutOfRange("0"), hint: "PROTOCOL/PORT with PROTOCOL tcp or udp, as tcp/22"), line: 4, column: 12)
    }

    @Test func unknownProtocol() {
        Self.expectOnly(Self.valid.replacingOccurrences(of: "udp/9000", with: "sctp/9000"),
                        .badKnock(.unknownProtocol("sctp"), hint: Knock.syntaxHint), line: 3, column: 23)
    }

    @Test func emptySequence() {
        Self.expectOnly(Self.valid.replacingOccurrences(of: "[tcp/7000, udp/9000, tcp/8000]", with: "[]"),
                        .emptySequence("ssh"), line: 3, column: 12)
    }

    @Test func duplicateNamesPointAtTheRepeat() {
        let diagnostics = Pipeline.check(Self.valid + "\n  ssh:\n    knock: [tcp/1, udp/3, tcp/2]\n    open: [tcp/23]", file: "spec.yaml").1
        #expect(diagnostics.count == 1)
        #expect(diagnostics.first?.message == .duplicateKey("ssh"))
        #expect(diagnostics.first?.location.line == 5)
        #expect(diagnostics.first?.notes.first?.location.line == 2)
    }

    /// knockc reads every key as text, so a quoted and a plain key with the same text (which
    /// YAML's default types tell apart as bool and string) are one name said twice.
    @Test func quotedAndPlainKeysWithTheSameTextAreDuplicates() {
        let yaml = "sequences:\n  true:\n    knock: [tcp/1, udp/3, tcp/2]\n    open: [tcp/22]\n"
            + "  \"true\":\n    knock: [tcp/5, udp/7, tcp/6]\n    open: [tcp/23]"
        let diagnostics = Pipeline.check(yaml, file: "spec.yaml").1
        #expect(diagnostics.map(\.message) == [.duplicateKey("true")])
        #expect(diagnostics.first?.location.line == 5)
    }

    @Test func knockThatIsAnOpenPort() {
        let diagnostics = Pipeline.check(Self.valid.replacingOccurrences(of: "tcp/22", with: "tcp/8000"), file: "spec.yaml").1
        #expect(diagnostics.map(\.message) == [.knockIsOpenPort(.tcp(8000))])
        #expect(diagnostics.first?.location.line == 3)
        #expect(diagnostics.first?.notes.first?.location.line == 4)
    }

    @Test func twoSequencesWithTheSameKnocks() {
        let diagnostics = Pipeline.check(Self.valid + "\n  copy:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/23]", file: "spec.yaml").1
        #expect(diagnostics.map(\.message) == [.sameKnocks("copy", as: "ssh")])
        #expect(diagnostics.first?.location.line == 6)
        #expect(diagnostics.first?.notes.first?.location.line == 3)
    }

    @Test func repeatedKnockIsAnError() {
        Self.expectOnly(Self.valid.replacingOccurrences(of: "udp/9000", with: "tcp/7000"), .repeatedKnock(.tcp(7000)), line: 3, column: 23)
    }

    /// A close list that is too long names its sequence, not "close" as if that were one.
    @Test func tooManyCloseKnocksNamesTheSequence() {
        let close = (1...13).map { "udp/\(1000 + $0)" }.joined(separator: ", ")
        Self.expectOnly(Self.valid + "\n    close: [\(close)]", .tooManyCloseKnocks("ssh", 13), line: 5, column: 13)
        #expect(Diagnostic.Message.tooManyCloseKnocks("ssh", 13).text
                == "the close list of sequence 'ssh' has 13 knocks; the most is \(SpecValidator.maxKnocks)")
    }

    @Test func warningsDoNotFail() {
        let short = Pipeline.check(Self.valid.replacingOccurrences(of: "udp/9000, tcp/8000", with: "udp/7000"), file: "spec.yaml")
        #expect(short.0 != nil)
        #expect(short.1.map(\.message) == [.shortSequence("ssh", 2)])
        let rising = Pipeline.check(Self.valid.replacingOccurrences(of: "udp/9000, tcp/8000", with: "udp/8000, tcp/9000"), file: "spec.yaml")
        #expect(rising.0 != nil)
        #expect(rising.1.map(\.message) == [.monotonicSequence("ssh")])
    }

    @Test func structuralErrors() {
        #expect(Self.findings("").map(\.0) == [.emptySpec])
        #expect(Self.findings("sequences: {}").map(\.0) == [.noSequences])
        #expect(Self.findings("table: knockc").map(\.0) == [.missingKey("sequences", in: "the spec")])
        #expect(Self.findings("sequences: [a, b]").map(\.0) == [.expectedMapping("sequences", found: "a list")])
        #expect(Self.findings("sequences:\n  ssh:\n    knock: tcp/7000\n    open: [tcp/22]").map(\.0)
                == [.expectedList("knock", found: "'tcp/7000'")])
        let yaml = Self.findings("sequences:\n  ssh: [\n")
        #expect(yaml.count == 1)
        #expect(yaml.first?.0.text.hasPrefix("invalid YAML") == true)
    }

    @Test("names that could carry nft syntax are refused")
    func injectionIsRefused() {
        for name in ["a;b", "a}", "a\"b", "a#b", "a b", "A", "a\nflush ruleset", String(repeating: "a", count: 33)] {
            let yaml = "sequences:\n  \"\(name.replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\"", with: "\\\""))\":\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/22]"
            let (spec, diagnostics) = Pipeline.check(yaml, file: "spec.yaml")
            #expect(spec == nil, "accepted \(name)")
            #expect(diagnostics.contains { $0.message == .badSequenceName(name) }, "\(diagnostics)")
        }
        for table in ["knockc; flush ruleset", "x}", "1abc", "t\"", "t#"] {
            let (spec, _) = Pipeline.check("table: '\(table)'\n" + Self.valid, file: "spec.yaml")
            #expect(spec == nil, "accepted table \(table)")
        }
        for knock in ["tcp/22;", "tcp/22 }", "tcp/ 22", "tcp/+22", "tcp/0x16", "tcp/22#"] {
            let (spec, _) = Pipeline.check(Self.valid.replacingOccurrences(of: "tcp/8000", with: "'\(knock)'"), file: "spec.yaml")
            #expect(spec == nil, "accepted knock \(knock)")
        }
    }
}
