import KnockCore
import Testing

/// The systemd units rendered as values, and the paths a unit can carry; `UnitsTests` covers
/// the command that prints and installs them.
struct SystemdUnitTests {
    static func unit(_ kind: SystemdUnit.Kind) -> SystemdUnit {
        SystemdUnit(kind, specPath: "/etc/knockc/edge.yaml", knockcPath: "/opt/knockc", tableName: "edge")
    }

    @Test("each unit runs the given knockc on the given spec, every placeholder filled", arguments: [
        (SystemdUnit.Kind.apply, "knockc.service", ["ExecStart=/opt/knockc apply /etc/knockc/edge.yaml",
                                                    "ExecReload=/opt/knockc apply /etc/knockc/edge.yaml", "Type=oneshot"]),
        (.watcher, "knockc-watch.service", ["ExecStart=/opt/knockc watch /etc/knockc/edge.yaml", "Type=notify"]),
        (.refresh, "knockc-refresh.service", ["ExecStart=/opt/knockc apply /etc/knockc/edge.yaml", "Type=oneshot"]),
        (.refreshTimer(interval: .seconds(43_200)), "knockc-refresh.timer", ["OnUnitActiveSec=43200s"]),
    ])
    func rendersUnit(_ kind: SystemdUnit.Kind, fileName: String, expected: [String]) throws {
        let unit = Self.unit(kind)
        #expect(unit.fileName == fileName)
        let text = try unit.text()
        let lines = Set(text.split(separator: "\n").map(String.init))
        for line in expected { #expect(lines.contains(line), "\(text)") }
        #expect(!text.contains("{{"))
    }

    @Test("the apply unit deletes the given table when stopped; the watcher's and the refresh units delete none")
    func onlyTheApplyUnitDeletesTheTable() throws {
        #expect(try Self.unit(.apply).text().contains("\nExecStop=/usr/sbin/nft delete table inet edge\n"))
        for kind in [SystemdUnit.Kind.watcher, .refresh, .refreshTimer(interval: .seconds(43_200))] {
            let text = try Self.unit(kind).text()
            #expect(!text.contains("delete table"), "\(kind)")
            #expect(!text.contains("ExecStop="), "\(kind)")
        }
    }

    static func sequence(_ name: String, horizon: Duration?) -> KnockSequence {
        var sequence = KnockSequence(name: name, knocks: [.udp(62201)], open: [TransportPort(.tcp, 22)])
        if let horizon {
            sequence.spa = OnePacketAuthorization(secret: "/etc/knockc/\(name).key", port: TransportPort(.udp, 62201), horizon: horizon)
        }
        return sequence
    }

    @Test("the refresh interval is half the shortest horizon among the spa sequences; sequences without spa do not count")
    func refreshIntervalIsHalfTheShortestHorizon() {
        let spec = KnockSpec(sequences: [
            Self.sequence("admin", horizon: .seconds(86_400)),
            Self.sequence("ops", horizon: .seconds(6 * 3600)),
            Self.sequence("ssh", horizon: nil),
        ])
        #expect(spec.sequences.map(\.windowHorizon) == [.seconds(86_400), .seconds(6 * 3600), nil])
        #expect(spec.refreshInterval == .seconds(3 * 3600))
        #expect(KnockSpec(sequences: [Self.sequence("admin", horizon: OnePacketAuthorization.defaultHorizon)]).refreshInterval
            == .seconds(43_200))
    }

    @Test("a spec without spa sequences needs no refresh: no interval, and only knockc.service")
    func noRefreshWithoutSpa() {
        let spec = KnockSpec(sequences: [Self.sequence("ssh", horizon: nil), Self.sequence("web", horizon: nil)])
        #expect(spec.refreshInterval == nil)
        #expect(KnockSpec(sequences: []).refreshInterval == nil)
        let units = SystemdUnit.applyUnits(specPath: "/etc/knockc/edge.yaml", knockcPath: "/opt/knockc", tableName: "edge",
                                           refreshInterval: spec.refreshInterval)
        #expect(units == [Self.unit(.apply)])
    }

    @Test("with spa, the apply units are knockc.service, knockc-refresh.service and knockc-refresh.timer")
    func refreshUnitsWithSpa() {
        let units = SystemdUnit.applyUnits(specPath: "/etc/knockc/edge.yaml", knockcPath: "/opt/knockc", tableName: "edge",
                                           refreshInterval: .seconds(43_200))
        #expect(units.map(\.fileName) == ["knockc.service", "knockc-refresh.service", "knockc-refresh.timer"])
        #expect(units.map(\.kind) == [.apply, .refresh, .refreshTimer(interval: .seconds(43_200))])
    }

    @Test("the refresh service runs apply once, in place, only while knockc.service is active")
    func refreshServiceText() throws {
        let text = try Self.unit(.refresh).text()
        let lines = Set(text.split(separator: "\n").map(String.init))
        for line in ["Type=oneshot", "ExecStart=/opt/knockc apply /etc/knockc/edge.yaml", "Requisite=knockc.service",
                     "After=knockc.service nftables.service"] {
            #expect(lines.contains(line), "\(text)")
        }
        // A oneshot that stayed active could not be started again by its timer.
        #expect(!text.contains("RemainAfterExit"))
        #expect(!text.contains("{{"))
    }

    @Test("the refresh timer starts the service every interval, in whole seconds, and is wanted by timers.target", arguments: [
        (Duration.seconds(43_200), "43200s", "60s"),
        (.seconds(3 * 3600), "10800s", "60s"),
        (.seconds(300), "300s", "30s"),
        // The shortest horizon, one 1 s window, gives 500 ms: a timer counts in whole seconds.
        (.init(milliseconds: 500), "1s", "1s"),
    ])
    func refreshTimerText(_ interval: Duration, seconds: String, accuracy: String) throws {
        let text = try Self.unit(.refreshTimer(interval: interval)).text()
        let lines = Set(text.split(separator: "\n").map(String.init))
        for line in ["[Timer]", "OnActiveSec=\(seconds)", "OnUnitActiveSec=\(seconds)", "AccuracySec=\(accuracy)",
                     "OnClockChange=yes", "Unit=knockc-refresh.service", "[Install]", "WantedBy=timers.target"] {
            #expect(lines.contains(line), "\(text)")
        }
        #expect(!text.contains("{{"))
    }

    @Test("absolute paths of plain characters go into a unit as they are")
    func plainPathsPass() throws {
        for path in ["/etc/knockc/knockc.yaml", "/usr/local/bin/knockc", "/srv/knock-c_1.0/spec.yml", "/opt/ünïcode/knockc"] {
            #expect(throws: Never.self) { try SystemdUnit.checkPath(path) }
        }
    }

    @Test("a relative path is refused: systemd needs an absolute one")
    func relativePathRefused() {
        #expect(throws: SystemdUnit.PathError.notAbsolute("bin/knockc")) { try SystemdUnit.checkPath("bin/knockc") }
        #expect(SystemdUnit.PathError.notAbsolute("bin/knockc").description == "'bin/knockc' is not an absolute path; systemd needs one.")
    }

    @Test("whitespace, quotes, backslashes, $, % and control characters are refused, naming the character", arguments: [
        ("/etc/knockc/knockc.yaml\nExecStartPre=/bin/sh", "\n"),
        ("/etc/knockc/my spec.yaml", " "),
        ("/usr/local/bin/knockc\tx", "\t"),
        ("/etc/knockc/\"knockc\".yaml", "\""),
        ("/etc/knockc/'knockc'.yaml", "'"),
        ("/etc/knockc/a\\b.yaml", "\\"),
        ("/etc/knockc/$HOME.yaml", "$"),
        ("/etc/knockc/%n.yaml", "%"),
        ("/etc/knockc/bell\u{7}.yaml", "\u{7}"),
    ])
    func unsafeCharactersRefused(_ path: String, _ character: String) {
        #expect(throws: SystemdUnit.PathError.unsafeCharacter(Character(character), path: path)) { try SystemdUnit.checkPath(path) }
    }

    @Test("the refusal quotes the path and the character so that an invisible one shows")
    func refusalQuotes() {
        let error = SystemdUnit.PathError.unsafeCharacter("\t", path: "/usr/local/bin/knockc\tx")
        #expect(error.description == #""/usr/local/bin/knockc\tx" contains "\t", which a systemd unit would not keep as it is."#)
    }
}
