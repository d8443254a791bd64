import Foundation
@testable import KnockCore
import Testing

/// `open_once` in the spec.
struct OneShotSpecTests {
    func check(_ yaml: String) -> (KnockSpec?, [String]) {
        let (spec, diagnostics) = Pipeline.check(yaml, file: "spec.yaml")
        return (spec, diagnostics.flatMap { [$0] + $0.notes }.map { "\($0.location.line):\($0.location.column): \($0.severity.rawValue): \($0.message.text)" })
    }

    static let base = "sequences:\n  once:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/22]\n    open_once: ONCE\n"

    @Test("open_once takes true or false, and a port it opens is not opened by a sequence without it")
    func refusals() throws {
        let (spec, found) = check(Self.base.replacingOccurrences(of: "ONCE", with: "true"))
        #expect(found.isEmpty, "\(found)")
        #expect(spec?.sequences.first?.openOnce == true)
        let text = try Pipeline.nftScript(for: #require(spec))
        #expect(text.contains("set once_ports {\n\t\ttype inet_proto . inet_service\n") && text.contains("elements = {\n\t\t\ttcp . 22,\n\t\t}"), "\(text)")
        #expect(text.contains("ip saddr . th sport . th dport @once_flows4 accept"))
        #expect(text.contains("meta l4proto . th dport @once_ports ip saddr . meta l4proto . th dport @granted4 delete @granted4"))

        let (_, yes) = check(Self.base.replacingOccurrences(of: "ONCE", with: "yes"))
        #expect(yes.contains { $0.hasPrefix("5:16: error: 'yes' is not a value for 'open_once'") }, "\(yes)")
        let shared = Self.base.replacingOccurrences(of: "ONCE", with: "true")
            + "  ssh:\n    knock: [tcp/7100, udp/9100, tcp/8100]\n    open: [tcp/80, tcp/22]\n"
        let (none, clash) = check(shared)
        #expect(none == nil)
        #expect(clash.contains { $0.hasPrefix("4:12: error: tcp/22 is opened by an 'open_once' sequence and by sequence 'ssh' without it") }, "\(clash)")
        #expect(clash.contains { $0.hasPrefix("8:20: note: opened here") }, "\(clash)")
        let (both, fine) = check(shared.replacingOccurrences(of: "open: [tcp/80, tcp/22]\n", with: "open: [tcp/80, tcp/22]\n    open_once: true\n"))
        #expect(both != nil && fine.isEmpty, "two one-shot sequences may share a port: \(fine)")
        let (never, _) = check(Self.base.replacingOccurrences(of: "ONCE", with: "false"))
        #expect(!Pipeline.nftScript(for: try #require(never)).contains("once_"), "no one-shot objects without open_once")
    }
}
