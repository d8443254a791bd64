import Glibc

/// Text held in an anonymous memory file (memfd): readable by path through `/proc/self/fd`,
/// never on disk, and gone with the last descriptor, so a SIGKILL leaves nothing behind.
/// libnftables reads the ruleset from one (it names refused lines only when it reads a file),
/// diff(1) reads both listings from two, and child output is captured in them.
public final class MemoryFile {
    public let fd: Int32

    /// - Parameter inheritable: whether a spawned child gets the descriptor (at the same
    ///   number), so it can open `/dev/fd/N`.
    public init(_ name: String, contents: String = "", inheritable: Bool = false) throws(SystemError) {
        fd = memfdCreate(name, inheritable ? 0 : memfdCloexec)
        guard fd >= 0 else { throw SystemError("cannot create an in-memory file") }
        guard Descriptor.writeAll(fd, contents) else {
            let error = SystemError("cannot write an in-memory file")
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// The path this process opens it by.
    public var path: String { "/proc/self/fd/\(fd)" }

    /// The path a child that inherited it opens it by.
    public var childPath: String { "/dev/fd/\(fd)" }

    /// Everything written to it, by this process or a child.
    public func contents() -> String { Descriptor.readAll(fd) ?? "" }
}

/// memfd_create(2): Glibc's Swift module leaves it out, as it needs _GNU_SOURCE.
@_silgen_name("memfd_create") private func memfdCreate(_ name: UnsafePointer<CChar>, _ flags: UInt32) -> Int32
private let memfdCloexec: UInt32 = 1
