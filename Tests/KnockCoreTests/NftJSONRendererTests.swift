import Foundation
@testable import KnockCore
@testable import KnockTestSupport
import Testing

/// The JSON spelling of the ruleset: well-formed, deterministic, the same transaction as the
/// nft script, and, loaded by libnftables, the same table in the kernel.
struct NftJSONRendererTests {
    static let plain = """
        table: knockc
        defaults:
          step_timeout: 5s
          open_for: 30s
        sequences:
          ssh:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22]
            step_timeout: 3s
            open_for: 1h
        """

    /// A guarded UDP port (the guard chains use conntrack) and a second sequence.
    static let udpGuarded = """
        sequences:
          dns:
            knock: [udp/7100, tcp/7200, udp/7300, tcp/7200]
            open: [udp/53, tcp/53]
            open_for: 10m
          web:
            knock: [tcp/7400, tcp/7500, udp/7100]
            open: [tcp/443]
            step_timeout: 2s
        """

    static func ruleset(_ yaml: String) throws -> RulesetIR {
        let (spec, diagnostics) = Pipeline.check(yaml, file: "spec.yaml")
        return RulesetLowering.lower(try #require(spec, "\(diagnostics)"))
    }

    /// The commands of the rendered JSON, each as (verb, object kind, object).
    static func commands(_ json: String) throws -> [(verb: String, kind: String, object: [String: Any])] {
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Array(root.keys) == ["nftables"])
        let list = try #require(root["nftables"] as? [[String: Any]])
        return try list.map { command in
            #expect(command.count == 1)
            let (verb, body) = try #require(command.first)
            let element = try #require(body as? [String: Any])
            #expect(element.count == 1)
            let (kind, object) = try #require(element.first)
            return (verb, kind, try #require(object as? [String: Any]))
        }
    }

    @Test("the output is one JSON object holding one command per line", arguments: [plain, udpGuarded])
    func parsesAsJSON(_ yaml: String) throws {
        let json = try Pipeline.nftJSON(for: try Self.ruleset(yaml))
        let lines = json.split(separator: "\n")
        #expect(lines.first == "{\"nftables\": [")
        #expect(lines.last == "]}")
        #expect(lines.count - 2 == (try Self.commands(json)).count)
    }

    /// Rendering the same value twice in one process cannot catch an order that changes from
    /// run to run (Swift seeds its hashing per process), so the bytes are compared with what
    /// an earlier run committed: `Golden/01-single-sequence/golden.json`, rewritten like the
    /// nft goldens by `KNOCKC_RECORD_GOLDEN=1`.
    @Test("rendering gives the committed bytes, and ignores the order of sequences in the spec")
    func deterministic() throws {
        let folder = GoldenTests.folder.appendingPathComponent("01-single-sequence")
        let yaml = try String(contentsOf: folder.appendingPathComponent("spec.yaml"), encoding: .utf8)
        let json = try Pipeline.nftJSON(for: try Self.ruleset(yaml))
        let goldenURL = folder.appendingPathComponent("golden.json")
        if ProcessInfo.processInfo.environment["KNOCKC_RECORD_GOLDEN"] == "1" {
            try json.write(to: goldenURL, atomically: true, encoding: .utf8)
            Issue.record("recorded 01-single-sequence/golden.json; read the diff, then run the tests without KNOCKC_RECORD_GOLDEN")
        } else {
            let same = json == (try String(contentsOf: goldenURL, encoding: .utf8))  // not inside #expect, which would print both
            #expect(same, "the JSON of 01-single-sequence differs from golden.json")
        }

        let ruleset = try Self.ruleset(Self.udpGuarded)
        let reordered = """
            sequences:
              web:
                knock: [tcp/7400, tcp/7500, udp/7100]
                open: [tcp/443]
                step_timeout: 2s
              dns:
                knock: [udp/7100, tcp/7200, udp/7300, tcp/7200]
                open: [udp/53, tcp/53]
                open_for: 10m
            """
        #expect(try Pipeline.nftJSON(for: try Self.ruleset(reordered)) == Pipeline.nftJSON(for: ruleset))
    }

    @Test("the same transaction as the nft script: replace the table, then define everything in it")
    func topLevelCommands() throws {
        let ruleset = try Self.ruleset(Self.udpGuarded)
        let table = ruleset.table
        let commands = try Self.commands(try Pipeline.nftJSON(for: ruleset))

        #expect(commands.prefix(3).map { "\($0.verb) \($0.kind)" } == ["add table", "delete table", "add table"])
        for command in commands.prefix(3) {
            #expect(command.object["family"] as? String == "inet")
            #expect(command.object["name"] as? String == table.name)
        }
        let rest = commands.dropFirst(3)
        #expect(rest.allSatisfy { $0.verb == "add" && $0.object["table"] as? String == table.name })
        // Counters before the rules that name them, chains before the map whose elements jump
        // to them; rules last.
        let rules = table.chains.flatMap { chain in chain.rules.map { (chain.name, $0) } }
        #expect(!table.counters.isEmpty)
        #expect(rest.map(\.kind) == Array(repeating: "counter", count: table.counters.count)
            + Array(repeating: "chain", count: table.chains.count)
            + Array(repeating: "set", count: table.sets.count) + ["map"]
            + Array(repeating: "rule", count: rules.count))

        let chains = rest.filter { $0.kind == "chain" }
        #expect(chains.map { $0.object["name"] as? String } == table.chains.map(\.name))
        let input = try #require(chains.first?.object)
        #expect(input["type"] as? String == "filter")
        #expect(input["hook"] as? String == "input")
        #expect(input["prio"] as? Int == -10)
        #expect(input["policy"] as? String == "accept")
        #expect(chains.dropFirst().allSatisfy { $0.object["hook"] == nil && $0.object["type"] == nil })

        let sets = rest.filter { $0.kind == "set" }
        #expect(sets.map { $0.object["name"] as? String } == table.sets.map(\.name))
        for (set, ir) in zip(sets.map(\.object), table.sets) {
            #expect((set["type"] as? [String] ?? (set["type"] as? String).map { [$0] }) == ir.key.map(\.rawValue))
            #expect(set["comment"] as? String == ir.comment)
            switch ir.contents {
            case .dynamic(let size), .filledAtApply(let size):
                #expect(set["size"] as? Int == size)
                #expect(set["flags"] as? [String] == ["timeout"])
            case .constant(let elements):
                #expect(set["flags"] == nil)
                #expect((set["elem"] as? [Any])?.count == elements.count)
            case .intervals(let elements):
                #expect(set["flags"] as? [String] == ["interval"])
                #expect((set["elem"] as? [Any])?.count == elements.count)
            case .plain(let elements):
                #expect(set["flags"] == nil)
                #expect((set["elem"] as? [Any])?.count == elements.count)
            }
        }

        let map = try #require(rest.first { $0.kind == "map" }?.object)
        #expect(map["name"] as? String == "dispatch")
        #expect(map["type"] as? [String] == ["nf_proto", "inet_proto", "inet_service"])
        #expect(map["map"] as? String == "verdict")
        #expect((map["elem"] as? [Any])?.count == table.maps[0].elements.count)

        let ruleCommands = rest.filter { $0.kind == "rule" }
        #expect(ruleCommands.map { $0.object["chain"] as? String } == rules.map { $0.0 })
        #expect(ruleCommands.map { $0.object["comment"] as? String } == rules.map { $0.1.comment })
        #expect(zip(ruleCommands, rules).allSatisfy { ($0.object["expr"] as? [Any])?.count == $1.1.statements.count })
    }

    @Test("expressions have the shapes libnftables reads")
    func shapes() throws {
        let json = try Pipeline.nftJSON(for: try Self.ruleset(Self.udpGuarded))
        let saddr = #"{"payload": {"protocol": "ip", "field": "saddr"}}"#
        let saddr6 = #"{"payload": {"protocol": "ip6", "field": "saddr"}}"#
        let machines = KnockMachine.all(in: try #require(Pipeline.check(Self.udpGuarded, file: "spec.yaml").0))
        let second = IPFamily.ipv4.address(machines[1].tags.tag(1))
        let first = IPFamily.ipv6.address(machines[0].tags.tag(3))
        for fragment in [
            // The stage tag, and a set statement whose timeout is whole seconds (2s).
            #"{"set": {"op": "add", "elem": {"elem": {"val": {"concat": [\#(saddr), {"|": [{"&": [\#(saddr), "0.0.0.0"]}, "\#(second)"]}]}, "timeout": 2}}, "set": "@started4"}}"#,
            #"{"set": {"op": "delete", "elem": {"concat": [\#(saddr6), {"|": [{"&": [\#(saddr6), "::"]}, "\#(first)"]}]}, "set": "@progress6"}}"#,
            #"{"set": {"op": "update", "elem": {"elem": {"val": {"concat": [\#(saddr), "udp", 53]}, "timeout": 600}}, "set": "@granted4"}}"#,
            #"{"match": {"op": "!=", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "ack"]]}, "right": "syn"}}"#,
            #"{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}"#,
            #"{"vmap": {"key": {"concat": [{"meta": {"key": "nfproto"}}, {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}, "data": "@dispatch"}}"#,
            #"[{"concat": ["ipv6", "udp", 53]}, {"jump": {"target": "guard6"}}]"#,
            #"{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}"#,
            #"{"reject": {"type": "tcp reset"}}"#,
            #"{"reject": {"type": "icmpv6", "expr": "port-unreachable"}}"#,
        ] {
            #expect(json.contains(fragment), "missing: \(fragment)")
        }
    }

    @Test("strings are escaped as JSON", arguments: [
        "plain", "quote \" backslash \\ slash /", "tab\tnewline\nreturn\r", "\u{1}\u{1f}\u{7f}",
        "é ü 日本 🦊", "\u{2028}\u{2029}", "",
    ])
    func escaping(_ text: String) throws {
        let quoted = JSON.quoted(text)
        #expect(!quoted.dropFirst().dropLast().contains { $0.isNewline || $0.asciiValue.map { $0 < 0x20 } == true })
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
        #expect(decoded == [text])
    }

    /// libnftables 1.0.6 reads an element timeout as whole seconds and silently drops anything
    /// else, which would leave elements that never expire; the renderer refuses instead.
    @Test("a timeout that is not whole seconds is refused, not rounded")
    func subSecondTimeout() throws {
        let yaml = "sequences:\n  a: {knock: [tcp/1, udp/3, tcp/2], open: [tcp/22], step_timeout: 1500ms}"
        let spec = try #require(Pipeline.check(yaml, file: "spec.yaml").0)
        #expect(throws: NftJSONRenderer.Unrepresentable.subSecondTimeout(.init(milliseconds: 1500))) {
            try Pipeline.nftJSON(for: RulesetLowering.lower(spec))
        }
    }

    // MARK: - In the kernel

    /// Loads the nft script and the JSON into two fresh network namespaces and compares what
    /// the kernel holds: `nft list table`, and the rules' bytecode (`--debug=netlink`).
    ///
    /// libnftables 1.0.6 drops set and map comments from JSON input, so those lines are left out
    /// of both sides; nothing else is.
    @Test("the JSON and the nft script load to the same table", arguments: [("plain", plain), ("udp-guarded", udpGuarded)])
    func sameTableInTheKernel(_ name: String, _ yaml: String) throws {
        guard getuid() == 0 else {
            // Under CI=true a skip is a failure: CI must run the kernel half.
            Issue.record("skipped: creating network namespaces needs root", severity: TestEnvironment.skipsMustFail ? .error : .warning)
            return
        }
        let ruleset = try Self.ruleset(yaml)
        let table = ruleset.table.name
        let prefix = "jsontest-\(ProcessInfo.processInfo.processIdentifier)-\(name)"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(prefix)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var namespaces: [String] = []
        defer {
            for namespace in namespaces { _ = try? runProgram(["ip", "netns", "del", namespace]) }
            try? FileManager.default.removeItem(at: directory)
        }

        var listings: [String] = []
        var bytecode: [String] = []
        for (format, contents) in [("nft", Pipeline.nftScript(for: ruleset)), ("json", try Pipeline.nftJSON(for: ruleset))] {
            let namespace = "\(prefix)-\(format)"
            try runProgram(["ip", "netns", "add", namespace])
            namespaces.append(namespace)
            let file = directory.appendingPathComponent("ruleset.\(format)")
            try contents.write(to: file, atomically: true, encoding: .utf8)
            let inside = ["ip", "netns", "exec", namespace, "nft"]
            try runProgram(inside + (format == "json" ? ["-j"] : []) + ["-f", file.path])
            listings.append(Self.withoutObjectComments(try runProgram(inside + ["list", "table", "inet", table]).output))
            bytecode.append(Self.withoutObjectComments(try runProgram(inside + ["--debug=netlink", "list", "table", "inet", table]).output))
        }
        #expect(listings[0].contains("ct state established,related") == (name == "udp-guarded"))
        #expect(listings[0].contains("chain knock6_"))
        #expect(listings[0] == listings[1], "\(name): the listings differ")
        #expect(bytecode[0] == bytecode[1], "\(name): the bytecode differs")
    }

    /// Drops the `comment "..."` lines of sets and maps (a rule's comment ends its line), and
    /// sorts the map's element lines of a `--debug=netlink` dump, which come in hash order.
    static func withoutObjectComments(_ listing: String) -> String {
        let lines = listing.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("\t\tcomment \"") }
        let elements = lines.filter { $0.hasPrefix("\telement ") }.sorted()
        return (lines.filter { !$0.hasPrefix("\telement ") } + elements).joined(separator: "\n")
    }
}
