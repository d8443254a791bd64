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
}
