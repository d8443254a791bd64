@testable import KnockCore
import Testing

struct AccessListCheckTests {
    @Test func prefixesParseStrictlyAndCanonically() throws {
        #expect(try CIDR(parsing: "192.0.2.0/24").description == "192.0.2.0/24")
        #expect(try CIDR(parsing: "2001:DB8::/32").description == "2001:db8::/32")
        #expect(try CIDR(parsing: "192.0.2.7").description == "192.0.2.7")
        #expect(try CIDR(parsing: "192.0.2.7/32").isSingleAddress)
        #expect(throws: CIDR.ParseError.hostBitsSet("192.0.2.1/24", network: "192.0.2.0/24")) { try CIDR(parsing: "192.0.2.1/24") }
        for bad in ["192.0.2.0/33", "192.0.2", "1.2.3.4/", "/24", "10.0.0.0/8;", "192.0.2.0/24 }", "::/129", "fe80::1%eth0", "a.b.c.d", "192.0.2.0/+4"] {
            #expect(throws: CIDR.ParseError.self, "\(bad)") { try CIDR(parsing: bad) }
        }
    }

    @Test func coveringDropsNestedPrefixes() throws {
        let list = try ["192.0.2.0/24", "192.0.2.7", "192.0.2.0/25", "198.51.100.0/24", "2001:db8::/32", "2001:db8::1"].map { try CIDR(parsing: $0) }
        #expect(CIDR.covering(list).map(\.description) == ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"])
    }

    @Test func specKeys() throws {
        let base = "sequences:\n  a: {knock: [tcp/5, udp/3, tcp/4], open: [tcp/22]"
        let spec = try #require(Pipeline.check("max_tracked_sources: 1000\nallow: [192.0.2.0/24]\n" + base + ", from: [2001:db8::/64], deny: [2001:db8::5]}", file: "s").0)
        #expect(spec.maxTrackedSources == 1000)
        #expect(spec.access.allow.map(\.description) == ["192.0.2.0/24"])
        #expect(spec.sequences[0].from?.map(\.description) == ["2001:db8::/64"])
        #expect(spec.sequences[0].access.deny.map(\.description) == ["2001:db8::5"])

        #expect(Pipeline.check("max_tracked_sources: 0\n" + base + "}", file: "s").1.map(\.message) == [.badTrackedSources("0")])
        #expect(Pipeline.check("deny: [192.0.2.1/24]\n" + base + "}", file: "s").1.map(\.message)
                == [.badCIDR(.hostBitsSet("192.0.2.1/24", network: "192.0.2.0/24"))])
        let both = Pipeline.check(base + ", allow: [192.0.2.0/24], deny: [192.0.2.9]}", file: "s").1
        #expect(both.map(\.message) == [.allowedAndDenied(try CIDR(parsing: "192.0.2.9"), try CIDR(parsing: "192.0.2.0/24"))])
        #expect(both.first?.notes.count == 1)
    }

    /// The kernel sees an IPv4 client's packets as IPv4, so `::ffff:192.0.2.10` in a set of
    /// IPv6 addresses never matches it: in `allow` the client stays out, in `deny` it gets in.
    @Test("IPv4-mapped IPv6 addresses and prefixes are refused, naming the IPv4 form to write",
          arguments: [
              ("::ffff:192.0.2.10", "192.0.2.10"), ("::FFFF:c000:20a", "192.0.2.10"), ("0:0:0:0:0:ffff:192.0.2.10/128", "192.0.2.10"),
              ("::ffff:0:0/96", "0.0.0.0/0"), ("::ffff:10.0.0.0/104", "10.0.0.0/8"), ("::ffff:192.0.2.0/120", "192.0.2.0/24"),
              ("::ffff:192.0.2.1/120", "192.0.2.0/24"),
          ])
    func ipv4MappedIsRefused(_ text: String, _ ipv4: String) {
        #expect(throws: CIDR.ParseError.ipv4Mapped(text, ipv4: ipv4)) { try CIDR(parsing: text) }
    }

    @Test("prefixes that only contain ::ffff:0:0/96, or stand next to it, are ordinary IPv6")
    func aroundIPv4MappedIsAccepted() throws {
        for text in ["::/0", "::/80", "::fffe:0:0/96", "::1:0:0:0/96", "64:ff9b::/96", "::ffff:0:0:0/96", "2001:db8::ffff:0:0/96"] {
            #expect(try CIDR(parsing: text).family == .ipv6, "\(text)")
        }
    }

    @Test("allow, deny and from refuse an IPv4-mapped address where it stands, with the IPv4 form in the message")
    func ipv4MappedInSpec() {
        let sequence = "sequences:\n  a: {knock: [tcp/5, udp/3, tcp/4], open: [tcp/22]"
        let cases = [
            ("allow: [\"::ffff:192.0.2.10\"]\n" + sequence + "}", 1, 9, "::ffff:192.0.2.10", "192.0.2.10"),
            ("deny: [198.51.100.0/24, \"::ffff:203.0.113.0/120\"]\n" + sequence + "}", 1, 25, "::ffff:203.0.113.0/120", "203.0.113.0/24"),
            (sequence + ", from: [\"::ffff:10.0.0.0/104\"]}", 2, 60, "::ffff:10.0.0.0/104", "10.0.0.0/8"),
            (sequence + ", allow: [2001:db8::1, \"::ffff:192.0.2.7\"]}", 2, 74, "::ffff:192.0.2.7", "192.0.2.7"),
        ]
        for (yaml, line, column, text, ipv4) in cases {
            let (spec, diagnostics) = Pipeline.check(yaml, file: "s")
            #expect(spec == nil)
            #expect(diagnostics.map(\.message) == [.badCIDR(.ipv4Mapped(text, ipv4: ipv4))], "\(yaml)")
            #expect(diagnostics.first.map { [$0.location.line, $0.location.column] } == [line, column], "\(yaml)")
        }
        #expect(Diagnostic.Message.badCIDR(.ipv4Mapped("::ffff:192.0.2.10", ipv4: "192.0.2.10")).text
                == "'::ffff:192.0.2.10' is an IPv4-mapped IPv6 address, which never matches an IPv4 client; write 192.0.2.10")
        #expect(Diagnostic.Message.badCIDR(.ipv4Mapped("::ffff:10.0.0.0/104", ipv4: "10.0.0.0/8")).text
                == "'::ffff:10.0.0.0/104' is an IPv4-mapped IPv6 prefix, which never matches an IPv4 client; write 10.0.0.0/8")
    }
}
