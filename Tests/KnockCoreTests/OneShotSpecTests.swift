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
        #expect(text.contains("ip saddr . ip daddr . meta l4proto . th sport . th dport @once_flows4 accept"))
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

/// `grant_prefix` in the spec.
struct GrantPrefixSpecTests {
    func check(_ yaml: String) -> (KnockSpec?, [String]) {
        let (spec, diagnostics) = Pipeline.check(yaml, file: "spec.yaml")
        return (spec, diagnostics.map { "\($0.location.line):\($0.location.column): \($0.severity.rawValue): \($0.message.text)" })
    }

    static let spec = "grant_prefix: { ipv6: 64 }\nsequences:\n  ssh:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/22]\n"

    @Test("grant_prefix sets the key of grants, per family, top level then sequence, and is checked")
    func prefixes() throws {
        let (spec, found) = check(Self.spec + "    grant_prefix: { ipv4: 28 }\n")
        #expect(found.isEmpty, "\(found)")
        #expect(spec?.sequences.first?.grantPrefix == GrantPrefix(ipv4: 28, ipv6: 64))
        let text = try Pipeline.nftScript(for: #require(spec))
        #expect(text.contains("update @granted6 { ip6 saddr & ffff:ffff:ffff:ffff:: . 6 . 22 timeout 30s }"), "\(text)")
        #expect(text.contains("update @granted4 { ip saddr & 255.255.255.240 . 6 . 22 timeout 30s }"))
        #expect(text.contains("ip6 saddr & ffff:ffff:ffff:ffff:: . meta l4proto . th dport @granted6 accept comment \"granted /64 prefixes\""))
        #expect(text.contains("comment \"sources granted a guarded port, by prefixes /64\""))
        #expect(TableLayout.grantLengths(comment: "sources granted a guarded port, by prefixes /64 /128", family: .ipv6) == [64, 128])
        #expect(TableLayout.grantLengths(comment: "sources granted a guarded port", family: .ipv4) == [32])

        let (_, wide) = check(Self.spec.replacingOccurrences(of: "{ ipv6: 64 }", with: "{ ipv4: 16 }"))
        #expect(wide == ["1:23: warning: a grant for an IPv4 /16 lets in 65536 addresses; a /24 or longer keeps a grant to one network"], "\(wide)")
        for bad in ["{ ipv6: 129 }", "{ ipv4: 0 }", "{ ipv5: 1 }", "64"] {
            let (none, errors) = check(Self.spec.replacingOccurrences(of: "{ ipv6: 64 }", with: bad))
            #expect(none == nil && errors.contains { $0.contains("error") }, "\(bad): \(errors)")
        }
        let (plain, _) = check(Self.spec.replacingOccurrences(of: "grant_prefix: { ipv6: 64 }\n", with: ""))
        #expect(try Pipeline.nftScript(for: #require(plain)).contains("ip6 saddr . meta l4proto . th dport @granted6 accept comment \"granted sources\""))
    }

    @Test("a port's grants have one length per family: sequences with different prefixes cannot share a port, and mixed lengths look up only their own ports")
    func mixedLengths() throws {
        let two = Self.spec + "    grant_prefix: { ipv6: 64 }\n  web:\n    knock: [tcp/7100, udp/9100, tcp/8100]\n    open: [tcp/80]\n    grant_prefix: { ipv6: 48 }\n"
        let (spec, found) = check(two)
        #expect(found.isEmpty, "\(found)")
        let text = try Pipeline.nftScript(for: #require(spec))
        #expect(text.contains("meta l4proto . th dport @grant_ports6_64 ip6 saddr & ffff:ffff:ffff:ffff:: . meta l4proto . th dport @granted6 accept"), "\(text)")
        #expect(text.contains("meta l4proto . th dport @grant_ports6_48 ip6 saddr & ffff:ffff:ffff:: . meta l4proto . th dport @granted6 accept"))
        #expect(!text.contains("grant_ports4_"), "IPv4 has one length: no port sets")
        let (none, clash) = check(two.replacingOccurrences(of: "open: [tcp/80]", with: "open: [tcp/80, tcp/22]"))
        #expect(none == nil)
        #expect(clash.contains { $0.contains("error: tcp/22 is opened by sequence 'ssh' with IPv6 grants of /64 and by 'web' with /48") }, "\(clash)")
    }
}
