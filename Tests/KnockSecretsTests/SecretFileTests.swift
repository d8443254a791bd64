import Foundation
import Glibc
@testable import KnockSecrets
import Testing

/// The rules a secret file must pass, each refusal and its message.
@Suite struct SecretFileTests {
    static let me = getuid()
    static let bytes32 = (0..<32).map { UInt8($0 * 7 + 3) }

    func read(_ path: String, requiredOwner: uid_t? = me) -> Result<Secret, SecretError> {
        Result { () throws(SecretError) in try Secret(contentsOf: path, requiredOwner: requiredOwner) }
    }

    func refusal(_ path: String, requiredOwner: uid_t? = me) -> SecretError? {
        if case .failure(let error) = read(path, requiredOwner: requiredOwner) { return error }
        return nil
    }

    @Test func exactly32BytesAreAccepted() throws {
        try TemporaryDirectory.with { directory in
            let path = try directory.write(Self.bytes32, to: "k")
            let secret = try Secret(contentsOf: path, requiredOwner: Self.me)
            #expect(secret.path == path)
            #expect(secret.withUnsafeBytes { Array($0) } == Self.bytes32)
        }
    }

    @Test func everyByteIsTheSecretATrailingNewlineIncluded() throws {
        try TemporaryDirectory.with { directory in
            let text = Array("an ascii passphrase of 40 characters....\n".utf8)
            let path = try directory.write(text, to: "k")
            #expect(try Secret(contentsOf: path, requiredOwner: nil).withUnsafeBytes { Array($0) } == text)
        }
    }

    @Test func thirtyOneBytesAreTooShortAndTheMessageSaysBothLengths() throws {
        try TemporaryDirectory.with { directory in
            let path = try directory.write(Array(Self.bytes32.prefix(31)), to: "k")
            let error = refusal(path)
            #expect(error == .tooShort(path: path, length: 31, minimum: 32))
            #expect(error?.description == "secret \(path) holds 31 bytes; a secret needs at least 32 (`knockc keygen` writes 32 random bytes)")
            let empty = try directory.write([], to: "empty")
            #expect(refusal(empty) == .tooShort(path: empty, length: 0, minimum: 32))
        }
    }

    @Test func aFileLongerThanAnyKeyIsRefused() throws {
        try TemporaryDirectory.with { directory in
            let longest = try directory.write([UInt8](repeating: 1, count: Secret.maximumLength), to: "longest")
            #expect(throws: Never.self) { try Secret(contentsOf: longest, requiredOwner: Self.me) }
            let path = try directory.write([UInt8](repeating: 1, count: Secret.maximumLength + 1), to: "k")
            #expect(refusal(path) == .tooLong(path: path, maximum: Secret.maximumLength))
        }
    }

    @Test func aMissingFileIsNamedWithTheCommandThatWritesOne() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("absent")
            let error = refusal(path)
            #expect(error == .missing(path: path))
            #expect(error?.description == "secret \(path) does not exist (`knockc keygen \(path)` writes one)")
        }
    }

    @Test("any permission for group or others (0640, 0604, 0620, 0601, 0707) is refused with the mode and the chmod that fixes it",
          arguments: [0o640, 0o604, 0o620, 0o601, 0o707] as [mode_t])
    func groupOrOtherBitsAreRefused(mode: mode_t) throws {
        try TemporaryDirectory.with { directory in
            let path = try directory.write(Self.bytes32, to: "k", mode: mode)
            let error = refusal(path)
            #expect(error == .accessibleByOthers(path: path, mode: mode))
            let octal = "0" + String(mode, radix: 8)
            #expect(error?.description == "secret \(path) has mode \(octal), which lets its group or others at it: run chmod 600 \(path)")
        }
    }

    @Test("modes stricter than 0600 are accepted", arguments: [0o600, 0o400, 0o200, 0o000] as [mode_t])
    func stricterModesAreAccepted(mode: mode_t) throws {
        // Root reads a file of mode 0000; anyone else cannot, which is a different refusal.
        guard mode & 0o400 != 0 || getuid() == 0 else { return }
        try TemporaryDirectory.with { directory in
            let path = try directory.write(Self.bytes32, to: "k", mode: mode)
            #expect(throws: Never.self) { try Secret(contentsOf: path, requiredOwner: Self.me) }
        }
    }

    @Test func aSymbolicLinkIsRefusedEvenToAGoodSecret() throws {
        try TemporaryDirectory.with { directory in
            let target = try directory.write(Self.bytes32, to: "target")
            let link = directory.file("link")
            #expect(symlink(target, link) == 0)
            let error = refusal(link)
            #expect(error == .notRegularFile(path: link, kind: .symbolicLink))
            #expect(error?.description == "secret \(link) is a symbolic link; it must be a regular file")
            let dangling = directory.file("dangling")
            #expect(symlink(directory.file("nowhere"), dangling) == 0)
            #expect(refusal(dangling) == .notRegularFile(path: dangling, kind: .symbolicLink))
        }
    }

    @Test func aDirectoryAndAFIFOAreRefusedWithoutWaiting() throws {
        try TemporaryDirectory.with { directory in
            let folder = directory.file("folder")
            #expect(mkdir(folder, 0o700) == 0)
            #expect(refusal(folder) == .notRegularFile(path: folder, kind: .directory))
            let fifo = directory.file("fifo")
            #expect(mkfifo(fifo, 0o600) == 0)
            #expect(refusal(fifo) == .notRegularFile(path: fifo, kind: .fifo))
        }
    }

    @Test func anotherOwnerIsRefusedAndNoOwnerRuleAcceptsAny() throws {
        try TemporaryDirectory.with { directory in
            let path = try directory.write(Self.bytes32, to: "k")
            let required: uid_t = Self.me == 0 ? 1000 : 0
            let error = refusal(path, requiredOwner: required)
            #expect(error == .wrongOwner(path: path, owner: Self.me, required: required))
            if required == 0 {
                #expect(error?.description == "secret \(path) is owned by uid \(Self.me); it must be owned by root (uid 0)")
            } else {
                #expect(error?.description == "secret \(path) is owned by root (uid 0); it must be owned by uid 1000")
            }
            #expect(throws: Never.self) { try Secret(contentsOf: path, requiredOwner: nil) }
        }
    }

    /// Every way a value is printed: no 4-byte run of the secret appears raw, in hex (either
    /// case) or as decimal array elements.
    @Test func noPrintedFormHoldsAnyRunOfTheSecret() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("k")
            try Secret.generate(at: path)
            let secret = try Secret(contentsOf: path, requiredOwner: Self.me)
            let bytes = secret.withUnsafeBytes { Array($0) }
            let derivation = KnockDerivation(secret: secret, sequence: "ssh")
            var dumped = ""
            dump(secret, to: &dumped)
            var dumpedDerivation = ""
            dump(derivation, to: &dumpedDerivation)
            let printed = [
                String(describing: secret), String(reflecting: secret), "\(secret)", dumped,
                String(describing: derivation), String(reflecting: derivation), dumpedDerivation,
                String(describing: Mirror(reflecting: secret).children.map { "\($0.label ?? ""): \($0.value)" }),
            ]
            #expect(String(describing: secret) == "secret from \(path)")
            #expect(String(reflecting: secret) == "secret from \(path)")
            for text in printed {
                let utf8 = Array(text.utf8)
                for start in 0...(bytes.count - 4) {
                    let run = Array(bytes[start..<start + 4])
                    let hex = run.map { String(format: "%02x", $0) }.joined()
                    #expect(!text.lowercased().contains(hex), "hex of bytes \(start)..<\(start + 4) in \(text)")
                    #expect(!text.contains(run.map(String.init).joined(separator: ", ")), "decimal bytes in \(text)")
                    #expect(!utf8.contains(run), "raw bytes \(start)..<\(start + 4) in \(text)")
                }
            }
        }
    }
}

extension Array where Element: Equatable {
    /// Whether `run` occurs as a contiguous subsequence.
    func contains(_ run: [Element]) -> Bool {
        guard run.count <= count else { return false }
        return (0...(count - run.count)).contains { Array(self[$0..<$0 + run.count]) == run }
    }
}
