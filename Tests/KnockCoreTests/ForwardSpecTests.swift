import Foundation
@testable import KnockCore
import Testing

/// `forward` in the spec: ports this host forwards, guarded in the forward hook.
struct ForwardSpecTests {
    func check(_ yaml: String) -> (KnockSpec?, [String]) {
        let (spec, diagnostics) = Pipeline.check(yaml, file: "spec.yaml")
        return (spec, diagnostics.flatMap { [$0] + $0.notes }.map { "\($0.location.line):\($0.location.column): \($0.severity.rawValue): \($0.message.text)" })
    }

    static let base = "sequences:\n  web:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    forward: [tcp/8443, udp/51820]\n"

    @Test("a forward-only sequence grants its ports with the local grants' keys and guards them by the port before DNAT")
    func lowering() throws {
        let (spec, found) = check(Self.base)
        #expect(found.isEmpty, "\(found)")
        let sequence = try #require(spec?.sequences.first)
        #expect(sequence.open.isEmpty && sequence.forward == [TransportPort(.tcp, 8443), TransportPort(.udp, 51820)])
        let text = try Pipeline.nftScript(for: #require(spec))
        #expect(text.contains("update @granted4 { ip saddr . 6 . 8443 timeout 30s } update @granted4 { ip saddr . 17 . 51820 timeout 30s }"), "\(text)")
        #expect(text.contains("type filter hook forward priority -10; policy accept;"))
        #expect(text.contains("meta nfproto ipv4 meta l4proto tcp ct state new ct status dnat meta l4proto . ct original proto-dst @forward_ports jump guard_forward4"),
                "only connections this host published (DNATed) are guarded")
        #expect(text.contains("meta l4proto udp ip6 saddr . meta l4proto . ct original proto-dst @granted6 accept"))
        #expect(text.contains("chain guard4"), "a forwarded port served by the host itself (a userland proxy) is guarded in the input hook too")
        let catalog = TableCatalog(try #require(spec))
        #expect(catalog.sequencesOpening(TransportPort(.tcp, 8443), family: .ipv4) == ["web"], "status attributes forwarded grants")

        let (plain, _) = check("sequences:\n  ssh:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/22]\n")
        #expect(!Pipeline.nftScript(for: try #require(plain)).contains("forward"), "no forward objects without forward")
    }

    @Test("a port is opened or forwarded, not both; forwarded ports are kept clear of knocks and decoys; no open_once")
    func refusals() throws {
        let both = Self.base + "  ssh:\n    knock: [tcp/7100, udp/9100, tcp/8100]\n    open: [tcp/22, tcp/8443]\n"
        let (none, clash) = check(both)
        #expect(none == nil)
        #expect(clash.contains { $0.hasPrefix("4:15: error: tcp/8443 is both forwarded and opened on this host") }, "\(clash)")
        #expect(clash.contains { $0.hasPrefix("7:20: note: opened here") }, "\(clash)")

        let (_, knock) = check(Self.base.replacingOccurrences(of: "tcp/8000]", with: "tcp/8443]"))
        #expect(knock.contains { $0.hasPrefix("3:33: error:") && $0.contains("tcp/8443") }, "\(knock)")
        let (_, decoy) = check(Self.base + "decoys: [tcp/8440-8450]\n")
        #expect(decoy.contains { $0.hasPrefix("5:10: error:") && $0.contains("tcp/8443") }, "\(decoy)")
        let (_, twice) = check(Self.base.replacingOccurrences(of: "udp/51820]", with: "tcp/8443]"))
        #expect(twice.contains { $0.hasPrefix("4:25: error:") }, "\(twice)")
        let (_, once) = check(Self.base + "    open_once: true\n")
        #expect(once.contains { $0.hasPrefix("4:15: error: sequence 'web' forwards tcp/8443 with 'open_once'") }, "\(once)")
        let (_, nothing) = check("sequences:\n  web:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n")
        #expect(nothing.contains { $0.contains("'open'") }, "a sequence still needs open or forward: \(nothing)")
    }
}
