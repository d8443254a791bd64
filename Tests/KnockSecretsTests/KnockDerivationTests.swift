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

    @Test func rotatingPortsMatchTheReadmesPython() throws {
        try withVectorSecret { secret in
            let ssh = KnockDerivation(secret: secret, sequence: "ssh")
            let protocols: [TransportProtocol] = [.tcp, .udp, .tcp]
            let vector = try ssh.rotatingPorts(window: Self.vectorWindow, protocols: protocols, range: 20000...40000)
            #expect(vector == [TransportPort(.tcp, 37985), TransportPort(.udp, 36011), TransportPort(.tcp, 39556)])
            let next = try ssh.rotatingPorts(window: Self.vectorWindow + 1, protocols: protocols, range: 20000...40000)
            #expect(next == [TransportPort(.tcp, 38965), TransportPort(.udp, 22118), TransportPort(.tcp, 37270)])
            let small = try ssh.rotatingPorts(window: Self.vectorWindow, protocols: protocols, range: 7000...7009)
            #expect(small == [TransportPort(.tcp, 7001), TransportPort(.udp, 7005), TransportPort(.tcp, 7002)])
            let negative = try ssh.rotatingPorts(window: -1, protocols: [.udp], range: 1...65535)
            #expect(negative == [TransportPort(.udp, 18015)])
        }
    }

    @Test func noPortServesTwoKnocksWithinAnEpochAndEpochsDiffer() throws {
        try withVectorSecret { secret in
            let derivation = KnockDerivation(secret: secret, sequence: "prop")
            let protocols: [TransportProtocol] = [.tcp, .udp, .tcp]
            let range: ClosedRange<UInt16> = 5000...5101   // 102 ports: 34 windows per epoch
            #expect(KnockDerivation.windowsPerEpoch(range: range, knocks: 3) == 34)
            for epoch in Int64(-2)...3 {
                let windows = epoch * 34...(epoch * 34 + 33)
                let knocks = try derivation.rotatingPorts(windows: windows, protocols: protocols, range: range)
                let ports = knocks.flatMap { $0 }
                #expect(ports.allSatisfy { range.contains($0.port) })
                #expect(Set(ports.map(\.port)).count == 102, "epoch \(epoch): every port once")
                #expect(knocks.allSatisfy { $0.map(\.proto) == protocols })
                for window in windows where window % 7 == 0 {
                    let alone = try derivation.rotatingPorts(window: window, protocols: protocols, range: range)
                    #expect(alone == knocks[Int(window - windows.lowerBound)], "one window alone derives the same")
                }
                #expect(KnockDerivation.epoch(of: windows.lowerBound, range: range, knocks: 3) == epoch)
                #expect(KnockDerivation.epoch(of: windows.upperBound, range: range, knocks: 3) == epoch)
            }
            let first = try derivation.rotatingPorts(windows: 0...33, protocols: protocols, range: range)
            let second = try derivation.rotatingPorts(windows: 34...67, protocols: protocols, range: range)
            #expect(first != second, "each epoch has its own permutation")
        }
    }

    @Test func aRangeTooSmallForTheKnocksThrows() throws {
        try withVectorSecret { secret in
            let derivation = KnockDerivation(secret: secret, sequence: "ssh")
            let one = #expect(throws: RotationError.self) {
                try derivation.rotatingPorts(window: 1, protocols: [.tcp, .tcp], range: 5000...5000)
            }
            #expect(one == .rangeTooSmall(range: 5000...5000, knocks: 2))
            #expect(one?.description == "ports 5000-5000 are too few for 2 knocks; each knock of a window takes a port of its own")
            let single = try derivation.rotatingPorts(window: 1, protocols: [.udp], range: 5000...5000)
            #expect(single == [TransportPort(.udp, 5000)])
            let two = try derivation.rotatingPorts(window: 1, protocols: [.udp, .tcp], range: 5000...5001)
            #expect(Set(two.map(\.port)) == [5000, 5001])
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
                let ports = try derivation.rotatingPorts(window: window, protocols: [.tcp, .udp, .tcp, .udp], range: low...high)
                let script = """
                    import hmac, hashlib, struct, sys
                    key = open(sys.argv[1], 'rb').read(); name = sys.argv[2].encode(); w = int(sys.argv[3])
                    lo, hi = int(sys.argv[5]), int(sys.argv[6])
                    msg = lambda purpose, w, i: b'knockc-v1\\0' + purpose + b'\\0' + name + b'\\0' + struct.pack('>qI', w, i)
                    mac = lambda m: hmac.new(key, m, hashlib.sha256).digest()
                    print(mac(msg(b'spa', w, int(sys.argv[4])))[:16].hex())
                    protocols = ['tcp', 'udp', 'tcp', 'udp']
                    size = hi - lo + 1; per = size // len(protocols); e = w // per
                    h = max(1, ((size - 1).bit_length() + 1) // 2)
                    f = lambda r, x: int.from_bytes(mac(msg(b'rotate', e, r << 16 | x))[:4], 'big') % (1 << h)
                    def permute(x):
                        l, r = x >> h, x & ((1 << h) - 1)
                        for k in range(8):
                            l, r = r, l ^ f(k, r)
                        return l << h | r
                    out = []
                    for i, proto in enumerate(protocols):
                        x = permute((w - e * per) * len(protocols) + i)
                        while x >= size:
                            x = permute(x)
                        out.append('%s/%d' % (proto, lo + x))
                    print(' '.join(out))
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
