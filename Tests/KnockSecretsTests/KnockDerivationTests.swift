import Foundation
import Glibc
import KnockCore
@testable import KnockSecrets
import Testing

/// The derivations, against vectors that Python's hmac module computed (the README prints the
/// same vectors beside the Python that computes them), and their rules over many windows.
@Suite struct KnockDerivationTests {
    /// The README's vector secret: the 32 bytes 00 01 02 ... 1f.
    static let vectorSecret = (0..<32).map(UInt8.init)
    /// 2025-12-01T16:00:00Z, in 30 s windows.
    static let vectorWindow: Int64 = 58_820_160

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    func withVectorSecret(_ body: (Secret) throws -> Void) throws {
        try TemporaryDirectory.with { directory in
            let path = try directory.write(Self.vectorSecret, to: "vector.key")
            try body(try Secret(contentsOf: path, requiredOwner: getuid()))
        }
    }

    @Test func windowsAreFlooredUnixSecondsOverEvery() {
        #expect(KnockDerivation.window(unixSeconds: 1_764_604_800, every: 30) == Self.vectorWindow)
        #expect(KnockDerivation.window(unixSeconds: 1_764_604_829, every: 30) == Self.vectorWindow)
        #expect(KnockDerivation.window(unixSeconds: 1_764_604_830, every: 30) == Self.vectorWindow + 1)
        #expect(KnockDerivation.window(unixSeconds: 0, every: 7) == 0)
        #expect(KnockDerivation.window(unixSeconds: -1, every: 7) == -1, "floor, not truncation")
        #expect(KnockDerivation.window(unixSeconds: -7, every: 7) == -1)
        #expect(KnockDerivation.window(unixSeconds: -8, every: 7) == -2)
        #expect(KnockDerivation.window(at: Date(timeIntervalSince1970: 1_764_604_829.9), every: 30) == Self.vectorWindow)
        #expect(KnockDerivation.unixSeconds(of: Self.vectorWindow, every: 30) == 1_764_604_800..<1_764_604_830)
    }

    @Test func theMessageIsTheDocumentedBytes() throws {
        try withVectorSecret { secret in
            let message = KnockDerivation(secret: secret, sequence: "admin").message(.spa, window: Self.vectorWindow, index: 0)
            // "knockc-v1" 00 "spa" 00 "admin" 00, W = 0x0000000003818640, index 0x00000000.
            #expect(Self.hex(message) == "6b6e6f636b632d7631007370610061646d696e00000000000381864000000000")
            let rotate = KnockDerivation(secret: secret, sequence: "ssh").message(.rotate, window: -2, index: 2 << 8 | 5)
            #expect(Self.hex(rotate) == "6b6e6f636b632d763100726f746174650073736800fffffffffffffffe00000205")
        }
    }

    @Test func spaTokensMatchPythonsHMAC() throws {
        try withVectorSecret { secret in
            let admin = KnockDerivation(secret: secret, sequence: "admin")
            #expect(Self.hex(admin.spaToken(window: Self.vectorWindow, slot: 0)) == "864e1954e1b7fef5e7bffe791dd192ce")
            #expect(Self.hex(admin.spaToken(window: Self.vectorWindow, slot: 1)) == "e191524c1a9d83d67927ee90a9ef4dff")
            #expect(admin.spaToken(window: Self.vectorWindow, slot: 0).count == KnockDerivation.tokenLength)
            let other = KnockDerivation(secret: secret, sequence: "ssh")
            #expect(other.spaToken(window: Self.vectorWindow, slot: 0) != admin.spaToken(window: Self.vectorWindow, slot: 0))
        }
    }

    @Test func rotatingPortsMatchPythonsHMAC() throws {
        try withVectorSecret { secret in
            let ssh = KnockDerivation(secret: secret, sequence: "ssh")
            let protocols: [TransportProtocol] = [.tcp, .udp, .tcp]
            let plain = try ssh.rotatingPorts(window: Self.vectorWindow, protocols: protocols, range: 20000...40000, excluded: [:])
            #expect(plain == [TransportPort(.tcp, 39693), TransportPort(.udp, 33755), TransportPort(.tcp, 37663)])
            // Knock 0's first attempt is excluded, so its second attempt counts.
            let retried = try ssh.rotatingPorts(window: Self.vectorWindow, protocols: protocols, range: 20000...40000,
                                                excluded: [.tcp: [39693]])
            #expect(retried == [TransportPort(.tcp, 34065), TransportPort(.udp, 33755), TransportPort(.tcp, 37663)])
            // Excluded for udp only: a tcp knock may still use it.
            let otherProtocol = try ssh.rotatingPorts(window: Self.vectorWindow, protocols: protocols, range: 20000...40000,
                                                      excluded: [.udp: [39693]])
            #expect(otherProtocol == plain)
            // Two ports: knock 2's attempts 0 and 1 repeat knock 1's port, attempt 2 does not.
            let twoPorts = try ssh.rotatingPorts(window: Self.vectorWindow, protocols: protocols, range: 7000...7001, excluded: [:])
            #expect(twoPorts == [TransportPort(.tcp, 7000), TransportPort(.udp, 7001), TransportPort(.tcp, 7000)])
        }
    }

    @Test func rotatingPortsNeverRepeatTheKnockBeforeNorUseAnExcludedPortOverManyWindows() throws {
        try withVectorSecret { secret in
            let derivation = KnockDerivation(secret: secret, sequence: "prop")
            let protocols: [TransportProtocol] = [.tcp, .udp, .tcp, .tcp, .udp, .tcp, .udp, .udp]
            let range: ClosedRange<UInt16> = 5000...5003
            let excluded: [TransportProtocol: Set<UInt16>] = [.tcp: [5001], .udp: [5003, 5000]]
            var seen = Set<[TransportPort]>()
            for window in Int64(-50)..<2000 {
                let knocks = try derivation.rotatingPorts(window: window, protocols: protocols, range: range, excluded: excluded)
                #expect(knocks.map(\.proto) == protocols)
                for (index, knock) in knocks.enumerated() {
                    #expect(range.contains(knock.port))
                    #expect(!(excluded[knock.proto] ?? []).contains(knock.port), "window \(window): \(knock) is excluded")
                    if index > 0 {
                        #expect(knock.port != knocks[index - 1].port, "window \(window): knock \(index) repeats the one before")
                    }
                }
                seen.insert(knocks)
            }
            #expect(seen.count > 50, "the windows' knocks vary")
        }
    }

    @Test func aRangeTooSmallForTheKnocksThrowsNamingTheKnock() throws {
        try withVectorSecret { secret in
            let derivation = KnockDerivation(secret: secret, sequence: "ssh")
            let one = #expect(throws: RotationError.self) {
                try derivation.rotatingPorts(window: 1, protocols: [.tcp, .tcp], range: 5000...5000, excluded: [:])
            }
            #expect(one == .rangeTooSmall(range: 5000...5000, knock: 1, proto: .tcp, attempts: 64))
            #expect(one?.description == "ports 5000-5000 are too few: 64 tries at knock 2 (tcp) all hit an excluded port "
                + "(guarded, decoy or another sequence's knock) or the knock before; widen the range or move those ports out of it")
            let none = #expect(throws: RotationError.self) {
                try derivation.rotatingPorts(window: 1, protocols: [.udp, .tcp], range: 5000...5001, excluded: [.tcp: [5000, 5001]])
            }
            #expect(none == .rangeTooSmall(range: 5000...5001, knock: 1, proto: .tcp, attempts: 64))
            let single = try derivation.rotatingPorts(window: 1, protocols: [.udp], range: 5000...5000)
            #expect(single == [TransportPort(.udp, 5000)])
            #expect(throws: RotationError.rangeIncludesPortZero(range: 0...10)) {
                try derivation.rotatingPorts(window: 1, protocols: [.udp], range: 0...10)
            }
            // The whole port space is one range; its size does not overflow 16 bits.
            let everyPort = try derivation.rotatingPorts(window: 1, protocols: [.udp, .tcp], range: 1...65535)
            #expect(everyPort.count == 2)
        }
    }

    /// An independent implementation, on inputs this test draws: Python's hmac and hashlib
    /// against the Swift derivation, for random secrets, names, windows, slots and ranges.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "needs python3"))
    func randomInputsAgreeWithPython() throws {
        var generator = SystemRandomNumberGenerator()
        try TemporaryDirectory.with { directory in
            for number in 0..<20 {
                let bytes = (0..<Int.random(in: 32...80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let path = try directory.write(bytes, to: "k\(number)")
                let secret = try Secret(contentsOf: path, requiredOwner: getuid())
                let name = String((0..<Int.random(in: 1...32, using: &generator)).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789-_".randomElement(using: &generator)! })
                let window = Int64.random(in: -1_000...100_000_000, using: &generator)
                let slot = UInt32.random(in: 0...UInt32.max, using: &generator)
                let low = UInt16.random(in: 1...60000, using: &generator)
                let high = low + UInt16.random(in: 10...5000, using: &generator)
                let derivation = KnockDerivation(secret: secret, sequence: name)
                let ports = try derivation.rotatingPorts(window: window, protocols: [.tcp, .udp, .tcp, .udp], range: low...high,
                                                         excluded: [.tcp: [low, low + 1]])
                let script = """
                    import hmac, hashlib, struct, sys
                    key = open(sys.argv[1], 'rb').read(); name = sys.argv[2].encode(); w = int(sys.argv[3])
                    lo, hi = int(sys.argv[5]), int(sys.argv[6])
                    msg = lambda purpose, i: b'knockc-v1\\0' + purpose + b'\\0' + name + b'\\0' + struct.pack('>qI', w, i)
                    mac = lambda m: hmac.new(key, m, hashlib.sha256).digest()
                    print(mac(msg(b'spa', int(sys.argv[4])))[:16].hex())
                    out = []
                    for i, proto in enumerate(['tcp', 'udp', 'tcp', 'udp']):
                        for a in range(64):
                            port = lo + int.from_bytes(mac(msg(b'rotate', i << 8 | a))[:4], 'big') % (hi - lo + 1)
                            if not (proto == 'tcp' and port in (lo, lo + 1)) and (not out or port != out[-1][1]):
                                out.append((proto, port)); break
                    print(' '.join('%s/%d' % knock for knock in out))
                    """
                let result = try python(script, [path, name, "\(window)", "\(slot)", "\(low)", "\(high)"])
                let expected = "\(Self.hex(derivation.spaToken(window: window, slot: slot)))\n\(ports.map(\.description).joined(separator: " "))\n"
                #expect(result == expected, "secret \(Self.hex(bytes)), sequence \(name), window \(window), slot \(slot), ports \(low)-\(high)")
            }
        }
    }

    func python(_ script: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return String(decoding: data, as: UTF8.self)
    }
}
