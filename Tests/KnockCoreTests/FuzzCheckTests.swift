import Foundation
@testable import KnockCore
@testable import KnockTestSupport
import Testing

/// Thousands of generated and mutated specs thrown at `Pipeline.check`: it never crashes,
/// never hangs, and answers each with a spec and no errors, or no spec and at least one
/// error, every diagnostic pointing into the text. Each spec it accepts compiles to nft text
/// whose only free text, the comments, holds nothing that nft could read as syntax.
///
/// Deterministic: a failure names its chunk, case and input; the same seed replays it.
struct FuzzCheckTests {
    static let chunks = 10
    static let casesPerChunk = 500

    /// Valid specs, specs with one error put in, valid specs with an anchor and an alias put
    /// in, and texts mutated from valid or flawed specs.
    enum Kind: String { case valid, flawed, aliased, mutated }

    @Test("the generator writes every key the parser knows")
    func generatorCoversEveryKey() {
        typealias Generator = SpecGenerator<SplitMix>
        #expect(Set(Generator.topLevelKeys) == Set(SpecParser.topLevelKeys), "extend SpecGenerator for the new top-level keys")
        #expect(Set(Generator.sequenceKeys) == Set(SpecParser.sequenceKeys), "extend SpecGenerator for the new sequence keys")
        #expect(Set(Generator.timingKeys) == Set(SpecParser.timingKeys))
        #expect(Set(Generator.limitKeys) == Set(SpecParser.limitKeys))
    }


    @Test("check answers every generated or mutated spec, and what it accepts compiles to clean nft",
          .timeLimit(.minutes(3)), arguments: 0..<chunks)
    func fuzzChunk(_ chunk: Int) {
        var random = SplitMix(seed: 0x6b6e_6f63_6b00 &+ UInt64(chunk) &* 0x1_0000_0001)
        var tally: [String: Int] = [:]
        var unusualComments: Set<String> = []
        for index in 0..<Self.casesPerChunk {
            let fuzzCase = Self.makeCase(index: index, random: &random)
            let (kind, text) = (fuzzCase.kind, fuzzCase.text)
            let label = "chunk \(chunk) case \(index) (\(kind.rawValue)\(fuzzCase.label.map { ": \($0)" } ?? ""))"
            let started = ContinuousClock.now
            let outcome = Self.checkOne(text, label: label, unusualComments: &unusualComments)
            let elapsed = ContinuousClock.now - started
            // A guard against a hang (Yams once expanded aliases used as keys), not a speed target.
            #expect(elapsed < .seconds(10), "\(label) took \(elapsed):\n\(text)")
            tally["\(kind.rawValue) \(outcome.accepted ? "accepted" : "refused")", default: 0] += 1
            switch kind {
            case .valid:
                #expect(outcome.accepted, "\(label): a valid spec was refused: \(outcome.errors)\n\(text)")
            case .flawed:
                #expect(!outcome.accepted, "\(label): the flaw went unreported\n\(text)")
                // Refused for the planted flaw, not for something the planting broke.
                if let planted = fuzzCase.spec.planted {
                    let expected = Self.messages(for: planted, in: fuzzCase.spec)
                    #expect(outcome.diagnostics.contains { expected.contains($0.message) },
                            "\(label): refused, but not for the planted flaw \(planted): \(outcome.errors)\n\(text)")
                } else {
                    Issue.record("\(label): the generator planted a flaw without saying what check must report")
                }
            case .aliased:
                // Refused at the alias itself, found by its text: no expansion, no other error.
                #expect(outcome.diagnostics.map(\.message) == [.aliasNotSupported], "\(label): \(outcome.errors)\n\(text)")
                let place = Self.place(of: "*planted", in: text)
                #expect(outcome.diagnostics.first.map { [$0.location.line, $0.location.column] } == place.map { [$0.line, $0.column] },
                        "\(label): \(outcome.errors)\n\(text)")
            case .mutated:
                break
            }
        }
        if ProcessInfo.processInfo.environment["KNOCKC_FUZZ_VERBOSE"] != nil {
            print("fuzz chunk \(chunk): \(tally.sorted { $0.key < $1.key })")
        }
        // Comments built from fixed text may hold ';' or an apostrophe; ones built from names
        // never do, and names vary with every spec, so they would be many.
        #expect(unusualComments.count <= 8, "comments with ';' or quotes vary between specs: \(unusualComments.sorted())")
        #expect(tally.keys.contains { $0.hasPrefix("mutated accepted") }, "no mutated spec was accepted: \(tally)")
        #expect(tally.keys.contains { $0.hasPrefix("mutated refused") }, "\(tally)")
        #expect(tally["aliased refused"] == Self.casesPerChunk / 10, "\(tally)")
    }

    /// The 1-based line and column (in characters, as YAML counts) of the first `token`.
    static func place(of token: String, in text: String) -> (line: Int, column: Int)? {
        guard let range = text.range(of: token) else { return nil }
        let before = text[..<range.lowerBound]
        let lineStart = before.lastIndex(of: "\n").map { before.index(after: $0) } ?? before.startIndex
        return (before.count(where: { $0 == "\n" }) + 1, before[lineStart...].unicodeScalars.count + 1)
    }

    /// The messages `check` may give for a planted flaw: the flaw's own, with the values it
    /// names taken from the spec (which open port a decoy covers first, which allowed prefix
    /// a denied address falls in).
    static func messages(for flaw: PlantedFlaw, in spec: GenSpec) -> [Diagnostic.Message] {
        let sequences = spec.sequences ?? []
        let names = sequences.map(\.name)
        let openPorts = sequences.flatMap { $0.open ?? [] }.compactMap { try? TransportPort(parsing: $0) }
        let allowed = ((spec.allow ?? []) + sequences.flatMap { $0.allow ?? [] }).compactMap { try? CIDR(parsing: $0) }
        let shapes = ["'x'", "a list", "nothing", "a mapping", "'ssh'", "'tcp/7000'", "'tcp/23'"]
        switch flaw {
        case .repeatedKnock(let word): return [try? Knock(parsing: word)].compactMap { $0.map { .repeatedKnock($0) } }
        case .knockIsOpenPort(let word): return [try? Knock(parsing: word)].compactMap { $0.map { .knockIsOpenPort($0) } }
        case .openListedTwice(let word): return [try? TransportPort(parsing: word)].compactMap { $0.map { .openListedTwice($0) } }
        case .allowedAndDenied(let text):
            guard let denied = try? CIDR(parsing: text) else { return [] }
            return allowed.map { .allowedAndDenied(denied, $0) }
        case .badCIDR(let text):
            do throws(CIDR.ParseError) { _ = try CIDR(parsing: text); return [] } catch { return [.badCIDR(error)] }
        case .decoyInUse(let text):
            guard let decoy = try? PortRange(parsing: text) else { return [] }
            return openPorts.map { .decoyInUse(decoy, $0) }
        case .decoysOverlap(let one, let other):
            guard let one = try? PortRange(parsing: one), let other = try? PortRange(parsing: other) else { return [] }
            return [.decoysOverlap(one, other), .decoysOverlap(other, one)]
        case .tooManyKnocks(let name, let count): return [.tooManyKnocks(name, count)]
        case .tooManyCloseKnocks(let name, let count): return [.tooManyCloseKnocks(name, count)]
        case .badDuration(let text, let key): return [.badDuration(text, key: key), .durationTooLong(text, key: key)]
        case .sameKnocks: return names.flatMap { name in names.map { .sameKnocks(name, as: $0) } }
        case .unknownKey(let key):
            var contexts = [("the spec", SpecParser.topLevelKeys), ("defaults", SpecParser.timingKeys)]
            for name in names {
                contexts += [("sequence '\(name)'", SpecParser.sequenceKeys), ("limits of sequence '\(name)'", SpecParser.limitKeys)]
            }
            return contexts.map { .unknownKey(key, in: $0.0, allowed: $0.1) }
        case .missingKey(let key, let name): return [.missingKey(key, in: "sequence '\(name)'")]
        case .noSequences: return [.noSequences]
        case .badTableName(let text): return [.badTableName(text)]
        case .badSequenceName(let text): return [.badSequenceName(text)]
        case .badKnock(let text, let inOpen, let inDecoys):
            do throws(KnockSyntaxError) {
                if inDecoys {
                    _ = try PortRange(parsing: text)
                } else if inOpen {
                    _ = try TransportPort(parsing: text)
                } else {
                    _ = try Knock(parsing: text)
                }
                return []
            } catch {
                let hint = inDecoys ? "PROTOCOL/PORT or PROTOCOL/FIRST-LAST, as tcp/23 or tcp/2000-2100"
                    : inOpen ? "PROTOCOL/PORT with PROTOCOL tcp or udp, as tcp/22" : Knock.syntaxHint
                return [.badKnock(error, hint: hint)]
            }
        case .badRate(let text): return [.badRate(text)]
        case .badTrackedSources(let text): return [.badTrackedSources(text)]
        case .badBoolean(let text): return [.badBoolean(text, key: "strict")]
        case .emptyClose(let name): return [.emptyClose(name)]
        case .missingSecret(let path): return [.badSecret(.missing(path, reason: String(cString: strerror(ENOENT))))]
        case .badHook(let arguments, let key):
            do throws(HookCommand.Problem) { _ = try HookCommand(arguments); return [] } catch { return [.badHook(error, key: key)] }
        case .badHookTimeout(let text):
            return [.badDuration(text, key: "hook_timeout"), .durationTooLong(text, key: "hook_timeout")]
                + [Duration(parsing: text)].compactMap { $0.map { .hookTimeoutTooLong($0) } }
        case .hookNotAList(let key): return [.hookNotAList(key)]
        case .wrongShape(let key):
            return shapes.flatMap { found in
                [.expectedMapping(key, found: found), .expectedList(key, found: found),
                 .expectedScalar("an address or prefix", found: found)]
            }
        }
    }

    @Test("the nft audit catches what a smuggled value would leave")
    func auditCatchesInjection() {
        var unusual: Set<String> = []
        let clean = "# header; \"quoted\"\ntable inet knockc {\n\tchain input {\n\t\ttype filter hook input priority -10; policy accept;\n\t\tiif lo accept comment \"ssh: knock 1 of 3\"\n\t}\n}"
        #expect(NftTextAudit.problems(in: clean, unusualComments: &unusual).isEmpty)
        let smuggled = [
            "table inet knockc {\n\tcomment \"a\" ; drop\n}",
            "table inet knockc {\n\tcomment \"a\n\"\n}",
            "table inet knockc {\n\tcomment \"a#b\"\n}",
            "table inet knockc {\n\tcomment \"a}\"\n}",
            "table inet knockc {\n\tcomment \"a\\\"\n}",
            "table inet knockc {\n\tcomment \"\u{202E}\"\n}",
            "table inet knockc {\n\tcomment \"a\" }\n}",
            "table inet knockc {\n\tip saddr 10.0.0.1; drop\n}",
            "table inet k$x {\n}",
            "table inet knockc {\n\tcomment \"a\"\n",
            "table inet knockc {\n\tcomment 'a'\n}",
            "table inet knockc {\n\tip saddr 10.0.0.1\u{0}\n}",
        ]
        for script in smuggled {
            #expect(!NftTextAudit.problems(in: script, unusualComments: &unusual).isEmpty, "\(script.debugDescription)")
        }
    }

    // MARK: Defects found by fuzzing

    /// Runs `knockc check` on `text` in a process of its own, so that a trap fails this test
    /// instead of killing the test run. Nil when there is no knockc executable, which fails
    /// the test under CI.
    static func checkInSubprocess(_ text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> (status: Int32, signaled: Bool, stderr: String)? {
        guard let knockc = KnockcExecutable.required(sourceLocation: sourceLocation) else { return nil }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).yaml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try KnockcExecutable.run(knockc, ["check", file.path])
        return (result.status, result.signaled, result.stderr)
    }

    /// Found by the fuzzer: `106751991168d` (the smallest) and longer day counts up to 12
    /// digits overflow Int64 milliseconds in `Duration(parsing:)`, which traps.
    @Test("a huge duration is an error, not a crash", arguments: ["106751991168d", "999999999999d", "000106751991168d"])
    func hugeDurationDoesNotCrash(_ duration: String) throws {
        let text = "defaults: {open_for: \(duration)}\nsequences:\n  ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22]}\n"
        guard let result = try Self.checkInSubprocess(text) else { return }
        if duration.count > 13 {
            #expect(result.status == 1 && !result.signaled, "\(result.stderr)")
            return
        }
        #expect(!result.signaled, "knockc check crashed on \(duration)")
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("too long"), "\(result.stderr)")
    }

    /// Found by the fuzzer: an alias used as a mapping key made Yams hash the whole expanded
    /// tree to look for duplicate keys, so each level of nested aliases multiplied the time by
    /// ten. The composer refuses the first alias where it stands, so nothing is expanded.
    @Test("nested aliases used as a key are refused at the first alias, before any expansion")
    func aliasKeyDoesNotHang() {
        // Nine levels of ten: the key would expand to 10^10 scalars, hours of hashing.
        var lines = ["x0: &a0 [l, l, l, l, l, l, l, l, l, l]"]
        for level in 1...9 {
            lines.append("x\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]")
        }
        let text = (lines + ["? *a9", ": 1", "sequences: {}"]).joined(separator: "\n") + "\n"
        let started = ContinuousClock.now
        let (spec, diagnostics) = Pipeline.check(text, file: "bomb.yaml")
        let elapsed = ContinuousClock.now - started
        #expect(spec == nil)
        #expect(diagnostics.map(\.message) == [.aliasNotSupported])
        #expect(diagnostics.first.map { [$0.location.line, $0.location.column] } == [2, 10])
        // Not a speed target: expanded, this takes hours; read, microseconds. The bound only
        // keeps a regression from hanging the run, however loaded the machine.
        #expect(elapsed < .seconds(10), "\(elapsed)")
    }

    struct Case {
        var kind: Kind
        var text: String
        /// The flaw or the mutations, for the failure message.
        var label: String?
        var spec: GenSpec
    }

    /// Cases in a fixed proportion: 30% valid, 20% flawed, 10% aliased, 40% mutated (30% from
    /// valid specs, 10% from flawed ones).
    static func makeCase(index: Int, random: inout SplitMix) -> Case {
        var generator = SpecGenerator(SplitMix(seed: random.next()))
        generator.maxKnocks = SpecValidator.maxKnocks
        let slot = index % 10
        let spec = slot < 3 || (5...8).contains(slot) ? generator.validSpec(density: slot.isMultiple(of: 2) ? 0.5 : 0.9) : generator.flawedSpec()
        var tree = spec.tree(using: &generator.random)
        if slot == 8 { tree = tree.plantingAlias(using: &generator.random) }
        var writer = YAMLWriter(SplitMix(seed: random.next()))
        let text = writer.document(tree)
        if slot < 3 { return Case(kind: .valid, text: text, spec: spec) }
        if slot < 5 { return Case(kind: .flawed, text: text, label: spec.flaw, spec: spec) }
        if slot == 8 { return Case(kind: .aliased, text: text, label: "an anchor and *planted", spec: spec) }
        var mutator = TextMutator(random: SplitMix(seed: random.next()))
        var mutated = text
        let count = mutator.int(0...2) == 0 ? mutator.int(2...4) : 1
        var names: [String] = []
        for _ in 0..<count {
            let (name, next) = mutator.mutate(mutated)
            names.append(name)
            mutated = next
        }
        return Case(kind: .mutated, text: mutated, label: names.joined(separator: ", "), spec: spec)
    }

    struct Outcome {
        var accepted: Bool
        var errors: [String]
        var diagnostics: [Diagnostic]
    }

    /// Runs one text through every stage and checks what comes out.
    static func checkOne(_ text: String, label: String, unusualComments: inout Set<String>) -> Outcome {
        let (spec, diagnostics) = Pipeline.check(text, file: "fuzz.yaml")
        let errors = diagnostics.filter { $0.severity == .error }
        if spec == nil {
            #expect(!errors.isEmpty, "\(label): refused without an error\n\(text)")
        } else {
            #expect(errors.isEmpty, "\(label): accepted with errors \(errors)\n\(text)")
        }
        // YAML breaks lines at CR, LF, CRLF, NEL, LS and PS; at the end of the text, a
        // diagnostic may stand one line past the last.
        let lineCount = 1 + text.replacingOccurrences(of: "\r\n", with: "\n").unicodeScalars
            .filter { ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"].contains($0) }.count
        for diagnostic in diagnostics + diagnostics.flatMap(\.notes) {
            let location = diagnostic.location
            #expect(location.file == "fuzz.yaml", "\(label): \(diagnostic)")
            #expect(location.line >= 1 && location.column >= 1, "\(label): \(diagnostic)\n\(text)")
            #expect(location.line <= lineCount + 1, "\(label): points past the text: \(diagnostic)\n\(text)")
            #expect(!diagnostic.message.text.trimmingCharacters(in: .whitespaces).isEmpty, "\(label): empty message\n\(text)")
        }
        guard let spec else { return Outcome(accepted: false, errors: errors.map(\.description), diagnostics: diagnostics) }

        let ruleset = RulesetLowering.lower(spec)
        let script = Pipeline.nftScript(for: ruleset)
        for problem in NftTextAudit.problems(in: script, unusualComments: &unusualComments) {
            Issue.record("\(label): \(problem)\nspec:\n\(text)")
        }
        #expect(script.contains("table inet \(spec.tableName) {\n"), "\(label)")
        do {
            let json = try Pipeline.nftJSON(for: ruleset)
            #expect((try? JSONSerialization.jsonObject(with: Data(json.utf8))) != nil, "\(label): JSON does not parse\n\(text)")
        } catch {
            #expect(Self.hasSubSecondTimeout(spec), "\(label): JSON refused \(error) without a sub-second timeout\n\(text)")
        }
        return Outcome(accepted: true, errors: [], diagnostics: diagnostics)
    }

    static func hasSubSecondTimeout(_ spec: KnockSpec) -> Bool {
        let durations = spec.sequences.flatMap { [$0.stepTimeout, $0.openFor, $0.banFor] } + [spec.decoyBanFor]
        return durations.contains { $0.milliseconds % 1000 != 0 }
    }
}

/// Reads compiled nft text for anything a spec value could have smuggled in. One pass over
/// the bytes by hand: compiled tables run to megabytes, too many for Regex or for slicing in
/// a debug build.
enum NftTextAudit {
    /// What a comment may hold: the fixed words knockc writes, and names (validated to
    /// letters, digits, '-' and '_').
    static let commentBytes = table("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _:,./-")
    /// Allowed in comments of fixed text only; the caller checks that those stay few.
    static let fixedTextBytes = table(";'")
    /// Never outside a comment: quotes, comment and escape characters, shell and nft variables.
    static let forbiddenOutside = table("\"#'\\$`")

    static func table(_ characters: String) -> [Bool] {
        var table = [Bool](repeating: false, count: 256)
        for byte in characters.utf8 { table[Int(byte)] = true }
        return table
    }

    static func problems(in script: String, unusualComments: inout Set<String>) -> [String] {
        var script = script
        return script.withUTF8 { scan($0, unusualComments: &unusualComments) }
    }

    private static func scan(_ bytes: UnsafeBufferPointer<UInt8>, unusualComments: inout Set<String>) -> [String] {
        let newline = UInt8(ascii: "\n"), quote = UInt8(ascii: "\""), tab = UInt8(ascii: "\t")
        let opening = Array("comment \"".utf8)
        var problems: [String] = []
        var lineProblems: [String] = []
        var depth = 0
        var lineNumber = 1
        var lineStart = 0
        var semicolon = false
        var index = 0

        func endLine(at end: Int) {
            let line = String(decoding: UnsafeBufferPointer(rebasing: bytes[lineStart..<end]), as: UTF8.self)
            if semicolon && !isChainHeader(line) { lineProblems.append("';' outside a chain header") }
            for problem in lineProblems { problems.append("\(problem): nft line \(lineNumber): \(line)") }
            lineProblems = []
            semicolon = false
        }

        while index < bytes.count {
            let byte = bytes[index]
            if byte == newline {
                endLine(at: index)
                lineNumber += 1
                lineStart = index + 1
                index += 1
                continue
            }
            if index == lineStart && byte == UInt8(ascii: "#") {
                // The template's own comment lines.
                while index < bytes.count && bytes[index] != newline { index += 1 }
                continue
            }
            if byte == opening[0] && index + opening.count <= bytes.count
                && (0..<opening.count).allSatisfy({ bytes[index + $0] == opening[$0] }) {
                let bodyStart = index + opening.count
                var end = bodyStart
                var unusual = false
                while end < bytes.count && bytes[end] != quote && bytes[end] != newline {
                    if !commentBytes[Int(bytes[end])] {
                        if fixedTextBytes[Int(bytes[end])] { unusual = true } else { lineProblems.append("comment holds unexpected characters") }
                    }
                    end += 1
                }
                guard end < bytes.count && bytes[end] == quote else {
                    lineProblems.append("comment not closed on its line")
                    index = end
                    continue
                }
                if unusual {
                    unusualComments.insert(String(decoding: UnsafeBufferPointer(rebasing: bytes[bodyStart..<end]), as: UTF8.self))
                }
                index = end + 1
                continue
            }
            if forbiddenOutside[Int(byte)] { lineProblems.append("quote, '#', backslash or '$' outside a comment") }
            if byte >= 0x7f || (byte < 0x20 && byte != tab) { lineProblems.append("control or non-ASCII byte") }
            if byte == UInt8(ascii: ";") { semicolon = true }
            if byte == UInt8(ascii: "{") { depth += 1 }
            if byte == UInt8(ascii: "}") {
                depth -= 1
                if depth < 0 { lineProblems.append("'}' closes more than was opened") }
            }
            index += 1
        }
        endLine(at: bytes.count)
        if depth != 0 { problems.append("braces do not balance: depth \(depth) at the end") }
        return problems
    }

    /// `\t\ttype filter hook input priority -10; policy accept;`
    static func isChainHeader(_ line: String) -> Bool {
        let text = line.drop { $0 == "\t" }
        guard text.hasPrefix("type filter hook "), text.hasSuffix("; policy accept;") else { return false }
        let words = text.dropFirst("type filter hook ".count).dropLast("; policy accept;".count).split(separator: " ")
        return words.count == 3 && words[0].allSatisfy { $0.isASCII && $0.isLetter } && words[1] == "priority"
            && Int(words[2]) != nil
    }
}

/// Mutations of YAML text: byte flips, lines deleted, duplicated or swapped, nft and YAML
/// syntax inserted, huge numbers, empty values, anchors and aliases (after quotes and
/// apostrophes too), very deep nesting.
struct TextMutator {
    var random: SplitMix

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }

    static let tokens = [
        ";", "}", "{", "\"", "'", "#", "\n", "\t", "\r\n", "\r", ": ", ":", "- ", "-", "[", "]", ",", "?", "? ", "|", ">", "|-\n",
        "&a ", "*a", "&a", "*b ", "!!str ", "!!binary ", "!!map ", "!!seq ", "!!int ", "!custom ", "<<: ", "%YAML 1.1\n", "---\n", "...\n",
        "\\", "\\n", "\\0", "\\x00", "\\u0000", "$", "${x}", "@", "`", "\u{0}", "\u{1}", "\u{7f}", "é", "\u{202E}", "\u{200D}", "\u{FEFF}",
        "\u{85}", "\u{2028}", "；", "＂", "｝", "🔥", "ß", "İ", "١", "99999999999999999999", "106751991167d", "4294967296", "65536",
        "-1", "0", "1e999", ".inf", ".nan", "~", "null", "true", "::", "/", "/0", "/129", "tcp/", "icmp/", "  ", " # x",
    ]

    static let values = [
        "", "''", "\"\"", "~", "null", "[]", "{}", "[[]]", "{a: b}", "-", "99999999999999999999", "106751991167d", "9999999999999d",
        "999999999999h", "0", "-0", "1e6", "0x10", "0o7", ".5", "5s;", "\"5s; drop\"", "tcp/22 }", "'a;b'", "\"a\\nb\"",
        "\"\\0\"", "ssh\u{0}", "*a", "&a 5s", "!!binary aGk=", "|\n  x", ">\n  x", "\"\u{202E}\"", "ｔｃｐ/２２", "tcp/22#x",
        "[tcp/7000, [tcp/1]]", "{knock: [tcp/1]}", "true", "yes", "24d", "1ms", "icmp/56", "::/0", "0.0.0.0/0",
    ]

    /// Applies one mutation; returns its name and the new text.
    mutating func mutate(_ text: String) -> (String, String) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let lineIndex = int(0...max(0, lines.count - 1))
        switch int(0...16) {
        case 0:
            var bytes = Array(text.utf8)
            guard !bytes.isEmpty else { return ("flip", "x") }
            for _ in 0..<int(1...3) { bytes[int(0...bytes.count - 1)] = UInt8(int(0...255)) }
            return ("flip bytes", String(decoding: bytes, as: UTF8.self))
        case 1:
            lines.remove(at: lineIndex)
            return ("delete line \(lineIndex + 1)", lines.joined(separator: "\n"))
        case 2:
            lines.insert(lines[lineIndex], at: lineIndex)
            return ("duplicate line \(lineIndex + 1)", lines.joined(separator: "\n"))
        case 3:
            let other = int(0...lines.count - 1)
            lines.swapAt(lineIndex, other)
            return ("swap lines \(lineIndex + 1) and \(other + 1)", lines.joined(separator: "\n"))
        case 4, 5, 6:
            let token = pick(Self.tokens)
            return ("insert \(token.debugDescription)", insert(token, into: text))
        case 7, 8:
            guard let colon = lines[lineIndex].range(of: ": ") else { return mutate(text) }
            let value = pick(Self.values)
            lines[lineIndex] = String(lines[lineIndex][..<colon.upperBound]) + value
            return ("value \(value.debugDescription) on line \(lineIndex + 1)", lines.joined(separator: "\n"))
        case 9:
            let depth = pick([10, 100, 999, 1000, 1001, 5000])
            let nesting = pick([
                String(repeating: "[", count: depth) + String(repeating: "]", count: depth),
                String(repeating: "{a: ", count: depth) + "b" + String(repeating: "}", count: depth),
                String(repeating: "- ", count: min(depth, 300)) + "x",
                String(repeating: "[", count: depth),
            ])
            if let colon = lines[lineIndex].range(of: ": ") {
                lines[lineIndex] = String(lines[lineIndex][..<colon.upperBound]) + nesting
                return ("nesting \(depth) on line \(lineIndex + 1)", lines.joined(separator: "\n"))
            }
            return ("nesting \(depth)", insert(nesting, into: text))
        case 10:
            // An anchor on one value and aliases to it elsewhere, or an alias to nothing.
            let withValues = lines.indices.filter { lines[$0].contains(": ") }
            guard let first = withValues.first else { return mutate(text) }
            let anchored = pick(withValues)
            lines[anchored] = lines[anchored].replacingOccurrences(of: ": ", with: ": &a ", options: [], range: lines[anchored].range(of: ": "))
            for _ in 0..<int(0...3) {
                let target = pick(withValues)
                if let colon = lines[target].range(of: ": ") { lines[target] = String(lines[target][..<colon.upperBound]) + pick(["*a", "*a", "*missing", "[*a, *a]"]) }
            }
            if int(0...3) == 0 { lines.insert("<<: *a", at: first) }
            return ("anchor and aliases", lines.joined(separator: "\n"))
        case 11:
            // Aliases that would expand to up to 10^10 nodes, used as keys and values: refused
            // at the first alias, they cost no more than their text.
            let width = int(2...10)
            let levels = int(1...9)
            var bomb = ["b0: &b0 [" + Array(repeating: "l", count: width).joined(separator: ", ") + "]"]
            for level in 1...levels {
                bomb.append("b\(level): &b\(level) [" + Array(repeating: "*b\(level - 1)", count: width).joined(separator: ", ") + "]")
            }
            let use = pick(["? *b\(levels)\n: 1", "allow: *b\(levels)", "decoys: *b\(levels)", "sequences: *b\(levels)", "limits: *b\(levels)"])
            return ("alias expansion \(width)^\(levels + 1)", bomb.joined(separator: "\n") + "\n" + text + "\n" + use + "\n")
        case 12:
            let spaces = int(1...4)
            if int(0...1) == 0 {
                lines[lineIndex] = String(repeating: " ", count: spaces) + lines[lineIndex]
            } else {
                let leading = lines[lineIndex].prefix { $0 == " " }.count
                lines[lineIndex] = String(lines[lineIndex].dropFirst(min(spaces, leading)))
            }
            return ("indent line \(lineIndex + 1)", lines.joined(separator: "\n"))
        case 13:
            let cut = int(0...text.unicodeScalars.count)
            return ("truncate at \(cut)", String(String.UnicodeScalarView(text.unicodeScalars.prefix(cut))))
        case 14:
            // A number somewhere made huge, zero or negative.
            guard let range = text.firstRange(of: /[0-9]+/, startingAt: int(0...text.unicodeScalars.count)) else { return mutate(text) }
            let replacement = pick(["99999999999999999999", "106751991167", "999999999999", "0", "-1", "00000000000001", "4294967297", "18446744073709551616"])
            var changed = text
            changed.replaceSubrange(range, with: replacement)
            return ("number \(replacement)", changed)
        case 15:
            // Quotes, and apostrophes in plain scalars, before an alias on the same line: a
            // scan of the text once took `it's` for an opening quote and missed the alias.
            let withValues = lines.indices.filter { lines[$0].contains(": ") }
            guard let target = withValues.isEmpty ? nil : pick(withValues),
                  let colon = lines[target].range(of: ": ") else { return mutate(text) }
            let value = pick([
                "it's *a", "[it's, *a]", "['it''s', *a]", "[\"it's\", *a]", "{k: it's, v: *a}", "&a it's", "[&a it's, *a]",
                "'*a' it's", "\"*a\"", "it's # *a", "[it's, 'x', \"y\", *a, *a]", "{? *a : it's}", "[it''s, *a]",
            ])
            lines[target] = String(lines[target][..<colon.upperBound]) + value
            if int(0...1) == 0 { lines.insert("? [it's, *a]\n: 1", at: int(0...lines.count)) }
            return ("quotes and alias \(value.debugDescription) on line \(target + 1)", lines.joined(separator: "\n"))
        default:
            let scalar = Unicode.Scalar(UInt32(pick([int(0...0x7f), int(0x80...0x2fff), int(0xe000...0xfffd), int(0x10000...0x10ffff)]))) ?? "?"
            return ("insert U+\(String(scalar.value, radix: 16))", insert(String(scalar), into: text))
        }
    }

    mutating func insert(_ token: String, into text: String) -> String {
        var scalars = Array(text.unicodeScalars)
        scalars.insert(contentsOf: token.unicodeScalars, at: int(0...scalars.count))
        return String(String.UnicodeScalarView(scalars))
    }
}

extension String {
    /// The first match of `regex` at or after the `offset`-th unicode scalar.
    func firstRange(of regex: some RegexComponent, startingAt offset: Int) -> Range<String.Index>? {
        let start = unicodeScalars.index(unicodeScalars.startIndex, offsetBy: min(offset, unicodeScalars.count))
        return self[start...].firstRange(of: regex)
    }
}
