import Testing
@testable import MPlane

@Suite("Primitives")
struct PrimitiveTests {
    static let roundTrips: [(Primitive, String, String)] = [
        (.string, "foo", "foo"), (.string, "", ""), (.url, "http://example.org/x?a=1", "http://example.org/x?a=1"),
        (.natural, "42", "42"), (.natural, "0", "0"), (.natural, "18446744073709551615", "18446744073709551615"),
        (.natural, "100.0", "100"), (.natural, "1e3", "1000"),
        (.real, "3.141592653589793", "3.141592653589793"), (.real, "4.2e6", "4200000.0"), (.real, "0.1", "0.1"),
        (.real, "1e-05", "1e-05"), (.real, "0.0001", "0.0001"), (.real, "1e16", "1e+16"), (.real, "9.5e15", "9500000000000000.0"),
        (.real, "2", "2.0"), (.real, "-0.0", "-0.0"), (.real, "1.5e300", "1.5e+300"), (.real, "123456.789", "123456.789"),
        (.boolean, "True", "True"), (.boolean, "False", "False"), (.boolean, "1", "True"), (.boolean, "0", "False"),
        (.time, "2013-07-30 23:19:42", "2013-07-30 23:19:42.000000"), (.time, "2013-07-30", "2013-07-30 00:00:00.000000"),
        (.time, "2000-02-29 12:00:00.25", "2000-02-29 12:00:00.250000"), (.time, "1969-12-31 23:59:59.999999", "1969-12-31 23:59:59.999999"),
        (.address, "10.0.27.101", "10.0.27.101"), (.address, "2001:db8:1:33::c0:ffee", "2001:db8:1:33::c0:ffee"),
        (.address, "2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"), (.address, "::1", "::1"), (.address, "::", "::"),
        (.address, "fe80::1:2", "fe80::1:2"), (.address, "2001:db8::", "2001:db8::"), (.address, "1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        (.address, "::ffff:10.0.0.1", "::ffff:10.0.0.1"), (.address, "::ffff:a00:1", "::ffff:10.0.0.1"),
        (.address, "10.0.0.0/8", "10.0.0.0/8"), (.address, "2001:db8::/32", "2001:db8::/32"), (.address, "0.0.0.0/0", "0.0.0.0/0"),
        (.address, "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), (.address, "1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),
    ]

    @Test("values parse and print as the reference prints them", arguments: roundTrips)
    func roundTrip(primitive: Primitive, input: String, printed: String) throws {
        let v = try #require(try primitive.parse(input))
        #expect(v.description == printed)
        #expect(try primitive.parse(printed) == v)
    }

    static let invalid: [(Primitive, String)] = [
        (.natural, "-1"), (.natural, "abc"), (.natural, "18446744073709551616"), (.natural, "1.5"), (.natural, ""),
        (.real, "abc"), (.real, "0x10"), (.real, ""), (.boolean, "yes"), (.boolean, ""),
        (.time, "2013-7-30"), (.time, "2013-07-32"), (.time, "2013-07-30 24:00"), (.time, "2013-07-30 23:19:42Z"), (.time, "now"),
        (.address, "10.0.0.256"), (.address, "10.0.0"), (.address, "010.0.0.1"), (.address, "10.0.0.1/33"), (.address, "10.0.0.1/8"),
        (.address, "1::2::3"), (.address, "1:2:3:4:5:6:7:8:9"), (.address, "12345::"), (.address, "2001:db8::1/32"), (.address, ":1"),
        (.address, "1:"), (.address, "g::1"), (.address, "1:2:3:4:5:6:7::8"),
    ]

    @Test("invalid values are refused", arguments: invalid)
    func refused(primitive: Primitive, input: String) {
        #expect(throws: MPlaneError(.invalidValue, field: "", "")) { try primitive.parse(input) }
    }

    @Test("'*' is no value")
    func star() throws {
        for p in Primitive.allCases { #expect(try p.parse("*") == nil) }
    }

    @Test("calendar arithmetic agrees over four centuries")
    func calendar() {
        var days = Calendar.daysFromCivil(year: 1900, month: 1, day: 1)
        for y in 1900...2300 {
            for m in 1...12 {
                for d in 1...Calendar.daysInMonth(year: y, month: m) {
                    let back = Calendar.civilFromDays(days)
                    if back != (y, m, d) { Issue.record("\(y)-\(m)-\(d) -> \(back)"); return }
                    days += 1
                }
            }
        }
        #expect(Timestamp(year: 2018, month: 1, day: 1).components.weekday == 1)  // a Monday
    }
}

@Suite("Constraints")
struct ConstraintTests {
    @Test("all, range and set, met by and single value")
    func basics() throws {
        #expect(try Constraint.parse("*", primitive: .natural) == .all)
        #expect(Constraint.all.isMet(by: .natural(7)))
        let r = try Constraint.parse("0 ... 99", primitive: .natural)
        #expect(r.description == "0 ... 99")
        #expect(r.isMet(by: .natural(0)) && r.isMet(by: .natural(99)) && !r.isMet(by: .natural(100)))
        #expect(try Constraint.parse("99 ... 0", primitive: .natural).description == "0 ... 99")
        #expect(try Constraint.parse("1 ... 1", primitive: .natural).singleValue == .natural(1))
        #expect(r.singleValue == nil)
        let s = try Constraint.parse("10.0.27.100,10.0.28.103", primitive: .address)
        #expect(s.isMet(by: .address(IPAddress("10.0.28.103")!)))
        #expect(!s.isMet(by: .address(IPAddress("10.0.27.103")!)))
        #expect(s.description == "10.0.27.100,10.0.28.103")
        #expect(try Constraint.parse("10.0.27.2", primitive: .address).singleValue == .address(IPAddress("10.0.27.2")!))
        let reals = try Constraint.parse("0 ... 1", primitive: .real)
        #expect(reals.description == "0.0 ... 1.0" && reals.isMet(by: .real(0.5)))
        let times = try Constraint.parse("2017-01-01 ... 2018-01-01", primitive: .time)
        #expect(times.isMet(by: .time(Timestamp(year: 2017, month: 6, day: 1))))
        let strings = try Constraint.parse("a,b", primitive: .string)
        #expect(strings.isMet(by: .string("b")) && !strings.isMet(by: .string("c")))
    }

    @Test("CIDR members admit their networks' addresses, families never mix")
    func cidr() throws {
        let c = try Constraint.parse("10.0.0.0/8,2001:db8::/32", primitive: .address)
        #expect(c.isMet(by: .address(IPAddress("10.200.3.4")!)))
        #expect(c.isMet(by: .address(IPAddress("2001:db8:ffff::1")!)))
        #expect(!c.isMet(by: .address(IPAddress("11.0.0.1")!)))
        #expect(!c.isMet(by: .address(IPAddress("2001:db9::1")!)))
        #expect(c.isMet(by: .address(IPAddress("10.1.0.0/16")!)), "a subnet lies within")
        #expect(try Constraint.parse("10.0.0.0/24", primitive: .address).singleValue == nil)
        let r = try Constraint.parse("10.0.0.1 ... 10.0.0.254", primitive: .address)
        #expect(r.isMet(by: .address(IPAddress("10.0.0.7")!)))
        #expect(!r.isMet(by: .address(IPAddress("::1")!)))
        let net = IPAddress("192.168.1.0/30")!
        #expect(net.addressCount == 4)
        #expect(net.address(at: 3)?.description == "192.168.1.3")
        #expect(net.address(at: 4) == nil)
    }

    @Test("invalid constraints are refused", arguments: [
        ("1 ... x", Primitive.natural), ("a,,b", .natural), ("* ... 3", .natural), ("1,*", .natural), ("10.0.0.0/33", .address),
    ])
    func invalid(text: String, primitive: Primitive) {
        #expect(throws: MPlaneError(.invalidConstraint, field: "", "")) { try Constraint.parse(text, primitive: primitive) }
    }
}

@Suite("Registry")
struct RegistryTests {
    @Test("the core registry is embedded and complete")
    func core() throws {
        let core = RegistryStore.shared.core
        #expect(core.uri == "http://ict-mplane.eu/registry/core")
        #expect(core.elements.count == 113)
        #expect(core["delay.twoway.icmp.us"]?.primitive == .natural)
        #expect(core["source.ip4"]?.primitive == .address)
        #expect(throws: MPlaneError(.unknownElement, field: "", "")) { try core.element("no.such.element") }
    }

    @Test("private registries load from JSON, include others, and later definitions win")
    func privateRegistry() throws {
        let store = RegistryStore()
        let json = """
        {"registry-format": "mplane-0", "registry-revision": 3, "registry-uri": "http://example.org/reg",
         "includes": ["http://ict-mplane.eu/registry/core"],
         "elements": [{"name": "probe.temperature", "prim": "real", "desc": "°C"},
                      {"name": "source.port", "prim": "string"}]}
        """
        let reg = try store.register(json: Array(json.utf8))
        #expect(try store.registry(for: "http://example.org/reg") === reg)
        #expect(reg.revision == 3)
        #expect(reg["probe.temperature"]?.primitive == .real)
        #expect(reg["source.port"]?.primitive == .string, "redefinition wins")
        #expect(reg["destination.ip4"]?.primitive == .address, "included")
        #expect(throws: MPlaneError(.unknownRegistry, field: "", "")) { try store.registry(for: "http://example.org/other") }
        let badInclude = #"{"registry-format": "mplane-0", "registry-revision": 0, "registry-uri": "x", "includes": ["http://nowhere"], "elements": []}"#
        #expect(throws: MPlaneError(.unknownRegistry, field: "", "")) { try store.register(json: Array(badInclude.utf8)) }
        let badFormat = #"{"registry-format": "mplane-9", "registry-revision": 0, "registry-uri": "x", "elements": []}"#
        #expect(throws: MPlaneError(.invalidRegistry, field: "", "")) { try store.register(json: Array(badFormat.utf8)) }
        let badPrim = #"{"registry-format": "mplane-0", "registry-revision": 0, "registry-uri": "x", "elements": [{"name": "a", "prim": "complex"}]}"#
        #expect(throws: MPlaneError(.invalidRegistry, field: "", "")) { try store.register(json: Array(badPrim.utf8)) }
    }
}

@Suite("Element names in code")
struct ElementNameTests {
    @Test("every name the code uses is defined by an embedded registry")
    func namesAreDefined() throws {
        let registries = try [RegistryStore.coreURI, RegistryStore.loopbackURI, RegistryStore.probeURI].map {
            try RegistryStore.shared.registry(for: $0)
        }
        for name in ElementName.all {
            #expect(registries.contains { $0[name] != nil }, "\(name) is in no embedded registry")
        }
        #expect(Set(ElementName.all).count == ElementName.all.count)
    }
}
