import Foundation
@testable import KnockCore
import Testing

/// `rotate:` in the spec: what check accepts, what it refuses, and where it says so; and the
/// shape of what it compiles to.
struct RotatingKnockSpecTests {
    typealias SecretFixture = AuthorizedPacketSpecTests.SecretFixture

    func check(_ yaml: String) -> (KnockSpec?, [String]) {
        let (spec, diagnostics) = Pipeline.check(yaml, file: "spec.yaml")
        return (spec, diagnostics.flatMap { [$0] + $0.notes }.map { "\($0.location.line):\($0.location.column): \($0.severity.rawValue): \($0.message.text)" })
    }

    func spec(_ rotate: String, secret: String, more: String = "") -> String {
        "sequences:\n  ssh:\n    open: [tcp/22]\n    rotate: { secret: \(secret), \(rotate) }\n\(more)"
    }

    static let valid = "knocks: [tcp, udp, tcp], ports: 20000-40000"

    @Test("a valid rotate sequence gets its defaults, no fixed knocks, and its stage count")
    func accepted() throws {
        let secret = try SecretFixture()
        let (spec, found) = check(self.spec(Self.valid, secret: secret.path))
        #expect(found.isEmpty, "\(found)")
        let sequence = try #require(spec?.sequences.first)
        #expect(sequence.rotate == RotatingKnocks(secret: secret.path, protocols: [.tcp, .udp, .tcp], ports: 20000...40000))
        #expect(sequence.knocks.isEmpty)
        #expect(sequence.knockCount == 3)
        #expect(sequence.rotate?.windowsHeld == 2880 + 3)
        #expect(sequence.rotate?.windowsPerEpoch == 6667)
        #expect(spec?.refreshInterval == .seconds(43_200), "the refresh timer re-applies at half the horizon")
    }

    @Test("bad rotate values are refused where they stand")
    func refusals() throws {
        let secret = try SecretFixture()
        // (the rotate mapping, the value the error points at, the start of the message)
        let cases: [(String, String, String)] = [
            ("knocks: [tcp, icmp], ports: 20000-40000", "icmp", "error: 'icmp' is not a rotating knock"),
            ("knocks: [tcp/7000], ports: 20000-40000", "tcp/7000", "error: 'tcp/7000' is not a rotating knock"),
            ("knocks: [tcp], ports: 20000", "20000", "error: '20000' is not a port range for 'ports'"),
            ("knocks: [tcp], ports: 40000-20000", "40000-20000", "error: '40000-20000' is not a port range"),
            ("knocks: [tcp], ports: 0-100", "0-100", "error: '0-100' is not a port range"),
            ("knocks: [tcp], ports: 1-70000", "1-70000", "error: '1-70000' is not a port range"),
            ("knocks: [tcp, udp, tcp], ports: 20000-21000", "20000-21000", "error: 'ports' 20000-21000 are too few: the table holds 2883 windows"),
            ("knocks: [tcp], ports: 20000-40000, every: 1500ms", "1500ms", "error: 'every' of 1500ms is not a window length"),
            ("knocks: [tcp], ports: 20000-40000, every: 2h", "2h", "error: 'every' of 2h is not a window length"),
            ("knocks: [tcp], ports: 20000-40000, horizon: 8d", "8d", "error: 'horizon' of 8d is out of range"),
            ("knocks: [tcp], ports: 20000-40000, skew: 11", "11", "error: '11' is not a value for 'skew'"),
            ("knocks: [tcp], ports: 20000-40000, slots: 2", "slots", "error: unknown key 'slots' in 'rotate' of sequence 'ssh'"),
            ("knocks: [], ports: 20000-40000", "[", "error: sequence 'ssh' has no knocks"),
            ("ports: 20000-40000", "{", "error: 'rotate' of sequence 'ssh' has no 'knocks'"),
            ("knocks: [tcp]", "{", "error: 'rotate' of sequence 'ssh' has no 'ports'"),
        ]
        for (rotate, value, message) in cases {
            let line = "    rotate: { secret: \(secret.path), \(rotate) }"
            let column = line.distance(from: line.startIndex, to: line.range(of: value, options: .backwards)!.lowerBound) + 1
            let (spec, found) = check(self.spec(rotate, secret: secret.path))
            #expect(spec == nil, "\(rotate)")
            #expect(found.contains { $0.hasPrefix("4:\(value == "{" ? 13 : column): \(message)") }, "\(rotate): \(found)")
        }
        let (shortHorizon, fits) = check(self.spec("knocks: [tcp, udp, tcp], ports: 20000-21000, horizon: 1h", secret: secret.path))
        #expect(shortHorizon != nil, "a shorter horizon fits the same range: \(fits)")
        #expect(fits == ["4:94: warning: rotating knocks over ports 20000-21000 fall to about 2^24 guessed packets (3 knocks, skew 1); "
            + "widen the range, add knocks or lower the skew"], "\(fits)")
        let (_, two) = check(self.spec("knocks: [tcp, udp], ports: 20000-40000", secret: secret.path))
        #expect(two.contains { $0.contains("warning: sequence 'ssh' has only 2 knocks") }, "\(two)")
        let (_, example) = check(self.spec(Self.valid, secret: secret.path))
        #expect(example.isEmpty, "the README's example, about 2^36 packets to guess, gets no warning: \(example)")
        let (_, short) = check(self.spec(Self.valid + ", every: 2s, horizon: 1m", secret: secret.path))
        #expect(short.contains { $0.contains("warning: 'every' of 2s is a short window") }, "\(short)")
        let (_, both) = check("sequences:\n  ssh:\n    knock: [tcp/1]\n    open: [tcp/22]\n    rotate: { secret: \(secret.path), \(Self.valid) }\n")
        #expect(both.contains { $0.contains("has both 'knock' and 'rotate'") }, "\(both)")
        let (_, spaToo) = check("sequences:\n  ssh:\n    spa: { secret: \(secret.path), port: udp/62201 }\n    open: [tcp/22]\n    rotate: { secret: \(secret.path), \(Self.valid) }\n")
        #expect(spaToo.contains { $0.contains("has both 'spa' and 'rotate'") }, "\(spaToo)")
        let (_, strict) = check(self.spec(Self.valid, secret: secret.path).replacingOccurrences(of: "    open: [tcp/22]\n", with: "    open: [tcp/22]\n    strict: true\n"))
        #expect(strict.contains { $0.contains("has 'strict' and 'rotate'") }, "\(strict)")
    }

    @Test("a range holding a guarded port, a fixed knock, an spa port or a decoy is refused, pointing at both")
    func rangeClashes() throws {
        let secret = try SecretFixture()
        let clashes: [(String, String)] = [
            ("  web:\n    knock: [tcp/7000, udp/8000, tcp/9000]\n    open: [tcp/30000]\n", "tcp/30000, which sequence 'web' opens"),
            ("  web:\n    knock: [tcp/7000, udp/25000, tcp/9000]\n    open: [tcp/80]\n", "udp/25000, a knock of sequence 'web'"),
            ("  admin:\n    spa: { secret: \(secret.path), port: udp/39999 }\n    open: [tcp/80]\n", "udp/39999, a knock of sequence 'admin'"),
        ]
        for (more, what) in clashes {
            let (spec, found) = check(self.spec(Self.valid, secret: secret.path, more: more))
            #expect(spec == nil)
            #expect(found.contains { $0.contains("error: 'ports' 20000-40000 include port") && $0.contains(what) }, "\(found)")
            #expect(found.contains { $0.contains("note: used here") }, "\(found)")
        }
        let (decoy, found) = check("decoys: [tcp/39990-40010]\n" + self.spec(Self.valid, secret: secret.path))
        #expect(decoy == nil)
        #expect(found.contains { $0.contains("include port 39990 (decoy tcp/39990-40010)") }, "\(found)")
        let (overlap, none) = check(self.spec(Self.valid, secret: secret.path,
                                              more: "  other:\n    open: [tcp/2222]\n    rotate: { secret: \(secret.path), knocks: [udp, tcp], ports: 30000-50000 }\n"))
        #expect(overlap != nil && !none.contains { $0.contains("error") }, "two rotating ranges may overlap: \(none)")
    }

    @Test("a missing or group-readable secret is refused")
    func secretFiles() throws {
        let missing = check(spec(Self.valid, secret: "/nonexistent/ssh.key")).1
        #expect(missing.contains { $0.contains("cannot read secret /nonexistent/ssh.key") }, "\(missing)")
        let open = try SecretFixture(mode: 0o644)
        #expect(check(spec(Self.valid, secret: open.path)).1.contains { $0.contains("mode 644") && $0.contains("chmod 600") })
    }

    @Test("the compiled table sends the range to the sequence's chain before the port bitmap, and holds the knock sets empty")
    func compiled() throws {
        let secret = try SecretFixture()
        let spec = try #require(check(self.spec(Self.valid, secret: secret.path, more: "  web:\n    knock: [tcp/7000, udp/8000, tcp/9001]\n    open: [tcp/80]\n")).0)
        let ruleset = RulesetLowering.lower(spec)
        let text = Pipeline.nftScript(for: spec)
        for set in ["rotate_even_ssh", "rotate_odd_ssh", "rotate_early_even_ssh", "rotate_early_odd_ssh"] {
            #expect(text.contains("set \(set) {\n\t\ttype inet_proto . inet_service . inet_service\n\t\tsize 8665\n\t\tflags timeout\n"), "\(set)")
        }
        #expect(text.contains("set rotate_used_ssh {\n\t\ttype inet_proto . inet_service . inet_service\n\t\tsize 4096\n"))
        #expect(text.contains("meta l4proto . th dport . th dport & 0 | 1 != @rotate_used_ssh add @rotate_used_ssh { meta l4proto . th dport . th dport & 0 | 1 timeout 90s }"),
                "knock 2 and later, of an odd epoch, are taken once")
        let input = try #require(ruleset.table.chains.first { $0.name == "input" })
        let rotating = try #require(input.rules.firstIndex { $0.comment == "rotating knock ranges" })
        let bitmapRule = try #require(input.rules.firstIndex { $0.comment == "not a knock port nor a guarded port" })
        #expect(rotating < bitmapRule)
        #expect(text.contains("meta nfproto ipv6 th dport 20000-40000 jump rotate6_ssh"))
        let chain = try #require(ruleset.table.chains.first { $0.name == "rotate4_ssh" })
        // Stages 2 and 1 each: advance (two parities), repeat (two), reset; then the start (two).
        #expect(chain.rules.count == 2 * 5 + 2)
        #expect(chain.rules.first?.comment == "ssh: knock 3 of 3, grant")
        #expect(chain.rules.last?.comment == "ssh: knock 1 of 3")
        #expect(!text.contains("rotate4_ssh {\n\t\tip saddr @banned4"), "no ban check before a rotating knock")
        // The sequence's ports are not in the bitmap (only the fixed sequence's and the guarded ones).
        let bitmap = try #require(ruleset.table.sets.first { $0.name == "ports" })
        guard case .plain(let ports) = bitmap.contents else { Issue.record("ports is not a plain set"); return }
        let numbers = ports.flatMap { $0 }.compactMap { value -> UInt16? in if case .port(let port) = value { port } else { nil } }
        #expect(Set(numbers) == [22, 80, 7000, 8000, 9001])
        #expect(try Pipeline.nftJSON(for: ruleset).contains("\"rotate4_ssh\""))
    }
}
