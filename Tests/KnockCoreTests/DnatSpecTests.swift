import Foundation
@testable import KnockCore
import Testing

/// `dnat` in the spec: local ports knockc itself forwards to a host behind this one.
struct DnatSpecTests {
    func check(_ yaml: String) -> (KnockSpec?, [String]) {
        let (spec, diagnostics) = Pipeline.check(yaml, file: "spec.yaml")
        return (spec, diagnostics.flatMap { [$0] + $0.notes }.map { "\($0.location.line):\($0.location.column): \($0.severity.rawValue): \($0.message.text)" })
    }

    static let base = "sequences:\n  ssh:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    dnat: { tcp/2222: \"198.51.100.10:22\", tcp/8080: \"[2001:db8:1::10]:80\" }\n"

    @Test("a dnat port is granted by its local port, per its target's family, translated in a nat chain and guarded in the forward hook")
    func lowering() throws {
        let (spec, found) = check(Self.base)
        #expect(found.isEmpty, "\(found)")
        let sequence = try #require(spec?.sequences.first)
        #expect(sequence.dnat.map(\.description) == ["tcp/2222 to 198.51.100.10:22", "tcp/8080 to [2001:db8:1::10]:80"])
        let text = try Pipeline.nftScript(for: #require(spec))
        #expect(text.contains("update @granted4 { ip saddr . 6 . 2222 timeout 30s }"), "\(text)")
        #expect(!text.contains("update @granted4 { ip saddr . 6 . 8080"), "an IPv6 target serves IPv6 clients only")
        #expect(text.contains("update @granted6 { ip6 saddr . 6 . 8080 timeout 30s }"))
        #expect(text.contains("type nat hook prerouting priority -110; policy accept;"))
        #expect(text.contains("meta nfproto ipv4 meta l4proto tcp th dport 2222 ip saddr . meta l4proto . th dport @granted4 dnat ip to 198.51.100.10:22"))
        #expect(text.contains("meta nfproto ipv6 meta l4proto tcp th dport 8080 ip6 saddr . meta l4proto . th dport @granted6 dnat ip6 to [2001:db8:1::10]:80"))
        #expect(text.contains("ct original proto-dst @forward_ports jump guard_forward4"), "the forward guard checks dnat ports too")
        let catalog = TableCatalog(try #require(spec))
        #expect(catalog.sequencesOpening(TransportPort(.tcp, 2222), family: .ipv4) == ["ssh"])
        #expect(try Pipeline.nftJSON(for: RulesetLowering.lower(#require(spec))).contains(#"{"dnat": {"family": "ip6", "addr": "2001:db8:1::10", "port": 80}}"#))

        let (plain, _) = check("sequences:\n  ssh:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/22]\n")
        #expect(!Pipeline.nftScript(for: try #require(plain)).contains("dnat"), "no nat chain without dnat")
    }

    @Test("bad targets, and a dnat port that is opened, forwarded, a knock, a decoy or sent elsewhere by another sequence, are errors")
    func refusals() throws {
        let (none, bad) = check("sequences:\n  a:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    dnat: { tcp/2222: \"198.51.100.10:0\", icmp/3: \"192.0.2.4:5\", tcp/2223: \"2001:db8::1:22\", tcp/2224: \"[2001:db8::1]:22\" }\n")
        #expect(none == nil)
        #expect(bad.contains { $0.hasPrefix("4:23: error: '198.51.100.10:0' is not a dnat target for tcp/2222") }, "\(bad)")
        #expect(bad.contains { $0.hasPrefix("4:42: error: unknown protocol 'icmp'") }, "\(bad)")
        #expect(bad.contains { $0.hasPrefix("4:75: error: '2001:db8::1:22' is not a dnat target") }, "\(bad)")
        #expect(!bad.contains { $0.contains("has no 'open'") }, "\(bad)")

        let (_, opened) = check(Self.base + "    open: [tcp/2222]\n")
        #expect(opened.contains { $0.hasPrefix("4:13: error: tcp/2222 is both forwarded and opened on this host") }, "\(opened)")
        let (_, knock) = check(Self.base.replacingOccurrences(of: "tcp/8000]", with: "tcp/2222]"))
        #expect(knock.contains { $0.hasPrefix("3:33: error: knock tcp/2222 is also a guarded port") }, "\(knock)")
        let (_, decoy) = check(Self.base + "decoys: [tcp/2220-2230]\n")
        #expect(decoy.contains { $0.hasPrefix("5:10: error:") && $0.contains("tcp/2222") }, "\(decoy)")
        let other = "  web:\n    knock: [tcp/7100, udp/9100, tcp/8100]\n"
        let (_, differ) = check(Self.base + other + "    dnat: { tcp/2222: \"198.51.100.11:22\" }\n")
        #expect(differ.contains { $0.hasPrefix("7:23: error: tcp/2222 is sent to 198.51.100.11:22 here but to 198.51.100.10:22") }, "\(differ)")
        let (same, _) = check(Self.base + other + "    dnat: { tcp/2222: \"198.51.100.10:22\" }\n")
        #expect(same != nil, "two sequences may share a dnat port with the same target")
        let (_, forward) = check(Self.base + other + "    forward: [tcp/2222]\n")
        #expect(forward.contains { $0.hasPrefix("4:13: error: tcp/2222 is both in 'dnat' and in 'forward'") }, "\(forward)")
        let (_, once) = check(Self.base + "    open_once: true\n")
        #expect(once.contains { $0.contains("forwards tcp/2222 with 'open_once'") }, "\(once)")
    }
}
