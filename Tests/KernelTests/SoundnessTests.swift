import Foundation
import Glibc
import KnockCore
import KnockKernel
@testable import KnockTestSupport
import Testing

/// Soundness: every spec that `check` accepts compiles to a ruleset the kernel accepts. Each
/// spec goes into a network namespace of its own, made for it and deleted after, through
/// libnftables as `knockc apply` does: the nft script, then the spec again with state carried
/// over, then the JSON (when its timeouts are whole seconds). Bounded so CI can afford it.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct SoundnessTests {
    /// How many accepted specs go to the kernel, not counting those of a known unsound class
    /// (`KnownUnsound`), which go too.
    static let generatedCount = 40
    static let seed: UInt64 = 0x736f_756e_6400

    @Test("every generated spec that check accepts loads into the kernel", .timeLimit(.minutes(2)))
    func generatedSpecsLoad() throws {
        var random = SplitMix(seed: Self.seed)
        var specs: [(label: String, text: String, spec: KnockSpec)] = []
        var clean = 0
        var attempts = 0
        while clean < Self.generatedCount && attempts < Self.generatedCount * 5 {
            attempts += 1
            var generator = SpecGenerator(SplitMix(seed: random.next()))
            generator.maxKnocks = SpecValidator.maxKnocks
            let model = generator.validSpec(density: attempts.isMultiple(of: 3) ? 0.5 : 0.9)
            let tree = model.tree(using: &generator.random)
            var writer = YAMLWriter(SplitMix(seed: random.next()))
            let text = writer.document(tree)
            let (spec, diagnostics) = Pipeline.check(text, file: "generated.yaml")
            guard let spec else {
                Issue.record("generated spec \(attempts) was refused, fix the generator: \(diagnostics)\n\(text)")
                continue
            }
            if KnownUnsound.reason(spec) == nil { clean += 1 }
            specs.append(("generated spec \(attempts) (seed \(Self.seed))", text, spec))
        }
        #expect(clean == Self.generatedCount)

        let coverage = Coverage(specs.filter { KnownUnsound.reason($0.spec) == nil }.map(\.spec))
        #expect(coverage.missing.isEmpty, "no generated spec has \(coverage.missing); change the seed or the generator")

        var jsonLoaded = 0
        for (label, text, spec) in specs {
            let failures = try Self.load(spec, label: label, text: text)
            if let known = KnownUnsound.reason(spec) {
                // Not every spec of a known class fails (IPv4-only sequences hold a few more
                // knocks), so these are intermittent; the tests below pin each class down.
                withKnownIssue("\(known)", isIntermittent: true) { Self.record(failures, label, text) }
            } else {
                Self.record(failures, label, text)
                if (try? Pipeline.nftJSON(for: RulesetLowering.lower(spec))) != nil { jsonLoaded += 1 }
            }
        }
        #expect(jsonLoaded > 0, "no generated spec went through the JSON path")
        if ProcessInfo.processInfo.environment["KNOCKC_FUZZ_VERBOSE"] != nil {
            print("soundness: \(specs.count) specs loaded (\(clean) clean, \(specs.count - clean) of a known unsound class), \(jsonLoaded) as JSON too")
        }
    }

    @Test("specs at the limits load into the kernel", arguments: EdgeSpecs.all)
    func edgeSpecsLoad(_ edge: EdgeSpecs.Case) throws {
        let (parsed, diagnostics) = Pipeline.check(edge.yaml, file: "\(edge.name).yaml")
        let spec = try #require(parsed, "\(edge.name): \(diagnostics)")
        let failures = try Self.load(spec, label: edge.name, text: edge.yaml)
        if let known = KnownUnsound.reason(spec) {
            withKnownIssue("\(known)") { Self.record(failures, edge.name, edge.yaml) }
        } else {
            Self.record(failures, edge.name, edge.yaml)
        }
    }

    // MARK: Unsound cases found, pinned down

    /// Every stage-0 rule of a sequence tests that the source is at none of the other stages:
    /// one set lookup per knock, and the rule outgrows what the kernel takes (4 KB of
    /// expression data: EFBIG, "File too large") at 26 knocks with `from`, 27 without, in the
    /// IPv6 chains; at 32, IPv4 fails too (EINVAL). `check` allows 32.
    @Test("a sequence of as many knocks as check allows loads", arguments: [SpecValidator.maxKnocks])
    func longSequenceLoads(_ count: Int) throws {
        let knocks = (0..<count).map { "\($0.isMultiple(of: 2) ? "udp" : "tcp")/\(2000 + $0)" }
        let yaml = "sequences:\n  long:\n    knock: [\(knocks.joined(separator: ", "))]\n    open: [tcp/22]\n"
        let (parsed, diagnostics) = Pipeline.check(yaml, file: "long.yaml")
        // maxKnocks is what check allows, so check must accept it: a refusal here would be a
        // limit that lies, and would leave the kernel untested.
        let spec = try #require(parsed, "check refused \(count) knocks, its own limit: \(diagnostics)")
        let failures = try Self.load(spec, label: "\(count) knocks", text: yaml)
        Self.record(failures, "\(count) knocks", yaml)
    }

    /// A duration that is not whole seconds is written in milliseconds, and nft 1.0.6 refuses
    /// a time of 9 digits or more in ms ("value too large"): 100000001ms (27.8 hours) and up.
    @Test("a long timeout that is not whole seconds loads", arguments: ["100000001ms", "2073599999ms"])
    func longMillisecondTimeoutLoads(_ duration: String) throws {
        let yaml = "sequences:\n  ssh:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/22]\n    step_timeout: \(duration)\n"
        let (parsed, diagnostics) = Pipeline.check(yaml, file: "timeout.yaml")
        // Both are under check's 24d, so check must accept them, and the kernel load them.
        let spec = try #require(parsed, "check refused step_timeout \(duration): \(diagnostics)")
        let failures = try Self.load(spec, label: duration, text: yaml)
        Self.record(failures, duration, yaml)
    }

    /// `check --kernel` loads the table in `unshare -rn`; there, a transaction of some 50 KB
    /// fails with EMSGSIZE ("Message too long"), which root in a network namespace (what
    /// `apply` does) loads fine. So `check --kernel` refuses a 13-knock spec that `apply` takes.
    @Test("check --kernel accepts what apply loads")
    func checkKernelAgreesWithApply() throws {
        let knockc = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("knockc").path
        guard FileManager.default.isExecutableFile(atPath: knockc) else {
            // Under CI=true a skip is a failure: CI must check what apply loads.
            Issue.record("skipped: no knockc executable at \(knockc)", severity: TestEnvironment.skipsMustFail ? .error : .warning)
            return
        }
        // Large enough to overflow an unprivileged netlink socket: 300 sequences.
        let yaml = "sequences:\n" + (0..<300).map { index in
            "  s\(index): {knock: [tcp/\(10_000 + index * 3 + 1), udp/\(10_000 + index * 3 + 2), tcp/\(10_000 + index * 3)], open: [tcp/22]}\n"
        }.joined()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("soundness-\(getpid()).yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }

        let spec = try #require(Pipeline.check(yaml, file: "a.yaml").0)
        #expect(try Self.load(spec, label: "300 sequences", text: yaml).isEmpty, "apply as root loads it")
        let checked = try runProgram([knockc, "check", "--kernel", file.path], allowFailure: true)
        // As root, check --kernel uses a network namespace without a user namespace.
        #expect(checked.status == 0, "\(checked.error)")
    }

    /// nft keywords are valid table names to `check` (a letter, then letters, digits, '-' and
    /// '_'), but nft's parser reads them as keywords: `table inet tcp {}` is a syntax error.
    @Test("a table named like an nft keyword is refused by check, or loads")
    func keywordTableNames() throws {
        var unsound: [String] = []
        try Self.withNamespace { namespace in
            for keyword in EdgeSpecs.nftKeywords {
                let yaml = "table: \(keyword)\nsequences:\n  ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22]}\n"
                let (spec, _) = Pipeline.check(yaml, file: "keyword.yaml")
                guard let spec else { continue }
                let script = Pipeline.nftScript(for: spec)
                let refusal = try namespace.perform { () -> String? in
                    do {
                        try RulesetApplier().check(script)
                        return nil
                    } catch {
                        return "\(error)".split(separator: "\n").first.map(String.init)
                    }
                }
                if let refusal { unsound.append("\(keyword): \(refusal)") }
            }
        }
        #expect(unsound.isEmpty, "accepted by check, refused by the kernel:\n\(unsound.joined(separator: "\n"))")
    }

    // MARK: Loading

    private static let counter = Counter()

    /// A network namespace made for `body` and deleted after it, whatever happens.
    static func withNamespace<T>(_ body: (NetworkNamespace) throws -> T) throws -> T {
        let namespace = NetworkNamespace(name: "kcsound\(getpid())x\(counter.next())")
        try runProgram(["ip", "netns", "add", namespace.name])
        defer { _ = try? runProgram(["ip", "netns", "del", namespace.name], allowFailure: true) }
        return try body(namespace)
    }

    /// Loads `spec` into a fresh namespace three ways; returns each refusal.
    static func load(_ spec: KnockSpec, label: String, text: String) throws -> [String] {
        let ruleset = RulesetLowering.lower(spec)
        let script = Pipeline.nftScript(for: ruleset)
        // The JSON cannot spell a timeout that is not whole seconds, and refuses the table; that
        // skips the JSON load only when the spec has such a timeout.
        var rendered: String?
        var renderFailure: String?
        do {
            rendered = try Pipeline.nftJSON(for: ruleset)
        } catch {
            let durations = [spec.decoyBanFor] + spec.sequences.flatMap { [$0.stepTimeout, $0.openFor, $0.banFor] }
            if case .subSecondTimeout(let timeout) = error, timeout.milliseconds % 1000 == 0 || !durations.contains(timeout) {
                renderFailure = "the JSON renderer refused \(timeout), no sub-second duration of the spec: \(error)"
            }
        }
        let json = rendered
        var failures = try withNamespace { namespace in
            try namespace.perform { () -> [String] in
                var failures: [String] = []
                let applier = try RulesetApplier()
                do {
                    try applier.apply(script)
                } catch {
                    return ["the kernel refused the nft script: \(error)"]
                }
                do {
                    try applier.apply(spec)
                } catch {
                    failures.append("re-applying with state carried over failed: \(error)")
                }
                if let json {
                    do {
                        try NftContext(output: .json).run(json)
                    } catch {
                        failures.append("the kernel refused the JSON: \(error)")
                    }
                }
                do {
                    if try applier.listTable(spec.tableName) == nil {
                        failures.append("table inet \(spec.tableName) is not there after loading")
                    }
                } catch {
                    failures.append("table inet \(spec.tableName) could not be listed after loading: \(error)")
                }
                return failures
            }
        }
        if let renderFailure { failures.append(renderFailure) }
        // KNOCKC_SOUNDNESS_DUMP=DIR keeps each refused spec and its script there, to replay
        // with `knockc check --kernel` or `nft -c -f`.
        if !failures.isEmpty, let directory = ProcessInfo.processInfo.environment["KNOCKC_SOUNDNESS_DUMP"] {
            let base = URL(fileURLWithPath: directory).appendingPathComponent(label.filter { $0.isLetter || $0.isNumber })
            try? text.write(to: base.appendingPathExtension("yaml"), atomically: true, encoding: .utf8)
            try? script.write(to: base.appendingPathExtension("nft"), atomically: true, encoding: .utf8)
        }
        return failures
    }

    static func record(_ failures: [String], _ label: String, _ text: String) {
        for failure in failures {
            Issue.record("\(label): \(failure)\nspec:\n\(text)")
        }
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func next() -> Int { lock.withLock { value += 1; return value } }
    }
}

/// Specs that `check` accepts and the kernel refuses, found by these tests and not fixed yet.
/// Remove a class when its test above fails with "known issue was not recorded".
enum KnownUnsound {
    static let longSequence = "a stage-0 rule of a long sequence is too large for the kernel"
    static let longMilliseconds = "nft refuses a timeout of 9 or more digits in ms"

    /// None left: the long-sequence and long-millisecond classes were fixed (at most 12
    /// knocks; long durations written in compound units).
    static func reason(_ spec: KnockSpec) -> String? { nil }
}

/// Which features a set of specs exercises, so that a change of seed or generator cannot
/// quietly stop the kernel from seeing one.
struct Coverage {
    var seen: Set<String> = []

    static let features = [
        "custom table", "IPv4 prefix", "IPv6 prefix", "/0 prefix", "single address",
        "top-level allow", "top-level deny", "sequence allow", "sequence deny", "from",
        "sub-second timeout", "whole-second timeout", "24d", "long sub-second-precision timeout", "wrong_knocks", "ban_for",
        "decoy port", "decoy range", "close", "strict", "echo knock", "udp knock", "tcp knock",
        "udp open", "6 knocks or more", "several sequences", "custom max_tracked_sources", "repeated knock",
    ]

    init(_ specs: [KnockSpec]) {
        for spec in specs {
            if spec.tableName != KnockSpec.defaultTableName { seen.insert("custom table") }
            if spec.sequences.count > 1 { seen.insert("several sequences") }
            if spec.maxTrackedSources != KnockSpec.defaultMaxTrackedSources { seen.insert("custom max_tracked_sources") }
            if !spec.access.allow.isEmpty { seen.insert("top-level allow") }
            if !spec.access.deny.isEmpty { seen.insert("top-level deny") }
            for decoy in spec.decoys { seen.insert(decoy.first == decoy.last ? "decoy port" : "decoy range") }
            var prefixes = spec.access.allow + spec.access.deny
            var durations = [spec.decoyBanFor]
            for sequence in spec.sequences {
                prefixes += sequence.access.allow + sequence.access.deny + (sequence.from ?? [])
                if !sequence.access.allow.isEmpty { seen.insert("sequence allow") }
                if !sequence.access.deny.isEmpty { seen.insert("sequence deny") }
                if sequence.from != nil { seen.insert("from") }
                if sequence.wrongKnocks != nil { seen.insert("wrong_knocks") }
                if sequence.banFor != KnockSpec.defaultBanFor { seen.insert("ban_for") }
                if sequence.close != nil { seen.insert("close") }
                if sequence.strict { seen.insert("strict") }
                if sequence.knocks.count >= 6 { seen.insert("6 knocks or more") }
                if Set(sequence.knocks).count < sequence.knocks.count { seen.insert("repeated knock") }
                if sequence.open.contains(where: { $0.proto == .udp }) { seen.insert("udp open") }
                for knock in sequence.knocks + (sequence.close ?? []) {
                    switch knock {
                    case .port(let port): seen.insert(port.proto == .tcp ? "tcp knock" : "udp knock")
                    case .icmpEcho: seen.insert("echo knock")
                    }
                }
                durations += [sequence.stepTimeout, sequence.openFor, sequence.banFor]
            }
            for duration in durations {
                seen.insert(duration.milliseconds % 1000 == 0 ? "whole-second timeout" : "sub-second timeout")
                if duration.milliseconds % 1000 != 0 && duration.milliseconds >= 60_000 { seen.insert("long sub-second-precision timeout") }
                if duration == .maximum { seen.insert("24d") }
            }
            for prefix in prefixes {
                seen.insert(prefix.family == .ipv4 ? "IPv4 prefix" : "IPv6 prefix")
                if prefix.prefixLength == 0 { seen.insert("/0 prefix") }
                if prefix.isSingleAddress { seen.insert("single address") }
            }
        }
    }

    var missing: [String] { Self.features.filter { !seen.contains($0) } }
}

/// Specs at the limits of what `check` accepts.
enum EdgeSpecs {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var yaml: String
        var description: String { name }
    }

    static let all: [Case] = [
        Case(name: "longest names", yaml: SharedSpecs.longestNames),
        Case(name: "largest values", yaml: largest),
        Case(name: "smallest values", yaml: smallest),
        Case(name: "many sequences", yaml: manySequences),
    ]

    /// The largest values, with as many knocks as check allows.
    static let largest = """
        table: a2345678901234567890123456789012
        max_tracked_sources: 16777216
        defaults: { step_timeout: 24d, open_for: 2073600000ms }
        limits: { wrong_knocks: 100000/second, ban_for: 576h }
        decoys: [udp/10000-65535, tcp/65535]
        allow: ["::/1", 10.255.255.255]
        deny: [128.0.0.0/1, "8000::/1"]
        sequences:
          \(String(repeating: "z", count: 32)):
            knock: [\((0..<SpecValidator.maxKnocks).map { $0.isMultiple(of: 2) ? "tcp/65534" : "udp/\(1000 + $0)" }.joined(separator: ", "))]
            open: [tcp/1, udp/1, tcp/9999, udp/9999]
            close: [\((0..<SpecValidator.maxKnocks).map { $0.isMultiple(of: 2) ? "icmp/1232" : "icmp/\($0)" }.joined(separator: ", "))]
            strict: true
            limits: { wrong_knocks: 100000/day, ban_for: 24d }
            from: ["::/0", 0.0.0.0/0]
            allow: [ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff, 255.255.255.255]
            deny: [0.0.0.0, "::"]
        """

    static let smallest = """
        max_tracked_sources: 1
        defaults: { step_timeout: 1ms, open_for: 1ms }
        limits: { wrong_knocks: 1/day, ban_for: 1ms }
        decoys: [tcp/2]
        sequences:
          a:
            knock: [udp/1]
            open: [tcp/1]
          b:
            knock: [icmp/1]
            open: [tcp/3]
            close: [icmp/2]
            limits: { wrong_knocks: 1/second, ban_for: 1ms }
            strict: false
        """

    static let manySequences: String = {
        var lines = ["sequences:"]
        for index in 0..<40 {
            lines.append("  s\(index):")
            lines.append("    knock: [tcp/\(2000 + index), udp/\(3000 + index), tcp/\(2000 + (index + 1) % 40), icmp/\(100 + index)]")
            lines.append("    open: [tcp/\(100 + index % 7)]")
            if index.isMultiple(of: 3) { lines.append("    strict: true") }
            if index.isMultiple(of: 4) { lines.append("    close: [udp/\(3000 + index), tcp/\(2000 + index)]") }
            if index.isMultiple(of: 5) { lines.append("    limits: { wrong_knocks: \(index + 1)/minute }") }
            if index.isMultiple(of: 6) { lines.append("    from: [10.\(index).0.0/16, \"fd00:\(index)::/32\"]") }
        }
        return lines.joined(separator: "\n") + "\n"
    }()

    /// Words of nft's grammar that are valid table names to `check`.
    static let nftKeywords = [
        "table", "chain", "set", "map", "inet", "ip", "ip6", "arp", "bridge", "netdev", "add", "delete", "flush",
        "accept", "drop", "reject", "return", "jump", "goto", "continue", "queue", "counter", "log", "limit",
        "rate", "update", "meta", "ct", "th", "tcp", "udp", "icmp", "icmpv6", "flags", "type", "hook", "priority",
        "policy", "dynamic", "timeout", "comment", "elements", "size", "interval", "constant", "define",
        "include", "handle", "position", "index", "mark", "saddr", "daddr", "dport", "sport", "length",
        "protocol", "iif", "oif", "l4proto", "nfproto", "filter", "nat", "ether", "vlan", "sctp", "esp", "ah",
        "dnat", "snat", "masquerade", "redirect", "fib", "socket", "notrack", "dup", "fwd", "numgen", "quota",
        "packets", "bytes", "over", "burst", "state", "established", "new", "with", "to", "at", "knockc",
        "eq", "ne", "lt", "gt", "le", "ge", "xor", "lshift", "rshift", "import", "export", "auto-merge",
    ]
}
